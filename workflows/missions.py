"""The Mission Owner's verbs on a mission: launch, pause, resume, cancel, close; a stakeholder's sign-off; and
creating a mission from a blueprint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction

from blueprints.services import blueprint_launch, launch_suggestion_attach
from genesis.exceptions import DomainError
from genesis.uploads import display_name, validate_upload_size
from history.services import Actor, history_record
from missions.choices import SIGNOFF_STATUSES, MissionStatus, SignoffDecision
from missions.models import Mission, MissionSignoff
from missions.permissions import can_create_missions, can_manage, can_sign_off, can_view
from missions.selectors import signoffs_missing
from missions.services import mission_transition, signoff_record
from pipeline.dbt.spec import approved_targets
from pipeline.specfile import SpecFileError, load_spec_text, spec_connection_names
from tasks import services as task_services
from tasks.choices import TASK_FINISHED, RunStatus, TaskStatus
from tasks.dispatch import dispatch_ready
from tasks.models import Run, Task
from tasks.notifications import notify
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


def spec_file_read(spec_file: File[Any], *, field: str = "spec_file") -> dict[str, Any]:
    """The uploaded spec file, checked before anything is written: within the upload size limit, UTF-8 YAML, and
    valid (pipeline/specfile.py). Raises ``DomainError`` on ``field`` naming the file and every path at fault."""
    name = display_name(getattr(spec_file, "name", "") or "spec file")
    try:
        validate_upload_size(spec_file)
    except ValidationError as error:
        raise DomainError(f"Spec file {name}: {error.messages[0]}", field=field, code="file_too_large") from None
    spec_file.seek(0)
    raw = spec_file.read()
    spec_file.seek(0)
    if len(raw) > settings.GENESIS_MAX_UPLOAD_BYTES:
        raise DomainError(f"Spec file {name}: {len(raw):,} bytes; the limit is "
                          f"{settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes.", field=field, code="file_too_large")
    try:
        return load_spec_text(raw, source=f"spec file {name}")
    except SpecFileError as error:
        raise DomainError(error.message, field=field, code="invalid_spec") from None


def _reused_mission(reference: Mission | int | str, *, actor: Actor, spec: dict[str, Any] | None) -> Mission:
    """The mission whose approved mapping specs a new mission reuses: one the actor may read, with an approved
    mapping spec for every target of the new mission's spec file."""
    found: Mission | None
    if isinstance(reference, Mission):
        found = reference
    else:
        text = str(reference).strip()
        found = (Mission.objects.filter(pk=int(text)) if text.isdigit() else Mission.objects.filter(name=text)).first()
    if found is None or (isinstance(actor, AbstractBaseUser) and not can_view(actor, found)):
        raise DomainError(f"from_mission: no mission {reference!s} you may read.", field="from_mission")
    approved = {t.name.upper() for t in approved_targets(found)}
    if not approved:
        raise DomainError(f"from_mission: mission “{found.name}” has no approved mapping spec to reuse.",
                          field="from_mission")
    wanted = [t["name"] for t in (spec or {}).get("targets", {}).get("tables", [])]
    missing = [name for name in wanted if name.upper() not in approved]
    if missing:
        raise DomainError(f"from_mission: mission “{found.name}” has no approved mapping spec for "
                          f"{', '.join(missing)} (approved: {', '.join(sorted(approved))}).", field="from_mission")
    return found


