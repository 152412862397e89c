"""Task, dependency, run, phase and artifact services: the only code that changes their state."""

from __future__ import annotations

import copy
import functools
import hashlib
import mimetypes
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from genesis import fastsql
from genesis.exceptions import DependencyCycle, DomainError, InvalidTransition
from genesis.graphs import reachable
from genesis.uploads import display_name, sha256_of, validate_upload_size
from history.models import HistoryEntry
from history.services import Actor, actor_fields, history_add, history_record
from missions.choices import MissionStatus
from missions.models import Mission
from tasks.choices import (
    PHASE_TRANSITIONS,
    RUN_TRANSITIONS,
    TASK_TRANSITIONS,
    ArtifactKind,
    NotificationStatus,
    PhaseStatus,
    QuestionStatus,
    RunStatus,
    TaskStatus,
)
from tasks.graph import cycle_keys, find_cycle, mission_edges
from tasks.models import Artifact, Dependency, Notification, Phase, Question, Run, Task

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from agents.models import Agent

TASK_EDITABLE_FIELDS = frozenset(
    {
        "title", "description", "acceptance_criteria", "owner_user", "owner_agent", "config",
        "max_attempts", "timeout_seconds", "position", "phase", "key",
    }
)


_P = ParamSpec("_P")
_R = TypeVar("_R")


@overload
def joined_atomic(fn: None = None) -> _JoinedAtomic: ...
@overload
def joined_atomic(fn: Callable[_P, _R]) -> Callable[_P, _R]: ...
def joined_atomic(fn: Callable[_P, _R] | None = None) -> _JoinedAtomic | Callable[_P, _R]:
    """Like ``transaction.atomic``, but inside a caller's transaction it joins it without a savepoint (two round
    trips saved per call on the engine's hot path). Only for functions that check everything before their first
    write, so a refusal never leaves half a change behind."""
    if fn is None:
        return _JoinedAtomic()

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _JoinedAtomic():
            return fn(*args, **kwargs)

    return wrapper


class _JoinedAtomic:
    _own: transaction.Atomic | None

    def __enter__(self) -> None:
        self._own = None
        if not transaction.get_connection().in_atomic_block:
            self._own = transaction.atomic()
            self._own.__enter__()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._own is not None:
            self._own.__exit__(exc_type, exc, tb)


# --- tasks -------------------------------------------------------------------------------------------


@transaction.atomic
def task_create(
    *,
    mission: Mission,
    key: str,
    title: str,
    owner_user: User | None = None,
    owner_agent: Agent | None = None,
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
        raise DomainError.from_validation(error) from None
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
        raise DomainError.from_validation(error) from None
    locked.save()
    task_record_edit(task=locked, actor=actor, changed_fields=changed)
    return locked


@joined_atomic
def task_transition(
    *,
    task: Task,
    to: str,
    actor: Actor = None,
    message: str = "",
    data: dict[str, Any] | None = None,
    run: Run | None = None,
    expected: str | frozenset[str] | None = None,
    already_locked: bool = False,
) -> Task:
    """The only way a task's status changes: row-locked, checked against the table, recorded in history.

    ``expected`` lets a caller say which status it saw; if another worker changed the task meanwhile,
    the change is refused instead of overwriting the newer state. ``already_locked``: the caller selected
    ``task`` FOR UPDATE in the current transaction, so its status is current (one round trip saved).
    """
    if already_locked and transaction.get_connection().in_atomic_block:
        locked = task
    else:
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
    # Written only over the status checked above: a caller's ``already_locked`` view that went stale is refused.
    if not fastsql.save_fields(locked, ["status", "updated_at"], where={"status": current}):
        locked.status = current
        raise DomainError(f"Task {locked.key} is no longer {current}: it changed meanwhile.", field="status",
                          code="stale")
    history_record(
        mission_id=locked.mission_id, task=locked, run=run, event=f"task.{to}", actor=actor,
        from_status=current, to_status=to, message=message, data=data,
    )
    task.status = to
    task.updated_at = locked.updated_at
    return task


# --- dependencies ------------------------------------------------------------------------------------


def dependency_check(*, task: Task, depends_on: Task, extra_edges: Iterable[tuple[int, int]] = (),
                     ) -> None:
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
                 exit_criteria: list[Any] | None = None, actor: Actor = None) -> Phase:
    phase = Phase.objects.create(
        mission=mission, order=order, name=name, description=description, exit_criteria=exit_criteria or []
    )
    history_record(mission=mission, event="phase.created", actor=actor, to_status=phase.status,
                   message=f"Phase {order}. {name} added.", data={"phase": phase.pk})
    return phase


