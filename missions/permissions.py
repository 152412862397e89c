"""Who may do what in a mission, read from memberships. Every page, API and action asks here."""

from __future__ import annotations

from missions.choices import Role
from missions.models import Membership, Mission


def role_of(user, mission: Mission) -> str | None:
    """The user's role in the mission, or None. The owner is always Mission Owner."""
    if not user.is_authenticated:
        return None
    if mission.owner_id == user.pk:
        return Role.MISSION_OWNER
    cache = getattr(mission, "_role_cache", None)
    if cache is None:
        cache = mission._role_cache = {}
    if user.pk not in cache:
        cache[user.pk] = (
            Membership.objects.filter(mission=mission, user=user).values_list("role", flat=True).first()
        )
    return cache[user.pk]


def can_view(user, mission: Mission) -> bool:
    return bool(user.is_authenticated and (user.is_staff or role_of(user, mission)))


def can_manage(user, mission: Mission) -> bool:
    """Mission Owner decisions: launch, pause, resume, cancel, close, approve, waive, edit."""
    return bool(user.is_authenticated and (user.is_staff or role_of(user, mission) == Role.MISSION_OWNER))


def can_work_on(user, mission: Mission) -> bool:
    """Task-level work (answer, act on owned tasks): owners and task owners, never stakeholders."""
    return bool(
        user.is_authenticated
        and (user.is_staff or role_of(user, mission) in {Role.MISSION_OWNER, Role.TASK_OWNER})
    )


def can_sign_off(user, mission: Mission) -> bool:
    """A stakeholder's one write: their sign-off on the mission's delivered outputs."""
    return bool(user.is_authenticated and role_of(user, mission) == Role.STAKEHOLDER)


def can_act_on_task(user, task) -> bool:
    """A task's own owner, or the mission's owner."""
    if not user.is_authenticated:
        return False
    if user.is_staff or task.owner_user_id == user.pk:
        return True
    return role_of(user, task.mission) == Role.MISSION_OWNER


def can_create_missions(user) -> bool:
    """Creating or launching a new mission, on every surface alike (launch page, API, blueprint launch, admin):
    staff, or a person given the ``missions.add_mission`` permission (directly or through a group)."""
    return bool(user.is_authenticated and user.is_active
                and (user.is_staff or user.has_perm("missions.add_mission")))
