"""Task, dependency, run, phase and artifact services: the only code that changes their state."""

from __future__ import annotations

import mimetypes
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from genesis.exceptions import DependencyCycle, DomainError, InvalidTransition
from genesis.uploads import display_name, sha256_of, validate_upload_size
from missions.models import Mission
from tasks.choices import (
    PHASE_TRANSITIONS,
    RUN_TRANSITIONS,
    TASK_TRANSITIONS,
    ArtifactKind,
    RunStatus,
)
from tasks.graph import cycle_keys, find_cycle, mission_edges
from tasks.history import Actor, actor_fields, history_record
from tasks.models import Artifact, Dependency, Phase, Run, Task

TASK_EDITABLE_FIELDS = frozenset(
    {
        "title", "description", "acceptance_criteria", "owner_user", "owner_agent", "config",
        "max_attempts", "timeout_seconds", "position", "phase", "key",
    }
)


def _validation_to_domain(error: ValidationError) -> DomainError:
    if hasattr(error, "error_dict"):
        field, errors = next(iter(error.error_dict.items()))
        text = " ".join(message for e in errors for message in e.messages)
        return DomainError(f"{field}: {text}", field=field if field != "__all__" else None)
    return DomainError(" ".join(error.messages))


# --- tasks -------------------------------------------------------------------------------------------