@transaction.atomic
def phase_transition(*, phase: Phase, to: str, actor: Actor = None, message: str = "",
                     data: dict[str, Any] | None = None) -> Phase:
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


_RUN_TIMESTAMPS: dict[str, str] = {RunStatus.RUNNING: "started_at"}
_RUN_FINAL = {
    RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST, RunStatus.REJECTED,
    RunStatus.ANSWERED, RunStatus.WAITING,
}


def run_transition(
    *,
    run: Run,
    to: str,
    actor: Actor = None,
    message: str = "",
    data: dict[str, Any] | None = None,
    held_token: object = None,
    require_token: bool = False,
    already_locked: bool = False,
    lock_task: bool = False,
    **fields: Any,
) -> Run:
    """The only way a run's status changes. With ``require_token`` a worker must hold the current lease:
    a stale worker's late result is refused, and the refusal itself is recorded in history. ``held_token`` is
    the lease the caller holds; ``lease_token`` among ``fields`` sets a new one. ``already_locked`` says the caller
    selected ``run`` FOR UPDATE (with its task and mission) in the current transaction; ``lock_task`` locks the run's
    task in the same statement (the caller changes the task next: ``task_transition(..., already_locked=True)``,
    whose write is guarded by the status it read). A lease holder's transition is one conditional UPDATE of the
    run: the row as the caller knows it, under its token."""
    allowed_fields = {"worker", "lease_token", "lease_expires_at", "heartbeat_at", "log", "result", "error"}
    unknown = set(fields) - allowed_fields
    if unknown:
        raise DomainError(f"Unknown run field(s): {', '.join(sorted(unknown))}.")
    with joined_atomic():
        if (require_token and held_token is not None and not already_locked
                and to in RUN_TRANSITIONS.get(run.status, ())):
            # One conditional UPDATE locks the row, checks the lease and writes; if it finds the run changed (its
            # lease taken or lost), the locking path below finds out how and records the refusal.
            applied = _run_apply(run, to=to, actor=actor, message=message, data=data, fields=fields,
                                 where={"status": run.status, "lease_token": held_token})
            if applied is not None:
                return applied
        if already_locked and transaction.get_connection().in_atomic_block:
            locked = run
        else:
            of = ("self", "task") if lock_task else ("self",)
            locked = Run.objects.select_for_update(of=of).select_related("task__mission").get(pk=run.pk)
        current = locked.status
        stale = require_token and (held_token is None or str(locked.lease_token) != str(held_token))
        if not stale:
            applied = _run_apply(locked, to=to, actor=actor, message=message, data=data, fields=fields)
            if applied is None:  # no guard was given: the row is locked and the write cannot miss
                raise DomainError(f"Run {locked.pk} could not be written.")
            return applied
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


def _run_apply(run: Run, *, to: str, actor: Actor, message: str, data: dict[str, Any] | None, fields: dict[str, Any],
               where: dict[str, Any] | None = None) -> Run | None:
    """Check and write the transition of ``run`` (locked by the caller, or guarded by ``where``: field → value the
    row must still hold; None, with nothing written, if it no longer does) and record it."""
    current = run.status
    allowed = RUN_TRANSITIONS[current]
    if to not in allowed:
        raise InvalidTransition(entity="Run", label=f"{run.task.key}#{run.attempt}", from_status=current,
                                to_status=to, allowed=sorted(allowed))
    now = timezone.now()
    locked = copy.copy(run) if where else run  # the caller's object is left as it was if the guard fails
    locked.status = to
    for field, value in fields.items():
        setattr(locked, field, value)
    changed = {"status", *fields}  # saved alone: the log and result of a long run are not written back again
    if to in _RUN_TIMESTAMPS and getattr(locked, _RUN_TIMESTAMPS[to]) is None:
        setattr(locked, _RUN_TIMESTAMPS[to], now)
        changed.add(_RUN_TIMESTAMPS[to])
    if to in _RUN_FINAL:
        locked.finished_at = now
        locked.lease_token = None
        locked.lease_expires_at = None
        changed |= {"finished_at", "lease_token", "lease_expires_at"}
    if not fastsql.save_fields(locked, sorted(changed), where=where):
        if where:
            return None
        raise DatabaseError(f"Run {locked.pk} was not found to save.")
    history_record(mission_id=locked.task.mission_id, task=locked.task, run=locked, event=f"run.{to}", actor=actor,
                   from_status=current, to_status=to, message=message, data=data)
    return locked


