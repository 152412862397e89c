"""Mission services: creation, edits, membership and the one function that changes a mission's status."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from agents.access import require_grant
from agents.services import connections_grant
from genesis.exceptions import DomainError, InvalidTransition
from history.services import Actor, history_record
from missions.choices import MISSION_TRANSITIONS, MissionMode, MissionStatus, Role
from missions.models import Membership, Mission, MissionSignoff

# Fields a person may edit through ``mission_update``; status is never among them.
EDITABLE_FIELDS = frozenset(
    {
        "name", "objective", "scope", "success_criteria", "mode", "spec_file", "source_connection",
        "target_connection", "docs_index", "escalation_emails", "escalation_webhook", "owner",
    }
)

# "The same as ``actor``", where None already means "the system".
_ACTOR: Any = object()

_TIMESTAMP_ON_ENTRY: dict[str, str] = {
    MissionStatus.COMPLETED: "completed_at",
    MissionStatus.CLOSED: "closed_at",
}


@transaction.atomic
def mission_create(
    *,
    name: str,
    objective: str,
    owner: User,
    actor: Actor = None,
    scope: str = "",
    success_criteria: list[Any] | None = None,
    mode: str = MissionMode.STEP,
    grantor: Actor | object = _ACTOR,
    **extra: Any,
) -> Mission:
    """A new draft mission. The connections it names (source, target) are granted to it if ``grantor`` (by default
    ``actor``) may grant them; no ``actor`` means the system itself creates it (a command), which may."""
    unknown = set(extra) - EDITABLE_FIELDS
    if unknown:
        raise DomainError(f"Unknown mission field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    mission = Mission(
        name=name, objective=objective, owner=owner, scope=scope,
        success_criteria=success_criteria or [], mode=mode, **extra,
    )
    return mission_save_new(mission=mission, actor=actor or owner, grantor=actor if grantor is _ACTOR else grantor)


def _named_connections(*, mission: Mission, grantor: Actor) -> list[Any]:
    """The connections the mission names, each refused (naming its field) unless ``grantor`` may grant it."""
    named = []
    for field in ("source_connection", "target_connection"):
        connection = getattr(mission, field)
        if connection is not None:
            require_grant(grantor, [connection], field=field)
            named.append(connection)
    return named


def _grant_named_connections(*, mission: Mission, grantor: Actor, named: list[Any] | None = None) -> None:
    named = _named_connections(mission=mission, grantor=grantor) if named is None else named
    if named:
        connections_grant(mission=mission, connections=named, actor=grantor, reason="named by the mission")


@transaction.atomic
def mission_save_new(*, mission: Mission, actor: Actor, grantor: Actor | object = _ACTOR) -> Mission:
    """Store a new mission (built by ``mission_create`` or a validated admin form) as a draft, give its owner
    the Mission Owner role, record its creation and grant it the connections it names (``grantor``, by default
    ``actor``, must be allowed to)."""
    if mission.pk is not None:
        raise DomainError("This mission is already stored.")
    mission.status = MissionStatus.DRAFT
    grantor = actor if grantor is _ACTOR else grantor
    named = _named_connections(mission=mission, grantor=grantor)
    try:
        mission.full_clean()
    except ValidationError as error:
        raise DomainError.from_validation(error) from None
    mission.save()
    Membership.objects.create(mission=mission, user=mission.owner, role=Role.MISSION_OWNER)
    history_record(
        mission=mission, event="mission.created", actor=actor, to_status=mission.status,
        message=f"Mission “{mission.name}” created.", data={"owner": mission.owner.get_username()},
    )
    _grant_named_connections(mission=mission, grantor=grantor, named=named)
    return mission


@transaction.atomic
def mission_update(*, mission: Mission, actor: Actor, **changes: Any) -> Mission:
    """Edit a mission's descriptive fields and record which changed (old and new values)."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise DomainError(f"These fields cannot be edited here: {', '.join(sorted(unknown))}.",
                          field=sorted(unknown)[0])
    locked: Mission = Mission.objects.select_for_update().get(pk=mission.pk)
    for field in {"source_connection", "target_connection"} & set(changes):
        if changes[field] is not None and changes[field] != getattr(locked, field):
            require_grant(actor, [changes[field]], field=field)
    changed: dict[str, Any] = {}
    for field, value in changes.items():
        if getattr(locked, field) != value:
            changed[field] = {"from": _plain(getattr(locked, field)), "to": _plain(value)}
            setattr(locked, field, value)
    if not changed:
        return locked
    try:
        locked.full_clean()
    except ValidationError as error:
        raise DomainError.from_validation(error) from None
    locked.save()
    if "owner" in changed:
        _ensure_owner_membership(locked)
    history_record(
        mission=locked, event="mission.updated", actor=actor,
        message="Changed " + ", ".join(sorted(changed)) + ".", data={"changed": changed},
    )
    if {"source_connection", "target_connection"} & set(changed):
        _grant_named_connections(mission=locked, grantor=actor)
    return locked


def mission_record_edit(*, mission: Mission, actor: Actor, changed_fields: list[str]) -> None:
    """History for an edit already validated and saved by a form (admin), with the fields it changed."""
    if changed_fields:
        if "owner" in changed_fields:
            _ensure_owner_membership(mission)
        history_record(
            mission=mission, event="mission.updated", actor=actor,
            message="Changed " + ", ".join(sorted(changed_fields)) + ".",
            data={"changed": sorted(changed_fields)},
        )
        if {"source_connection", "target_connection"} & set(changed_fields):
            _grant_named_connections(mission=mission, grantor=actor)


