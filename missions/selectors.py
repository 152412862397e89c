"""Reads for the mission pages: each returns what a page shows, with its related rows fetched up front."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

from missions.choices import Role
from missions.models import Membership, Mission
from tasks.choices import TASK_FINISHED
from tasks.models import Task


@dataclass
class PhaseProgress:
    """Tasks finished out of all tasks in one phase of a mission (or in the tasks without a phase)."""

    name: str
    order: int
    done: int = 0
    total: int = 0

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


@dataclass
class MissionProgress:
    phases: list[PhaseProgress] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(p.done for p in self.phases)

    @property
    def total(self) -> int:
        return sum(p.total for p in self.phases)

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def missions_visible(user) -> QuerySet[Mission]:
    return Mission.objects.visible_to(user).select_related("owner")


def mission_owners_visible(user) -> QuerySet:
    """People who own a mission the user can see (the owner filter's choices)."""
    return get_user_model().objects.filter(owned_missions__in=Mission.objects.visible_to(user)).distinct().order_by(
        "username"
    )


def mission_progress_map(mission_ids: list[int]) -> dict[int, MissionProgress]:
    """Per mission, tasks finished per phase: one grouped query whatever the number of missions or tasks."""
    rows = (
        Task.objects.filter(mission_id__in=mission_ids)
        .values("mission_id", "phase_id", "phase__order", "phase__name")
        .annotate(total=Count("id"), done=Count("id", filter=Q(status__in=TASK_FINISHED)))
        .order_by("mission_id", "phase__order")
    )
    progress: dict[int, MissionProgress] = defaultdict(MissionProgress)
    for row in rows:
        name = row["phase__name"] or "Tasks"
        order = row["phase__order"] if row["phase__order"] is not None else 10**6
        progress[row["mission_id"]].phases.append(
            PhaseProgress(name=name, order=order, done=row["done"], total=row["total"])
        )
    for item in progress.values():
        item.phases.sort(key=lambda p: p.order)
    return progress


def missions_with_progress(missions: list[Mission]) -> list[Mission]:
    """Attach ``progress`` (a MissionProgress) to each mission of a page."""
    progress = mission_progress_map([m.pk for m in missions])
    for mission in missions:
        mission.progress = progress.get(mission.pk, MissionProgress())
    return missions


def roles_map(user, missions: list[Mission]) -> dict[int, str]:
    """The user's role in each mission (one query)."""
    rows = Membership.objects.filter(user=user, mission_id__in=[m.pk for m in missions]).values_list(
        "mission_id", "role"
    )
    roles = dict(rows)
    for mission in missions:
        if mission.owner_id == user.pk:
            roles[mission.pk] = Role.MISSION_OWNER
    return roles


def missions_followed(user) -> QuerySet[Mission]:
    """Missions the user follows as a stakeholder (the read-only dashboard)."""
    return (
        Mission.objects.filter(memberships__user=user, memberships__role=Role.STAKEHOLDER)
        .select_related("owner")
        .distinct()
    )