# --- artifacts ---------------------------------------------------------------------------------------


@transaction.atomic
def artifact_create(
    *,
    mission: Mission,
    kind: str,
    name: str,
    file: File[Any] | bytes | str | None = None,
    url: str = "",
    task: Task | None = None,
    run: Run | None = None,
    actor: Actor = None,
    content_type: str = "",
    on_finished_mission: bool = False,
) -> Artifact:
    """Store an output. Files go under a generated name with their sha256; a same-named artifact of the same
    task becomes a new version, the old one stays as it was. A completed, closed or cancelled mission takes no new
    output (409, naming its status), except the reports of what keeps running after it (``on_finished_mission``:
    the scheduled refresh and environment builds)."""
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
    if not on_finished_mission:
        _refuse_output_to_finished_mission(mission)
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
        # The field rules (kind, name, lengths, URL). Not the relations, which are the objects checked above under the
        # mission's lock, nor the version's uniqueness, which the version counted under that lock gives: Django would
        # ask the database again for each (five queries per artifact, and agents store dozens per mission).
        artifact.full_clean(exclude=["file", "mission", "task", "run", "created_by_user", "created_by_agent"],
                            validate_unique=False)
    except ValidationError as error:
        raise DomainError.from_validation(error) from None
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


@transaction.atomic
def artifact_store_for_run(
    *, run: Run, token: Any, kind: str, name: str, content: bytes | str, content_type: str = "",
    actor: Actor = None,
) -> Artifact:
    """Store an output an agent writes while it holds ``run`` under the lease ``token``, once per (run, name,
    content): the run's newest artifact of that name is answered if it holds the same bytes (and kind and content
    type), and no new version is stored. A write the worker tries again after its connection failed (the first try
    may have committed unseen), and an attempt run again from the top after its connection was lost under the
    agent, so leave one artifact, not one per try. Different content is a new version, as any write of a name is.

    The lease is checked on the run's row, locked, in the transaction that stores the artifact: a worker that no
    longer holds the run (it was timed out, cancelled or swept as lost, and the task's next attempt may already be
    writing) stores nothing, so it cannot put a stale output above a newer one. Locks are taken mission first, then
    run, the order the mission verbs (cancel) take them in, so the two never wait on each other in a cycle."""
    Mission.objects.select_for_update().filter(pk=run.task.mission_id).first()
    held = Run.objects.select_for_update(of=("self",)).filter(
        pk=run.pk, lease_token=token, status=RunStatus.RUNNING).exists()
    if not held:
        raise DomainError("This worker no longer holds the run; the artifact was not stored.", code="stale_lease")
    data = content.encode() if isinstance(content, str) else content
    clean = display_name(name)
    newest = Artifact.objects.filter(run=run, task_id=run.task_id, name=clean).order_by("-version")
    same: Artifact | None = newest.first()
    wanted_type = content_type or mimetypes.guess_type(clean)[0] or "application/octet-stream"
    if (same is not None and same.kind == kind and same.url == "" and same.content_type == wanted_type
            and same.sha256 == hashlib.sha256(data).hexdigest()):
        return same
    return artifact_create(mission=run.task.mission, task=run.task, run=run, kind=kind, name=name,
                           file=data, content_type=content_type, actor=actor)


def _creator_fields(actor: Actor) -> dict[str, Any]:
    fields = actor_fields(actor)
    return {
        "created_by_user": fields.get("actor_user"),
        "created_by_agent": fields.get("actor_agent"),
    }


# --- bulk transitions (the dispatcher moves many tasks at once: same table, one history row each) ----------


