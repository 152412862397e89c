"""Who may write what through the API. Reads are decided by the visible-to querysets (another mission's objects
are 404); writes by the caller's role in the object's mission, asked of ``missions.permissions``."""

from __future__ import annotations

from collections.abc import Callable

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from missions import permissions as roles

# A rule takes (user, object) and says yes or no; the object is a mission unless the rule says otherwise.
RULES: dict[str, tuple[Callable, str]] = {
    "manage": (roles.can_manage, "Only the Mission Owner may do this."),
    "work": (roles.can_work_on, "Only the Mission Owner or a Task Owner of this mission may do this."),
    "task": (roles.can_act_on_task, "Only this task's owner or the Mission Owner may do this."),
    "signoff": (roles.can_sign_off, "Only a stakeholder of this mission may sign off on it."),
    "staff": (lambda user, _obj: bool(user.is_staff), "Only staff may change this."),
    "authenticated": (lambda user, _obj: bool(user.is_authenticated), "Sign in first."),
    "question": (
        lambda user, question: question.addressed_to_id == user.pk or roles.can_act_on_task(user, question.task),
        "Only the person asked, the task's owner or the Mission Owner may answer.",
    ),
}


def require(rule: str, user, obj) -> None:
    """Raise 403 unless ``user`` may apply ``rule`` to ``obj``."""
    check, message = RULES[rule]
    if not check(user, obj):
        raise PermissionDenied(message)


class RolePermission(BasePermission):
    """Authenticated to read (the queryset hides what the caller may not see); a write needs the rule the view
    names for the action in ``write_rules`` (default ``manage``), applied to ``view.permission_target(obj)``."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        rule = getattr(view, "write_rules", {}).get(view.action, "manage")
        target = view.permission_target(obj, rule) if hasattr(view, "permission_target") else obj
        require(rule, request.user, target)
        return True


class StaffWritesPermission(BasePermission):
    """Shared objects (connections, agents): every authenticated user reads, staff write."""

    message = "Only staff may change this."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or bool(request.user.is_staff)
