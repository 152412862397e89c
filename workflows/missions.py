"""The Mission Owner's verbs on a mission: launch, pause, resume, cancel, close; a stakeholder's sign-off; and
creating a mission from a blueprint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from blueprints.services import blueprint_launch
from genesis.exceptions import DomainError
from history.services import Actor
from missions.choices import SIGNOFF_STATUSES, MissionStatus, SignoffDecision
from missions.models import Mission, MissionSignoff
from missions.permissions import can_create_missions, can_manage, can_sign_off
from missions.selectors import signoffs_missing
from missions.services import mission_transition, signoff_record
from pipeline.specfile import load_spec_text, spec_connection_names
from tasks import services as task_services
from tasks.choices import TASK_FINISHED, RunStatus, TaskStatus
from tasks.dispatch import dispatch_ready
from tasks.models import Run, Task
from tasks.phase_gate import phases_advance
from tasks.queue import enqueue_runs
from workflows.common import require

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from blueprints.models import BlueprintVersion


def _owner_of(mission: Mission) -> str:
    return f"the Mission Owner of “{mission.name}” (or staff)"


@transaction.atomic
def mission_launch(*, mission: Mission, actor: Actor = None) -> Mission:
    """A draft mission becomes active: its first phase opens and its ready tasks start."""
    require(can_manage, actor, mission, doing="launch it", who_may=_owner_of(mission))
    mission_transition(mission=mission, to=MissionStatus.ACTIVE, actor=actor, message="Launched.")
    if mission.phases.exists():
        phases_advance(mission=mission, actor=actor)
    dispatch_ready(mission_id=mission.pk, actor=actor)
    return mission


@transaction.atomic
def mission_pause(*, mission: Mission, actor: Actor = None, reason: str = "") -> Mission:
    """No new attempt starts (queued runs stay queued); running attempts finish what they do."""
    require(can_manage, actor, mission, doing="pause it", who_may=_owner_of(mission))
    return mission_transition(mission=mission, to=MissionStatus.PAUSED, actor=actor, message=reason or "Paused.")


@transaction.atomic
def mission_resume(*, mission: Mission, actor: Actor = None) -> Mission:
    """Queued runs are handed to the workers again and whatever became ready starts."""
    require(can_manage, actor, mission, doing="resume it", who_may=_owner_of(mission))
    if mission.status != MissionStatus.PAUSED:
        raise DomainError(f"Only a paused mission can be resumed; “{mission.name}” is {mission.status}.",
                          field="status", code="invalid_transition")
    mission_transition(mission=mission, to=MissionStatus.ACTIVE, actor=actor, message="Resumed.")
    if mission.phases.exists():
        phases_advance(mission=mission, actor=actor)
    queued = list(Run.objects.filter(task__mission=mission, status=RunStatus.QUEUED).values_list("pk", flat=True))
    enqueue_runs(queued)
    dispatch_ready(mission_id=mission.pk, actor=actor)
    return mission


@transaction.atomic
def mission_cancel(*, mission: Mission, actor: Actor = None, reason: str = "") -> Mission:
    """Every live run is cancelled (running agents stop at their next heartbeat), open questions close and unfinished
    tasks are cancelled."""
    require(can_manage, actor, mission, doing="cancel it", who_may=_owner_of(mission))
    reason = reason or "Mission cancelled."
    mission_transition(mission=mission, to=MissionStatus.CANCELLED, actor=actor, message=reason)
    unfinished = Task.objects.select_for_update().filter(mission=mission).exclude(
        status__in=[*TASK_FINISHED, TaskStatus.CANCELLED, TaskStatus.FAILED]).order_by("pk")
    for task in unfinished:
        task_services.task_stop_live_work(task=task, actor=None, reason=reason)
        task_services.task_transition(task=task, to=TaskStatus.CANCELLED, actor=None, message=reason)
    return mission


NOTE_MAX = 2000


@transaction.atomic
def mission_close(*, mission: Mission, actor: Actor = None, note: str = "") -> Mission:
    """The Mission Owner signs a completed (or failed) mission off with a note: it becomes closed. Refused while a
    stakeholder whose sign-off is required has not approved the outputs since the mission last completed."""
    require(can_manage, actor, mission, doing="close it", who_may=_owner_of(mission))
    note = _note(note)
    locked = Mission.objects.select_for_update().get(pk=mission.pk)
    if locked.status in SIGNOFF_STATUSES:
        missing = signoffs_missing(locked)
        if missing:
            names = ", ".join(m.user.get_full_name() or m.user.get_username() for m in missing)
            raise DomainError(
                f"“{locked.name}” cannot be closed yet: the sign-off of {names} is required and not given "
                "(an approval since the mission completed).", field="signoffs", code="signoff_missing")
    return mission_transition(mission=mission, to=MissionStatus.CLOSED, actor=actor,
                              message=note or "Signed off.", data={"note": note} if note else None)


@transaction.atomic
def mission_signoff(*, mission: Mission, actor: User | None, decision: str, note: str = "") -> MissionSignoff:
    """A stakeholder approves the mission's delivered outputs or raises a concern, with a note; recorded in history.
    Only once the mission has completed (or failed) and before it is closed."""
    require(can_sign_off, actor, mission, doing="sign off on it", who_may=f"a stakeholder of “{mission.name}”")
    if actor is None:
        raise DomainError("A sign-off is a person's: name the stakeholder.", field="actor")
    if decision not in SignoffDecision.values:
        raise DomainError(f"Unknown decision {decision!r}; choose one of {', '.join(SignoffDecision.values)}.",
                          field="decision")
    note = _note(note)
    if decision == SignoffDecision.CONCERN and not note:
        raise DomainError("note: say what the concern is.", field="note")
    locked = Mission.objects.select_for_update().get(pk=mission.pk)
    if locked.status not in SIGNOFF_STATUSES:
        raise DomainError(
            f"“{locked.name}” is {locked.get_status_display().lower()}: outputs are signed off once the mission has "
            "completed and before it is closed.", field="status", code="invalid_transition")
    return signoff_record(mission=locked, user=actor, decision=decision, note=note)


def _note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise DomainError(f"note: at most {NOTE_MAX} characters ({len(note)} given).", field="note")
    return note


@transaction.atomic
def mission_create_from_blueprint(*, version: BlueprintVersion, name: str, objective: str, owner: User,
                                  actor: Actor = None, start: bool = False, **options: Any) -> Mission:
    """A new mission from a blueprint version (phases, tasks, dependencies, the connections it uses granted), as a
    draft or, with ``start``, launched at once. ``actor`` None is the system (a command)."""
    if actor is not None:
        require(lambda user, _obj: can_create_missions(user), actor, None, doing="create missions",
                who_may="staff or people given the 'add mission' permission")
    spec_file = options.get("spec_file")
    connections = list(options.pop("connections", ()))
    if spec_file:
        # The spec file's source and target connections are the mission's too: granted with the launch or refused.
        spec_file.seek(0)
        connections += spec_connection_names(load_spec_text(spec_file.read(), source="the spec file"))
        spec_file.seek(0)
    mission = blueprint_launch(version=version, name=name, objective=objective, owner=owner, actor=actor,
                               connections=connections, **options)
    if start:
        mission_launch(mission=mission, actor=actor)
    return mission