@joined_atomic
def tasks_transition_bulk(
    *, task_ids: list[int], from_status: str, to: str, actor: Actor = None, message: str = "",
    data: dict[str, Any] | None = None, then_to: str | None = None, then_message: str = "",
    locked_rows: list[tuple[int, int]] | None = None,
) -> list[int]:
    """Move every listed task that is still ``from_status`` to ``to`` (and on to ``then_to``, when given: both
    steps checked against the table and recorded); returns the ids that moved.

    Rows are locked first, so a task another worker moved meanwhile is left alone, never overwritten."""
    steps = [(from_status, to, message)] + ([(to, then_to, then_message)] if then_to else [])
    for before, after, _ in steps:
        if after not in TASK_TRANSITIONS[before]:
            raise InvalidTransition(entity="Task", label="(bulk)", from_status=before, to_status=after,
                                    allowed=sorted(TASK_TRANSITIONS[before]))
    if not task_ids:
        return []
    if locked_rows is not None and transaction.get_connection().in_atomic_block:
        # The caller holds these rows' locks in this transaction and saw them in ``from_status``: (pk, mission_id).
        rows = list(locked_rows)
    else:
        rows = list(Task.objects.filter(pk__in=task_ids, status=from_status).select_for_update()
                    .values_list("pk", "mission_id"))
    if not rows:
        return []
    ids = [pk for pk, _ in rows]
    Task.objects.filter(pk__in=ids).update(status=steps[-1][1], updated_at=timezone.now())
    fields = actor_fields(actor)
    history_add(
        HistoryEntry(mission_id=mission_id, task_id=pk, event=f"task.{after}", from_status=before, to_status=after,
                     message=text, data=data or {}, **fields)
        for pk, mission_id in rows for before, after, text in steps
    )
    return ids


@joined_atomic
def runs_create_bulk(*, tasks: list[Task], actor: Actor = None, available_at: datetime | None = None,
                     enqueue_now: bool = False, keep_first: bool = False) -> list[Run]:
    """A new queued attempt for each task (whose rows the caller has locked), with one history row each.
    ``enqueue_now``: stamped as handed to the queue; ``keep_first``: except the first, which the calling worker
    keeps to run next itself (``tasks`` point 4)."""
    if not tasks:
        return []
    if all(hasattr(t, "last_attempt") for t in tasks):  # the caller read them already (annotated)
        latest = {t.pk: t.last_attempt for t in tasks}  # type: ignore[attr-defined]  # annotated by the caller
    else:
        latest = dict(
            Run.objects.filter(task_id__in=[t.pk for t in tasks]).values("task_id").annotate(m=Max("attempt"))
            .values_list("task_id", "m")
        )
    # No savepoint: a unique violation here is a dispatch bug, and the caller's whole transaction must roll back.
    now = timezone.now() if enqueue_now else None
    runs = Run.objects.bulk_create([
        Run(task_id=t.pk, attempt=(latest.get(t.pk) or 0) + 1, available_at=available_at,
            enqueued_at=None if keep_first and i == 0 else now)
        for i, t in enumerate(tasks)
    ])
    by_task = {t.pk: t for t in tasks}
    fields = actor_fields(actor)
    history_add(
        HistoryEntry(mission_id=by_task[r.task_id].mission_id, task_id=r.task_id, run_id=r.pk, event="run.created",
                     to_status=RunStatus.QUEUED, message=f"Attempt {r.attempt} of {by_task[r.task_id].key} queued.",
                     **fields)
        for r in runs
    )
    return runs


# --- several rows at once, for the verbs: stopping live work, re-opening what a rejection invalidates ---------


def task_waiting_run(task: Task) -> Run | None:
    """The task's run waiting for a person (locked), if any."""
    return task.runs.select_for_update().filter(status=RunStatus.WAITING).order_by("-attempt").first()


def task_stop_live_work(*, task: Task, actor: Actor, reason: str) -> None:
    """Cancel a task's live or waiting run and its open questions (a worker still running it is refused later)."""
    for run in task.runs.select_for_update().filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING,
                                                                  RunStatus.WAITING]):
        run_transition(run=run, to=RunStatus.CANCELLED, actor=actor, message=reason)
    for question in task.questions.select_for_update().filter(status=QuestionStatus.OPEN):
        question_transition(question=question, to=QuestionStatus.CANCELLED, actor=actor, message=reason)


def tasks_reopen_downstream(*, task: Task, actor: Actor, reason: str) -> list[str]:
    """Every task downstream of ``task`` goes back to pending (live work cancelled); returns their keys."""
    children: dict[int, list[int]] = {}
    for child_id, parent_id in Dependency.objects.filter(task__mission_id=task.mission_id).values_list(
        "task_id", "depends_on_id"
    ):
        children.setdefault(parent_id, []).append(child_id)
    seen = reachable(children, task.pk)
    reopened = []
    for child in Task.objects.select_for_update().filter(pk__in=seen).order_by("position", "id"):
        if child.status == TaskStatus.PENDING:
            continue
        task_stop_live_work(task=child, actor=actor, reason=reason)
        if TaskStatus.PENDING not in TASK_TRANSITIONS[child.status]:
            if TaskStatus.READY not in TASK_TRANSITIONS[child.status]:
                continue
            task_transition(task=child, to=TaskStatus.READY, actor=actor, message=reason)
        task_transition(task=child, to=TaskStatus.PENDING, actor=actor, message=reason,
                        data={"reopened_by": task.key})
        reopened.append(child.key)
    return reopened