@transaction.atomic
def task_create(
    *,
    mission: Mission,
    key: str,
    title: str,
    owner_user=None,
    owner_agent=None,
    actor: Actor = None,
    **fields: Any,
) -> Task:
    unknown = set(fields) - TASK_EDITABLE_FIELDS
    if unknown:
        raise DomainError(f"Unknown task field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    if "position" not in fields:
        fields["position"] = (Task.objects.filter(mission=mission).aggregate(m=Max("position"))["m"] or 0) + 1
    task = Task(mission=mission, key=key, title=title, owner_user=owner_user, owner_agent=owner_agent, **fields)
    try:
        task.full_clean()
    except ValidationError as error:
        raise _validation_to_domain(error) from None
    task.save()
    task_record_created(task=task, actor=actor)
    return task


def task_record_created(*, task: Task, actor: Actor) -> None:
    """History for a task saved by a validated form (the admin's inline) or by ``task_create``."""
    history_record(
        mission=task.mission, task=task, event="task.created", actor=actor, to_status=task.status,
        message=f"Task {task.key} created, owned by {task.owner}.",
        data={"owner": str(task.owner), "owner_kind": "agent" if task.owned_by_agent else "user"},
    )


def task_record_edit(*, task: Task, actor: Actor, changed_fields: list[str]) -> None:
    if changed_fields:
        history_record(
            mission=task.mission, task=task, event="task.updated", actor=actor,
            message=f"Task {task.key}: changed " + ", ".join(sorted(changed_fields)) + ".",
            data={"changed": sorted(changed_fields)},
        )


@transaction.atomic
def task_update(*, task: Task, actor: Actor, **changes: Any) -> Task:
    unknown = set(changes) - TASK_EDITABLE_FIELDS
    if unknown:
        raise DomainError(f"These fields cannot be edited here: {', '.join(sorted(unknown))}.",
                          field=sorted(unknown)[0])
    locked = Task.objects.select_for_update().get(pk=task.pk)
    changed = []
    for field, value in changes.items():
        if getattr(locked, field) != value:
            setattr(locked, field, value)
            changed.append(field)
    if not changed:
        return locked
    try:
        locked.full_clean()
    except ValidationError as error:
        raise _validation_to_domain(error) from None
    locked.save()
    task_record_edit(task=locked, actor=actor, changed_fields=changed)
    return locked


@transaction.atomic
def task_transition(
    *,
    task: Task,
    to: str,
    actor: Actor = None,
    message: str = "",
    data: dict | None = None,
    run: Run | None = None,
    expected: str | frozenset[str] | None = None,
) -> Task:
    """The only way a task's status changes: row-locked, checked against the table, recorded in history.

    ``expected`` lets a caller say which status it saw; if another worker changed the task meanwhile,
    the change is refused instead of overwriting the newer state.
    """
    locked = Task.objects.select_for_update().get(pk=task.pk)
    current = locked.status
    if expected is not None:
        wanted = {expected} if isinstance(expected, str) else set(expected)
        if current not in wanted:
            raise DomainError(
                f"Task {locked.key} is {current}, not {' or '.join(sorted(wanted))}: it changed meanwhile.",
                field="status", code="stale",
            )
    allowed = TASK_TRANSITIONS[current]
    if to not in allowed:
        raise InvalidTransition(
            entity="Task", label=locked.key, from_status=current, to_status=to, allowed=sorted(allowed)
        )
    locked.status = to
    locked.save(update_fields=["status", "updated_at"])
    history_record(
        mission=locked.mission, task=locked, run=run, event=f"task.{to}", actor=actor,
        from_status=current, to_status=to, message=message, data=data,
    )
    task.status = to
    task.updated_at = locked.updated_at
    return task


# --- dependencies ------------------------------------------------------------------------------------


def dependency_check(*, task: Task, depends_on: Task, extra_edges: list[tuple[int, int]] = ()) -> None:
    """Raise if ``task`` may not depend on ``depends_on``: self, other mission, or a cycle (path named).

    ``extra_edges`` are (task_id, depends_on_id) pairs about to be added together with this one.
    """
    if task.pk == depends_on.pk:
        raise DependencyCycle([task.key, task.key])
    if task.mission_id != depends_on.mission_id:
        raise DomainError(
            f"Task {task.key} can only depend on tasks of its own mission; {depends_on.key} belongs to "
            f"“{depends_on.mission}”.", field="depends_on", code="other_mission",
        )
    edges = mission_edges(task.mission_id)
    for a, b in extra_edges:
        edges[a].append(b)
    loop = find_cycle(edges, task.pk, depends_on.pk)
    if loop:
        raise DependencyCycle(cycle_keys(loop))


@transaction.atomic
def dependency_add(*, task: Task, depends_on: Task, actor: Actor = None) -> Dependency:
    # Lock the mission so two concurrent edges cannot together close a loop that each alone would not.
    Mission.objects.select_for_update().filter(pk=task.mission_id).first()
    dependency_check(task=task, depends_on=depends_on)
    if Dependency.objects.filter(task=task, depends_on=depends_on).exists():
        raise DomainError(f"Task {task.key} already depends on {depends_on.key}.", field="depends_on",
                          code="duplicate")
    try:
        with transaction.atomic():
            edge = Dependency.objects.create(task=task, depends_on=depends_on)
    except IntegrityError as error:
        raise DomainError(f"Dependency refused by the database: {error}", field="depends_on") from None
    dependency_record_added(edge=edge, actor=actor)
    return edge


def dependency_record_added(*, edge: Dependency, actor: Actor) -> None:
    history_record(
        mission=edge.task.mission, task=edge.task, event="dependency.added", actor=actor,
        message=f"{edge.task.key} now waits for {edge.depends_on.key}.",
        data={"depends_on": edge.depends_on.key},
    )


@transaction.atomic
def dependency_remove(*, edge: Dependency, actor: Actor = None) -> None:
    task, depends_on = edge.task, edge.depends_on
    edge.delete()
    history_record(
        mission=task.mission, task=task, event="dependency.removed", actor=actor,
        message=f"{task.key} no longer waits for {depends_on.key}.", data={"depends_on": depends_on.key},
    )


# --- phases ------------------------------------------------------------------------------------------


@transaction.atomic
def phase_create(*, mission: Mission, order: int, name: str, description: str = "",
                 exit_criteria: list | None = None, actor: Actor = None) -> Phase:
    phase = Phase.objects.create(
        mission=mission, order=order, name=name, description=description, exit_criteria=exit_criteria or []
    )
    history_record(mission=mission, event="phase.created", actor=actor, to_status=phase.status,
                   message=f"Phase {order}. {name} added.", data={"phase": phase.pk})
    return phase


@transaction.atomic
def phase_transition(*, phase: Phase, to: str, actor: Actor = None, message: str = "",
                     data: dict | None = None) -> Phase:
    locked = Phase.objects.select_for_update().get(pk=phase.pk)
    current = locked.status
    allowed = PHASE_TRANSITIONS[current]
    if to not in allowed:
        raise InvalidTransition(entity="Phase", label=f"“{locked.name}”", from_status=current, to_status=to,
                                allowed=sorted(allowed))
    locked.status = to
    locked.save(update_fields=["status"])
    history_record(mission=locked.mission, event=f"phase.{to}", actor=actor, from_status=current,
                   to_status=to, message=message, data={"phase": locked.pk, **(data or {})})
    phase.status = to
    return phase


# --- runs --------------------------------------------------------------------------------------------


@transaction.atomic
def run_create(*, task: Task, actor: Actor = None) -> Run:
    """A new attempt for the task. The database refuses a second live run of the same task."""
    locked = Task.objects.select_for_update().get(pk=task.pk)
    attempt = (locked.runs.aggregate(m=Max("attempt"))["m"] or 0) + 1
    try:
        with transaction.atomic():
            run = Run.objects.create(task=locked, attempt=attempt)
    except IntegrityError:
        raise DomainError(f"Task {locked.key} already has a live run.", code="run_active") from None
    history_record(mission=locked.mission, task=locked, run=run, event="run.created", actor=actor,
                   to_status=run.status, message=f"Attempt {attempt} of {locked.key} queued.")
    return run


_RUN_TIMESTAMPS = {RunStatus.RUNNING: "started_at"}
_RUN_FINAL = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST}