def _spec_connections(version: BlueprintVersion, spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The spec file names its source and target connections: they fill the blueprint's source and target
    connection parameters that the launch leaves empty."""
    named = {"source": spec["sources"].get("connection"), "target": spec["targets"].get("connection")}
    filled = dict(params)
    for param in version.parameters:
        purpose = param.get("purpose")
        if param["type"] == "connection" and named.get(purpose) and filled.get(param["name"]) in (None, ""):
            filled[param["name"]] = named[purpose]
    return filled


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
    signoff = signoff_record(mission=locked, user=actor, decision=decision, note=note)
    _tell_the_owner(mission=locked, signoff=signoff)
    return signoff


def _tell_the_owner(*, mission: Mission, signoff: MissionSignoff) -> None:
    """The Mission Owner hears of each sign-off, sent after the commit like the completion email. An approval goes to
    the owner alone; a concern goes to the mission's escalation channels too, since someone has to act on it."""
    who = signoff.user.get_full_name() or signoff.user.get_username()
    concern = signoff.decision == SignoffDecision.CONCERN
    missing = signoffs_missing(mission)
    names = ", ".join(m.user.get_full_name() or m.user.get_username() for m in missing)
    waiting = (f"Still waiting for the required sign-off of {names}." if missing
               else "No required sign-off is missing: you can close the mission with your sign-off note.")
    notify(
        mission=mission, event=f"signoff.{signoff.decision}", person=mission.owner, escalate=concern,
        subject=f"[{mission.name}] {who} " + ("raised a concern" if concern else "signed off the outputs"),
        body=(f"{who} ({signoff.user.get_username()}) "
              + ("raised a concern about" if concern else "approved") + f" the delivered outputs of “{mission.name}”"
              + (f": {signoff.note}" if signoff.note else ".")
              + ("\n\nAnswer the concern before closing the mission; the stakeholder can sign off again."
                 if concern else f"\n\n{waiting}")),
    )


def _note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise DomainError(f"note: at most {NOTE_MAX} characters ({len(note)} given).", field="note")
    return note


@transaction.atomic
def mission_create_from_blueprint(*, version: BlueprintVersion, name: str, objective: str, owner: User,
                                  actor: Actor = None, start: bool = False, spec_file: File[Any] | None = None,
                                  from_mission: Mission | int | str | None = None, suggestion: int | None = None,
                                  **options: Any) -> Mission:
    """A new mission from a blueprint version (phases, tasks, dependencies, the connections it uses granted), as a
    draft or, with ``start``, launched at once. ``actor`` None is the system (a command).

    ``spec_file`` is attached to the mission after it is validated, before anything is written: a bad one is
    refused naming the path at fault, and a blueprint that requires one (``requires: [spec_file]``) refuses to launch
    without it. Its targets expand the blueprint's ``for_each: target`` actions and its connections fill the source
    and target connection parameters left empty. ``from_mission`` names a mission whose approved mapping specs the
    new mission's mapping tasks verify against the current source instead of mapping again. ``suggestion`` is the
    language model's launch suggestion the person launches from: the mission takes its exchange and its tokens."""
    if actor is not None:
        require(lambda user, _obj: can_create_missions(user), actor, None, doing="create missions",
                who_may="staff or people given the 'add mission' permission")
    spec = spec_file_read(spec_file) if spec_file else None
    connections = list(options.pop("connections", ()))
    if spec is not None:
        # The spec file's source and target connections are the mission's too: granted with the launch or refused.
        connections += spec_connection_names(spec)
        options["params"] = _spec_connections(version, spec, options.get("params") or {})
        options["spec_file"] = spec_file
    reused = None
    if from_mission is not None and from_mission != "":
        reused = _reused_mission(from_mission, actor=actor, spec=spec)

    def reuse(action: Any, config: dict[str, Any]) -> dict[str, Any]:
        return {"from_mission": reused.pk} if reused is not None and action.owner == "field_mapping" else {}

    with transaction.atomic():
        mission = blueprint_launch(version=version, name=name, objective=objective, owner=owner, actor=actor,
                                   connections=connections, spec=spec, task_config=reuse, **options)
        if reused is not None:
            history_record(mission=mission, event="mission.reuses_mapping", actor=actor or owner,
                           message=f"Reuses the approved mapping specs of “{reused.name}”: the mapping tasks verify "
                                   "them against the current source instead of mapping again.",
                           data={"from_mission": reused.pk})
        if suggestion is not None:
            launch_suggestion_attach(suggestion_id=suggestion, mission=mission,
                                     user=actor if isinstance(actor, AbstractBaseUser) else owner, actor=actor)
    if start:
        mission_launch(mission=mission, actor=actor)
    return mission