def _ensure_owner_membership(mission: Mission) -> None:
    Membership.objects.update_or_create(
        mission=mission, user=mission.owner, defaults={"role": Role.MISSION_OWNER}
    )


def _plain(value: Any) -> Any:
    if isinstance(value, FieldFile):  # before the pk check: an empty FieldFile raises on .url
        return value.name or ""
    if isinstance(value, File):
        return value.name or ""
    if hasattr(value, "pk"):
        return value.pk
    return value


@transaction.atomic
def mission_transition(
    *, mission: Mission, to: str, actor: Actor = None, message: str = "", data: dict[str, Any] | None = None
) -> Mission:
    """The only way a mission's status changes: checked against the table, recorded in history."""
    locked: Mission = Mission.objects.select_for_update().get(pk=mission.pk)
    current = locked.status
    allowed = MISSION_TRANSITIONS[current]
    if to not in allowed:
        raise InvalidTransition(
            entity="Mission", label=f"“{locked.name}”", from_status=current, to_status=to,
            allowed=sorted(allowed),
        )
    now = timezone.now()
    locked.status = to
    update_fields = ["status", "updated_at"]
    if to == MissionStatus.ACTIVE and locked.launched_at is None:
        locked.launched_at = now
        update_fields.append("launched_at")
    stamp = _TIMESTAMP_ON_ENTRY.get(to)
    if stamp:
        setattr(locked, stamp, now)
        update_fields.append(stamp)
    locked.save(update_fields=update_fields)
    history_record(
        mission=locked, event=f"mission.{to}", actor=actor, from_status=current, to_status=to,
        message=message, data=data,
    )
    mission.status = locked.status
    for field in ("launched_at", "completed_at", "closed_at", "updated_at"):
        setattr(mission, field, getattr(locked, field))
    return mission


def mission_launch(*, mission: Mission, actor: Actor = None) -> Mission:
    return mission_transition(mission=mission, to=MissionStatus.ACTIVE, actor=actor, message="Launched.")


def mission_pause(*, mission: Mission, actor: Actor = None, reason: str = "") -> Mission:
    return mission_transition(mission=mission, to=MissionStatus.PAUSED, actor=actor, message=reason or "Paused.")


def mission_resume(*, mission: Mission, actor: Actor = None) -> Mission:
    if mission.status != MissionStatus.PAUSED:
        raise DomainError(
            f"Only a paused mission can be resumed; “{mission.name}” is {mission.status}.",
            field="status", code="invalid_transition",
        )
    return mission_transition(mission=mission, to=MissionStatus.ACTIVE, actor=actor, message="Resumed.")


def mission_cancel(*, mission: Mission, actor: Actor = None, reason: str = "") -> Mission:
    return mission_transition(
        mission=mission, to=MissionStatus.CANCELLED, actor=actor, message=reason or "Cancelled."
    )


def mission_close(*, mission: Mission, actor: Actor = None, note: str = "") -> Mission:
    return mission_transition(mission=mission, to=MissionStatus.CLOSED, actor=actor, message=note or "Signed off.")


@transaction.atomic
def membership_set(*, mission: Mission, user: User, role: str, actor: Actor = None,
                   signoff_required: bool = False) -> Membership:
    """Give ``user`` a role in the mission; a stakeholder may be named one whose sign-off the closing needs."""
    if role not in Role.values:
        raise DomainError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role")
    if user.pk == mission.owner_id and role != Role.MISSION_OWNER:
        raise DomainError("The Mission Owner keeps the mission_owner role; change the owner first.", field="role")
    if signoff_required and role != Role.STAKEHOLDER:
        raise DomainError("Only a stakeholder's sign-off can be required before closing.", field="signoff_required")
    membership, created = Membership.objects.update_or_create(
        mission=mission, user=user, defaults={"role": role, "signoff_required": signoff_required}
    )
    required = " whose sign-off is required before closing" if signoff_required else ""
    history_record(
        mission=mission, event="membership.set", actor=actor,
        message=f"{user.get_username()} is {membership.get_role_display()}{required}.",
        data={"user": user.get_username(), "role": role, "created": created, "signoff_required": signoff_required},
    )
    return membership


@transaction.atomic
def signoff_record(*, mission: Mission, user: User, decision: str, note: str = "") -> MissionSignoff:
    """Store a stakeholder's sign-off and its history entry together (the workflow verb checks who and when)."""
    signoff = MissionSignoff.objects.create(mission=mission, user=user, decision=decision, note=note)
    label = signoff.get_decision_display().lower()
    history_record(
        mission=mission, event=f"signoff.{decision}", actor=user,
        message=f"{user.get_username()} {label}" + (f": {note}" if note else "."),
        data={"signoff": signoff.pk, "decision": decision},
    )
    return signoff


@transaction.atomic
def membership_remove(*, mission: Mission, user: User, actor: Actor = None) -> None:
    if user.pk == mission.owner_id:
        raise DomainError("The Mission Owner cannot be removed; change the owner first.", field="user")
    deleted, _ = Membership.objects.filter(mission=mission, user=user).delete()
    if deleted:
        history_record(
            mission=mission, event="membership.removed", actor=actor,
            message=f"{user.get_username()} no longer has a role.", data={"user": user.get_username()},
        )
