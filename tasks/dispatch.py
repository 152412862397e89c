"""Readiness and dispatch: what follows a launch, a resume, a finished task or a failed attempt (``tasks`` points 1,
3 and 4). Every state change goes through ``tasks.services``; runs reach the workers through ``tasks.queue``."""

from __future__ import annotations

import threading
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from history.services import Actor, history_batch, history_record
from missions import services as mission_services
from missions.choices import MissionMode, MissionStatus
from missions.models import Mission
from tasks import notifications, services
from tasks.acceptance import evaluate_success
from tasks.choices import TASK_FINISHED, TASK_TRANSITIONS, RunStatus, TaskStatus
from tasks.explain import explain_later
from tasks.models import Dependency, Phase, Run, Task
from tasks.phase_gate import WORKABLE, phases_advance
from tasks.queue import enqueue_runs
from tasks.timing import backoff_seconds


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


# While a worker records a run it may go on with (see the ``tasks`` point 4), the one run it keeps for itself.
_chain = threading.local()

def _will_keep_one() -> bool:
    """Whether this worker is recording a run and keeps none yet: ``_start_ready`` then keeps the first run it
    creates (``tasks`` point 4; the only place that keeps one)."""
    return getattr(_chain, "kept", None) == []


class keeping_next:
    """While a worker records a successful run, the first run that recording starts is kept for this worker to
    claim next instead of going through the queue (``tasks`` point 4): ``with keeping_next() as kept:`` then
    ``kept`` (a list) holds that run's id once the block ends. Nested blocks (sync mode runs executions inside
    executions) each keep their own."""

    def __init__(self, enabled: bool = True):
        self.kept: list[int] | None = [] if enabled else None

    def __enter__(self) -> list[int] | None:
        self._outer = getattr(_chain, "kept", None)
        _chain.kept = self.kept
        return self.kept

    def __exit__(self, *exc) -> None:
        _chain.kept = self._outer


def _unfinished_parent(task_ref) -> Exists:
    return Exists(
        Dependency.objects.filter(task_id=task_ref).exclude(depends_on__status__in=TASK_FINISHED)
    )

def _lock_pending(candidates: Q) -> list[int]:
    """Lock the pending tasks among ``candidates`` (in id order, so concurrent dispatchers never deadlock)."""
    return list(Task.objects.select_for_update().filter(candidates, status=TaskStatus.PENDING)
                .order_by("pk").values_list("pk", flat=True))

def _promote(*, mission: Mission, candidate_ids: list[int], actor: Actor = None) -> list[int]:
    """Move the candidates that really are ready (checked under their row locks) on: agent tasks get a queued
    run, people's tasks go to their inbox. Returns the run ids enqueued."""
    if not candidate_ids or mission.status != MissionStatus.ACTIVE:
        return []
    return _promote_locked(mission=mission, locked=_lock_pending(Q(pk__in=sorted(candidate_ids))), actor=actor)

def _promote_locked(*, mission: Mission, locked: list[int], actor: Actor = None) -> list[int]:
    if not locked:
        return []
    # Read after the locks: a parent that finished in a transaction committed meanwhile is seen as finished, so a
    # task whose parents finish at the same moment is promoted by exactly one of them.
    ready = _ready_among(locked)
    if not ready:
        return []
    return _start_ready(mission=mission, tasks=ready, actor=actor, from_status=TaskStatus.PENDING)

def _ready_fields() -> tuple[list[str], list[int]]:
    """The fields ``_ready_among`` reads, in the model's field order (which ``from_db`` takes), and where each is
    in its SELECT list."""
    selected = ["id", "mission_id", "key", "owner_agent_id", "owner_user_id"]
    names = [f.attname for f in Task._meta.concrete_fields if f.attname in selected]
    return names, [selected.index(name) for name in names]

_READY_FIELDS = _ready_fields()