def run_transition(
    *,
    run: Run,
    to: str,
    actor: Actor = None,
    message: str = "",
    data: dict | None = None,
    held_token=None,
    require_token: bool = False,
    **fields: Any,
) -> Run:
    """The only way a run's status changes. With ``require_token`` a worker must hold the current lease:
    a stale worker's late result is refused, and the refusal itself is recorded in history. ``held_token`` is
    the lease the caller holds; ``lease_token`` among ``fields`` sets a new one."""
    allowed_fields = {"worker", "lease_token", "lease_expires_at", "heartbeat_at", "log", "result", "error"}
    unknown = set(fields) - allowed_fields
    if unknown:
        raise DomainError(f"Unknown run field(s): {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        locked = Run.objects.select_for_update().select_related("task__mission").get(pk=run.pk)
        current = locked.status
        stale = require_token and (held_token is None or str(locked.lease_token) != str(held_token))
        if not stale:
            return _run_apply(locked, to=to, actor=actor, message=message, data=data, fields=fields)
    with transaction.atomic():
        history_record(
            mission=locked.task.mission, task=locked.task, run=locked, event="run.stale_result_refused",
            actor=actor, from_status=current, to_status=to,
            message=f"A worker without the current lease tried to set attempt {locked.attempt} to {to}.",
            data={"offered_token": str(held_token) if held_token else None},
        )
    raise DomainError(
        f"Run {locked.pk} is no longer held by this worker; its result was refused.", code="stale_lease"
    )


def _run_apply(locked: Run, *, to: str, actor: Actor, message: str, data: dict | None, fields: dict) -> Run:
    current = locked.status
    allowed = RUN_TRANSITIONS[current]
    if to not in allowed:
        raise InvalidTransition(entity="Run", label=f"{locked.task.key}#{locked.attempt}", from_status=current,
                                to_status=to, allowed=sorted(allowed))
    now = timezone.now()
    locked.status = to
    for field, value in fields.items():
        setattr(locked, field, value)
    if to in _RUN_TIMESTAMPS and getattr(locked, _RUN_TIMESTAMPS[to]) is None:
        setattr(locked, _RUN_TIMESTAMPS[to], now)
    if to in _RUN_FINAL:
        locked.finished_at = now
        locked.lease_token = None
        locked.lease_expires_at = None
    locked.save()
    history_record(mission=locked.task.mission, task=locked.task, run=locked, event=f"run.{to}", actor=actor,
                   from_status=current, to_status=to, message=message, data=data)
    return locked


# --- artifacts ---------------------------------------------------------------------------------------


@transaction.atomic
def artifact_create(
    *,
    mission: Mission,
    kind: str,
    name: str,
    file: File | bytes | str | None = None,
    url: str = "",
    task: Task | None = None,
    run: Run | None = None,
    actor: Actor = None,
    content_type: str = "",
) -> Artifact:
    """Store an output. Files go under a generated name with their sha256; a same-named artifact of the same
    task becomes a new version, the old one stays as it was."""
    if kind not in ArtifactKind.values:
        raise DomainError(f"Unknown artifact kind {kind!r}; choose one of {', '.join(ArtifactKind.values)}.",
                          field="kind")
    if (file is None) == (not url):
        raise DomainError("An artifact is either a file or a URL: give exactly one.", field="file")
    if task is not None and task.mission_id != mission.pk:
        raise DomainError("The task belongs to another mission.", field="task")
    if run is not None and (task is None or run.task_id != task.pk):
        raise DomainError("The run must be a run of the artifact's task.", field="run")
    name = display_name(name)
    Mission.objects.select_for_update().filter(pk=mission.pk).first()
    version = (
        Artifact.objects.filter(mission=mission, task=task, name=name).aggregate(m=Max("version"))["m"] or 0
    ) + 1
    artifact = Artifact(mission=mission, task=task, run=run, kind=kind, name=name, version=version, url=url,
                        **_creator_fields(actor))
    if file is not None:
        if isinstance(file, str):
            file = file.encode()
        if isinstance(file, bytes):
            file = ContentFile(file, name=name)
        try:
            validate_upload_size(file)
        except ValidationError as error:
            raise DomainError(" ".join(error.messages), field="file", code="file_too_large") from None
        artifact.sha256 = sha256_of(file)
        artifact.size = file.size
        artifact.content_type = (
            content_type or getattr(file, "content_type", None) or mimetypes.guess_type(name)[0]
            or "application/octet-stream"
        )
    else:
        artifact.content_type = content_type or "text/uri-list"
    try:
        artifact.full_clean(exclude=["file"])
    except ValidationError as error:
        raise _validation_to_domain(error) from None
    if file is not None:
        artifact.file.save(getattr(file, "name", None) or name, file, save=False)
        # If the row is not stored after all, the file must not linger on disk.
        try:
            with transaction.atomic():
                artifact.save()
        except Exception:
            artifact.file.storage.delete(artifact.file.name)
            raise
    else:
        artifact.save()
    history_record(mission=mission, task=task, run=run, event="artifact.created", actor=actor,
                   message=f"Artifact {name} v{version} ({kind}) stored.",
                   data={"artifact": artifact.pk, "sha256": artifact.sha256, "size": artifact.size})
    return artifact


def _creator_fields(actor: Actor) -> dict[str, Any]:
    fields = actor_fields(actor)
    return {
        "created_by_user": fields.get("actor_user"),
        "created_by_agent": fields.get("actor_agent"),
    }
