"""Reads for the mission pages: each returns what a page shows, with its related rows fetched up front."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, QuerySet

from history.models import HistoryEntry
from missions.choices import Role, SignoffDecision
from missions.models import Membership, Mission, MissionSignoff

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from history.services import Viewer


def missions_visible(user: Viewer) -> QuerySet[Mission]:
    return Mission.objects.visible_to(user).select_related("owner")


def mission_owners_visible(user: Viewer) -> QuerySet[User]:
    """People who own a mission the user can see (the owner filter's choices)."""
    return get_user_model().objects.filter(owned_missions__in=Mission.objects.visible_to(user)).distinct().order_by(
        "username"
    )


def roles_map(user: User, missions: list[Mission]) -> dict[int, str]:
    """The user's role in each mission (one query)."""
    rows = Membership.objects.filter(user=user, mission_id__in=[m.pk for m in missions]).values_list(
        "mission_id", "role"
    )
    roles = dict(rows)
    for mission in missions:
        if mission.owner_id == user.pk:
            roles[mission.pk] = Role.MISSION_OWNER
    return roles


def missions_followed(user: User) -> QuerySet[Mission]:
    """Missions the user follows as a stakeholder (the read-only dashboard)."""
    return (
        Mission.objects.filter(memberships__user=user, memberships__role=Role.STAKEHOLDER)
        .select_related("owner")
        .distinct()
    )


def latest_signoffs(mission_ids: list[int]) -> dict[int, list[MissionSignoff]]:
    """Each stakeholder's latest sign-off per mission, newest first (one query whatever the number of missions)."""
    latest: dict[int, list[MissionSignoff]] = {pk: [] for pk in mission_ids}
    seen: set[tuple[int, int]] = set()
    rows = (MissionSignoff.objects.filter(mission_id__in=mission_ids).select_related("user")
            .order_by("-created_at", "-id"))
    for signoff in rows:
        if (signoff.mission_id, signoff.user_id) not in seen:
            seen.add((signoff.mission_id, signoff.user_id))
            latest[signoff.mission_id].append(signoff)
    return latest


def signoffs_missing(mission: Mission, latest: list[MissionSignoff] | None = None) -> list[Membership]:
    """The required stakeholders who have not approved the mission's outputs since it last completed (a concern, an
    older approval or none at all), by username."""
    if latest is None:
        latest = latest_signoffs([mission.pk])[mission.pk]
    approved = {s.user_id for s in latest if s.decision == SignoffDecision.APPROVE
                and (mission.completed_at is None or s.created_at >= mission.completed_at)}
    required = (Membership.objects.filter(mission=mission, role=Role.STAKEHOLDER, signoff_required=True)
                .select_related("user").order_by("user__username"))
    return [m for m in required if m.user_id not in approved]


def signoffs_required(mission_ids: list[int]) -> dict[int, list[str]]:
    """The usernames of each mission's stakeholders whose sign-off is required before closing (one query)."""
    required: dict[int, list[str]] = {}
    rows = (Membership.objects.filter(mission_id__in=mission_ids, role=Role.STAKEHOLDER, signoff_required=True)
            .order_by("user__username").values_list("mission_id", "user__username"))
    for mission_id, username in rows:
        required.setdefault(mission_id, []).append(username)
    return required


def history_version(mission_id: int) -> str:
    """The version of everything the mission's pages show, ``"<newest id>-<count>"`` of its history entries, in one
    query over the mission's index. Every change of state writes an entry in the transaction that makes it, so the
    version moves when the change commits. The newest id alone would miss a change whose transaction took its id
    before another's and committed after it (PostgreSQL hands ids out in the order they are asked for, not the order
    of the commits); the count moves then too."""
    row = HistoryEntry.objects.filter(mission_id=mission_id).aggregate(newest=Max("id"), entries=Count("id"))
    return f"{row['newest'] or 0}-{row['entries']}"


def closing_entry(mission: Mission) -> HistoryEntry | None:
    """The history entry of the mission's closing: who signed it off, when, with which note."""
    return (HistoryEntry.objects.filter(mission=mission, event="mission.closed").select_related("actor_user")
            .order_by("-id").first())
