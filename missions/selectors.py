"""Reads for the mission pages: each returns what a page shows, with its related rows fetched up front."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from missions.choices import Role
from missions.models import Membership, Mission

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