def phases_reopen(*, mission: Mission, keys: list[str], actor: Actor, reason: str) -> None:
    """Phases already left (passed, waived, failed) that hold re-opened work open again: their exit criteria are
    evaluated afresh when their tasks are done, instead of a pass that no longer describes the work."""
    phases = Phase.objects.filter(mission=mission, tasks__key__in=keys).exclude(
        status__in=[PhaseStatus.OPEN, PhaseStatus.PENDING]).distinct().order_by("order")
    for phase in phases:
        phase_transition(phase=phase, to=PhaseStatus.OPEN, actor=actor, message=reason,
                         data={"reopened_by": keys[0]})


# --- questions -------------------------------------------------------------------------------------------------


@transaction.atomic
def question_create(*, task: Task, run: Run | None, addressed_to: User, text: str, options: list[Any] | None = None,
                    default: str | None = None, context: dict[str, Any] | None = None, actor: Actor = None) -> Question:
    question = Question.objects.create(
        mission_id=task.mission_id, task=task, run=run, addressed_to=addressed_to, text=text,
        options=[str(o) for o in (options or [])], default="" if default is None else str(default),
        context=context or {},
    )
    history_record(mission=task.mission, task=task, run=run, event="question.asked", actor=actor,
                   to_status=question.status, message=text,
                   data={"question": question.pk, "addressed_to": addressed_to.get_username(),
                         "options": question.options})
    return question


@transaction.atomic
def question_transition(*, question: Question, to: str, actor: Actor = None, message: str = "",
                        **fields: Any) -> Question:
    locked = Question.objects.select_for_update(of=("self",)).select_related("mission", "task").get(pk=question.pk)
    allowed: set[str] = set()
    if locked.status == QuestionStatus.OPEN:
        allowed = {QuestionStatus.ANSWERED, QuestionStatus.CANCELLED}
    if to not in allowed:
        raise InvalidTransition(entity="Question", label=str(locked.pk), from_status=locked.status, to_status=to,
                                allowed=sorted(allowed))
    current = locked.status
    locked.status = to
    for field, value in fields.items():
        setattr(locked, field, value)
    locked.save()
    history_record(mission=locked.mission, task=locked.task, run=locked.run, event=f"question.{to}", actor=actor,
                   from_status=current, to_status=to, message=message,
                   data={"question": locked.pk, **({"answer": fields["answer"]} if "answer" in fields else {})})
    question.status = to
    return locked


# --- notifications ----------------------------------------------------------------------------------------------


@transaction.atomic
def notification_transition(*, notification: Notification, to: str, error: str = "") -> Notification:
    """Record a delivery attempt's result: sent, or failed (with the error); each attempt is in history."""
    locked = Notification.objects.select_for_update(of=("self",)).select_related("mission").get(pk=notification.pk)
    current = locked.status
    locked.attempts += 1
    locked.status = to
    locked.last_error = error
    if to == NotificationStatus.SENT:
        locked.sent_at = timezone.now()
    locked.save()
    history_record(
        mission=locked.mission, task=locked.task, event=f"notification.{to}", from_status=current, to_status=to,
        message=(f"{locked.channel} to {locked.target}: " + (error or locked.subject)),
        data={"notification": locked.pk, "attempt": locked.attempts, "channel": locked.channel},
    )
    return locked


# --- artifacts: finished missions --------------------------------------------------------------------------------


def artifact_refusal(mission: Mission) -> str | None:
    """Why ``mission`` takes no new artifact now, or None: a completed, closed or cancelled mission's record is done
    (completed work re-opens only through a rejection, which makes the mission active again). The status is read
    from the database, not from the object passed."""
    status = Mission.objects.filter(pk=mission.pk).values_list("status", flat=True).first()
    if status not in {MissionStatus.COMPLETED, MissionStatus.CLOSED, MissionStatus.CANCELLED}:
        return None
    return (f"Mission “{mission.name}” is {status}: it takes no new artifacts (re-open completed work by rejecting "
            "it, which makes the mission active again).")


def _refuse_output_to_finished_mission(mission: Mission) -> None:
    reason = artifact_refusal(mission)
    if reason:
        raise DomainError(reason, field="mission", code="mission_finished")