def _ready_among(task_ids: list[int]) -> list[Task]:
    """The tasks among ``task_ids`` whose phase is workable and whose every prerequisite is finished, in the
    tasks' order, each with its latest attempt number (``last_attempt``). Hand-built (``genesis.fastsql``): it runs
    at every completion, and the ORM took longer to write this statement than the database to answer it."""
    t, p, d, r = (model._meta.db_table for model in (Task, Phase, Dependency, Run))
    ids = ", ".join(["%s"] * len(task_ids))
    sql = (
        f"SELECT t.id, t.mission_id, t.{connection.ops.quote_name('key')}, t.owner_agent_id, t.owner_user_id, "  # noqa: S608
        f"(SELECT MAX(r.attempt) FROM {r} r WHERE r.task_id = t.id) "
        f"FROM {t} t LEFT JOIN {p} p ON p.id = t.phase_id "
        f"WHERE t.id IN ({ids}) AND (t.phase_id IS NULL OR p.status IN ({', '.join(['%s'] * len(WORKABLE))})) "
        f"AND NOT EXISTS (SELECT 1 FROM {d} d JOIN {t} u ON u.id = d.depends_on_id WHERE d.task_id = t.id "
        f"AND u.status NOT IN ({', '.join(['%s'] * len(TASK_FINISHED))})) "
        "ORDER BY t.mission_id, t.position, t.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*task_ids, *sorted(WORKABLE), *sorted(TASK_FINISHED)])
        rows = cursor.fetchall()
    names, order = _READY_FIELDS
    ready = []
    for row in rows:
        task = Task.from_db(connection.alias, names, [row[i] for i in order])
        task.last_attempt = row[-1]
        ready.append(task)
    return ready

def _start_ready(*, mission: Mission, tasks: list[Task], actor: Actor = None,
                 from_status: str = TaskStatus.READY) -> list[int]:
    """Start tasks that are ready (or pending and just found ready: they pass through ``ready``, recorded)."""
    agent_tasks = [t for t in tasks if t.owner_agent_id]
    person_tasks = [t for t in tasks if t.owner_user_id]
    run_ids: list[int] = []
    became_ready = "All prerequisites are done."
    if agent_tasks:
        with history_batch():  # the runs' and the tasks' entries in one INSERT
            keep = _will_keep_one()
            runs = services.runs_create_bulk(tasks=agent_tasks, actor=actor, enqueue_now=True, keep_first=keep)
            if from_status == TaskStatus.PENDING:
                services.tasks_transition_bulk(
                    task_ids=[t.pk for t in agent_tasks], from_status=TaskStatus.PENDING, to=TaskStatus.READY,
                    message=became_ready, then_to=TaskStatus.QUEUED, then_message="Queued for its agent.",
                    actor=actor, locked_rows=[(t.pk, t.mission_id) for t in agent_tasks])
            else:
                services.tasks_transition_bulk(task_ids=[t.pk for t in agent_tasks], from_status=TaskStatus.READY,
                                               to=TaskStatus.QUEUED, actor=actor, message="Queued for its agent.")
        run_ids = [r.pk for r in runs]
        if keep:  # created unstamped: this worker claims it once the recording commits; the sweep is its backstop
            _chain.kept.append(run_ids[0])
        enqueue_runs(run_ids[1:] if keep else run_ids, stamped=True)
    if person_tasks and from_status == TaskStatus.PENDING:
        services.tasks_transition_bulk(task_ids=[t.pk for t in person_tasks], from_status=TaskStatus.PENDING,
                                       to=TaskStatus.READY, message=became_ready, actor=actor)
    if person_tasks:
        moved = set(services.tasks_transition_bulk(
            task_ids=[t.pk for t in person_tasks], from_status=TaskStatus.READY, to=TaskStatus.WAITING_APPROVAL,
            actor=actor, message="Waiting in its owner's inbox.",
        ))
        for task in Task.objects.filter(pk__in=moved).select_related("owner_user"):
            notifications.notify(
                mission=mission, task=task, event="task.waiting_approval", person=task.owner_user,
                subject=f"[{mission.name}] Your task {task.key} is ready",
                body=f"Task {task.key} ({task.title}) of mission “{mission.name}” is ready for you: "
                     "do it, then approve it (or reject it with feedback).",
            )
    return run_ids

@transaction.atomic
def dispatch_ready(*, mission_id: int, actor: Actor = None) -> list[int]:
    """Find and start every task of the mission that is ready (the full scan used at launch, resume and by the
    sweep). Returns the run ids enqueued."""
    mission = Mission.objects.get(pk=mission_id)
    if mission.status != MissionStatus.ACTIVE:
        return []
    candidates = list(
        Task.objects.filter(mission_id=mission_id, status=TaskStatus.PENDING)
        .filter(Q(phase__isnull=True) | Q(phase__status__in=WORKABLE))
        .exclude(_unfinished_parent(OuterRef("pk")))
        .values_list("pk", flat=True)
    )
    run_ids = _promote(mission=mission, candidate_ids=candidates, actor=actor)
    # Ready tasks left behind (e.g. a person's retried task) are started too.
    leftover = list(Task.objects.filter(mission_id=mission_id, status=TaskStatus.READY).select_for_update()
                    .only("pk", "mission_id", "key", "owner_agent_id", "owner_user_id"))
    if leftover:
        run_ids += _start_ready(mission=mission, tasks=leftover, actor=actor)
    _maybe_complete(mission_id=mission_id, actor=actor)
    return run_ids

def after_task_done(*, task: Task, actor: Actor = None) -> None:
    """Everything that follows a finished task, in the caller's transaction: its dependents that became ready
    start, its phase may be left (and in step mode the mission pauses there), and a finished mission completes."""
    _after_task_done_finish(task=task, pending=_start_dependents(task=task, actor=actor), actor=actor)

def _start_dependents(*, task: Task, actor: Actor = None) -> list[int] | None:
    """Start the finished task's dependents that are ready now; returns the pending dependents it found (locked),
    or None when the mission is not active. Reads no history: it may run inside a ``history_batch``."""
    if task.mission.status != MissionStatus.ACTIVE:
        return None
    # Its pending dependents, found and locked in one statement (hand-built, as in ``_ready_among``).
    t, d = Task._meta.db_table, Dependency._meta.db_table
    sql = (f"SELECT t.id FROM {t} t WHERE t.status IN (%s) AND t.id IN "  # noqa: S608
           f"(SELECT d.task_id FROM {d} d WHERE d.depends_on_id = %s) ORDER BY t.id"
           + (" FOR UPDATE OF t" if _is_postgres() else ""))
    with connection.cursor() as cursor:
        cursor.execute(sql, [TaskStatus.PENDING, task.pk])
        pending = [row[0] for row in cursor.fetchall()]
    _promote_locked(mission=task.mission, locked=pending, actor=actor)
    return pending

def _after_task_done_finish(*, task: Task, pending: list[int] | None, actor: Actor = None) -> None:
    """The rest of ``after_task_done``: exit checks and success criteria, which read history back."""
    if pending is None:
        return
    if task.phase_id is not None:
        _advance_phases(mission=task.mission, actor=actor)
    if not pending:  # nothing waited on it: it may have been the last task
        _maybe_complete(mission_id=task.mission.pk, actor=actor)

def _advance_phases(*, mission: Mission, actor: Actor = None) -> None:
    advance = phases_advance(mission=mission, actor=actor)
    for phase in advance.failed:
        explain_later("blueprints.jobs.phase_explain", phase.pk)
        notifications.notify(
            mission=mission, event="phase.failed", person=mission.owner,
            subject=f"[{mission.name}] Exit criteria of {phase.name} failed",
            body=f"The exit criteria of phase {phase.name} failed; later phases wait. Waive them or re-run the "
                 "checks once fixed.",
        )
    if not advance.opened:
        return
    phase_boundary_crossed(mission=mission, left=advance.passed, opened=advance.opened, how="passed", actor=actor)

def phase_boundary_crossed(*, mission: Mission, left, opened, how: str, actor: Actor = None) -> None:
    """Phases ``left`` were passed (or waived) and ``opened`` opened: in step mode the mission pauses there until
    the Mission Owner continues; in continuous mode the tasks the opened phases made ready start now."""
    if not opened:
        return
    if left and mission.mode == MissionMode.STEP and mission.status == MissionStatus.ACTIVE:
        names = ", ".join(p.name for p in left)
        mission_services.mission_transition(
            mission=mission, to=MissionStatus.PAUSED, actor=actor,
            message=f"Step mode: phase {names} {how}; waiting for the Mission Owner to continue.",
        )
        notifications.notify(
            mission=mission, event="mission.step_paused", person=mission.owner,
            subject=f"[{mission.name}] Phase {names} {how}",
            body=f"Phase {names} {how}. The mission runs step by step: resume it to start "
                 f"{', '.join(p.name for p in opened)}.",
        )
        return
    dispatch_ready(mission_id=mission.pk, actor=actor)

def _maybe_complete(*, mission_id: int, actor: Actor = None) -> bool:
    """If every task is finished, evaluate the success criteria: the mission completes, or fails with evidence."""
    if Task.objects.filter(mission_id=mission_id).exclude(status__in=TASK_FINISHED).exists():
        return False
    mission = Mission.objects.select_for_update().get(pk=mission_id)
    if mission.status != MissionStatus.ACTIVE or not Task.objects.filter(mission_id=mission_id).exists():
        return False
    verdict = evaluate_success(mission=mission, actor=actor)
    if verdict.passed:
        mission_services.mission_transition(
            mission=mission, to=MissionStatus.COMPLETED, actor=actor,
            message="Every task is done and the success criteria pass; waiting for the Mission Owner's sign-off.",
            data={"checks": verdict.results},
        )
        notifications.notify(mission=mission, event="mission.completed", person=mission.owner,
                              subject=f"[{mission.name}] Completed: sign-off needed",
                              body="Every task is done and the success criteria pass. Sign the mission off to close "
                                   "it.")
        return True
    failures = "; ".join(f"{r.get('name')}: {r.get('message')}" for r in verdict.failures)
    mission_services.mission_transition(
        mission=mission, to=MissionStatus.FAILED, actor=actor,
        message=f"Every task is done but success criteria fail: {failures}", data={"checks": verdict.results},
    )
    notifications.notify(mission=mission, event="mission.failed", person=mission.owner,
                         subject=f"[{mission.name}] Success criteria failed", body=failures)
    return False

def _retry_or_fail(*, task: Task, run: Run, retryable: bool, reason: str, actor: Actor = None) -> None:
    """After a failed or lost attempt: a new attempt (with backoff) while attempts remain, else the task fails, the
    mission stops and the owner is told."""
    task = Task.objects.select_for_update(of=("self",)).select_related("mission", "owner_user").get(pk=task.pk)
    failures = task.runs.filter(attempt__gt=task.attempt_base,
                                status__in=[RunStatus.FAILED, RunStatus.LOST]).count()
    mission = task.mission
    if task.status not in {TaskStatus.RUNNING, TaskStatus.QUEUED}:
        return  # cancelled or moved on meanwhile
    if retryable and failures < task.max_attempts:
        delay = backoff_seconds(failures)
        available = timezone.now() + timedelta(seconds=delay) if delay else None
        (new,) = services.runs_create_bulk(tasks=[task], actor=actor, available_at=available)
        history_record(mission=mission, task=task, run=new, event="run.retry_scheduled", actor=actor,
                       message=f"Attempt {new.attempt} of {task.max_attempts + task.attempt_base} after: {reason}"
                       + (f" (in {delay:g} s)" if delay else ""),
                       data={"failures": failures, "backoff_seconds": delay, "previous_run": run.pk})
        if task.status == TaskStatus.RUNNING:
            services.task_transition(task=task, to=TaskStatus.QUEUED, actor=actor, run=new,
                                     message=f"Retrying: {reason}")
        if not delay:
            enqueue_runs([new.pk])
        return
    services.task_transition(task=task, to=TaskStatus.FAILED, actor=actor, run=run,
                             message=f"Failed after {failures} attempt(s): {reason}",
                             data={"failures": failures, "retryable": retryable})
    if mission.status in {MissionStatus.ACTIVE, MissionStatus.PAUSED}:
        mission_services.mission_transition(mission=mission, to=MissionStatus.FAILED, actor=actor,
                                            message=f"Task {task.key} failed: {reason}")
    person = task.owner_user or mission.owner
    if run is not None:
        explain_later("tasks.jobs.run_explain", run.pk)
    notifications.notify(
        mission=mission, task=task, event="task.failed", person=person,
        subject=f"[{mission.name}] Task {task.key} failed",
        body=f"Task {task.key} failed after {failures} attempt(s): {reason}\nRetry it once the cause is fixed.",
    )


def task_rerun(*, task: Task, actor: Actor, message: str) -> Run | None:
    """Start the task again as a new attempt with a fresh attempt budget (an agent's task gets a queued run), or
    put it back in its owner's inbox (a person's task)."""
    task.attempt_base = (task.runs.aggregate(m=Max("attempt"))["m"] or 0)
    task.save(update_fields=["attempt_base"])
    if task.owned_by_agent:
        if TaskStatus.QUEUED not in TASK_TRANSITIONS[task.status]:
            services.task_transition(task=task, to=TaskStatus.READY, actor=actor, message=message)
        run = services.run_create(task=task, actor=actor)
        services.task_transition(task=task, to=TaskStatus.QUEUED, actor=actor, run=run, message=message)
        enqueue_runs([run.pk])
        return run
    if task.status != TaskStatus.READY:
        services.task_transition(task=task, to=TaskStatus.READY, actor=actor, message=message)
    services.task_transition(task=task, to=TaskStatus.WAITING_APPROVAL, actor=actor, message=message)
    return None


def mission_reopen(*, mission: Mission, actor: Actor, reason: str) -> None:
    """A completed or failed mission goes back to active: someone re-opened its work."""
    current = Mission.objects.values_list("status", flat=True).get(pk=mission.pk)
    if current in {MissionStatus.COMPLETED, MissionStatus.FAILED}:
        mission_services.mission_transition(mission=mission, to=MissionStatus.ACTIVE, actor=actor, message=reason)
