"""The execution engine: dispatch of ready tasks, the exactly-once run ledger, leases, retries and the sweep.

How a task runs:
1. ``dispatch`` (at launch, at every completion, and in the periodic sweep) moves a pending task whose
   prerequisites are done, whose phase is workable and whose mission is active to ``ready``; an agent's ready
   task gets a queued Run and is handed to django-q2 in the same transaction (the ORM brokers' queue row commits
   with it; Redis is told after the commit). A person's ready task waits in their inbox (``waiting_approval``).
2. A worker runs ``execute_run(run_id)``. django-q2 delivers at least once, so the worker first *claims* the run
   with a conditional, row-locked update (``SKIP LOCKED`` on PostgreSQL): only a ``queued`` run can be claimed, and
   the claim carries a lease token and expiry that a heartbeat thread renews while the agent works.
3. The agent's outcome is recorded only by the holder of the current lease: a stale worker's late result is
   refused and the refusal recorded. A run whose lease expires (its worker died or stalled) is marked ``lost`` by
   the sweep and the task retried as a new attempt, with backoff, up to its max attempts; then it fails and the
   owner is told.
4. A worker that has just recorded a run goes on with one run that recording queued (the task's dependent, in a
   chain) instead of handing it through the broker: it keeps that run's id, leaves its ``enqueued_at`` empty (so
   the sweep hands it on, a lease's time later, if the worker dies first) and claims it as soon as the recording
   commits. It does so only
   in the first ``GENESIS_CHAIN_SECONDS`` of a delivery, so long work still goes through the queue and other
   missions' runs are not kept waiting; 0 turns it off.
5. Cancel and timeout are cooperative first: the lease thread sets ``context.cancelled()``. An agent that is still
   working ``GENESIS_CANCEL_GRACE_SECONDS`` later is stopped hard: inside a django-q2 cluster worker the lease
   thread records ``run.worker_stopped`` and kills its own process (SIGKILL), and the cluster's sentinel spawns a
   fresh worker in its place, so the slot is back within seconds instead of at django-q2's own ``Q_TIMEOUT``. Run
   anywhere else (sync mode, ``run_mission``, a test) the process is never killed: ``run.cancel_ignored`` is
   recorded instead.
6. One queue message may carry several runs (a wide fan-out is sent as messages of up to ``GENESIS_BATCH_MAX``
   runs, so django-q2's own work is paid once per message, not per run; small fan-outs stay one run a message so
   every worker gets some). The worker that takes such a message *holds* its other runs (their
   ``lease_expires_at``, while still ``queued``, says until when) and runs them one after another, each claimed
   and recorded exactly like a single run. It gives the rest back to the queue as soon as one of them has run for
   ``GENESIS_HANDOFF_SECONDS`` (its lease thread does it, so other workers take them up while the long one works)
   or the delivery is ``GENESIS_CHAIN_SECONDS`` old. If the worker dies, its hold expires and the sweep hands the
   runs on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from agents import registry
from agents.base import AgentContext, Failed, NeedsApproval, NeedsInput, Outcome, Succeeded
from agents.models import Agent, Connection
from genesis import fastsql
from genesis.exceptions import DomainError
from history.models import HistoryEntry
from history.services import Actor, history_batch, history_record
from missions import services as mission_services
from missions.choices import MissionMode, MissionStatus
from missions.models import Mission
from tasks import notifications, services
from tasks.acceptance import evaluate_acceptance, evaluate_success
from tasks.choices import TASK_FINISHED, PhaseStatus, QuestionStatus, RunStatus, TaskStatus
from tasks.models import Dependency, Phase, Question, Run, Task
from tasks.phase_gate import WORKABLE, phases_advance

logger = logging.getLogger("genesis.engine")

def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def lease_seconds() -> float:
    return _setting("GENESIS_LEASE_SECONDS", 30.0)


def heartbeat_seconds() -> float:
    """How often a running agent's lease is renewed and its cancellation checked."""
    return min(_setting("GENESIS_HEARTBEAT_SECONDS", 1.0), lease_seconds() / 3)


def chain_seconds() -> float:
    """How long into one delivery a worker may still go on with a run its own recording queued."""
    return max(_setting("GENESIS_CHAIN_SECONDS", 2.0), 0.0)


def batch_max() -> int:
    """The most runs one queue message carries (module point 6); 1 sends every run on its own."""
    return max(int(_setting("GENESIS_BATCH_MAX", 16)), 1)


def handoff_seconds() -> float:
    """How long a run of a several-run delivery may work before the delivery's other runs go back to the queue."""
    return max(_setting("GENESIS_HANDOFF_SECONDS", 0.5), 0.0)


def hold_seconds() -> float:
    """How long a worker holds the other runs of its delivery: past its chaining window and a lease, so a live
    worker always reaches them (or hands them back) first; after that the sweep takes them as its worker's loss."""
    return chain_seconds() + handoff_seconds() + lease_seconds()


def cancel_grace_seconds() -> float:
    """How long an agent may go on working after its run was cancelled or timed out before it is stopped hard."""
    return max(_setting("GENESIS_CANCEL_GRACE_SECONDS", 10.0), 0.0)


def backoff_seconds(failures: int) -> float:
    """Delay before the next automatic attempt: base · 2^(failures-1), capped."""
    base = _setting("GENESIS_RETRY_BACKOFF_SECONDS", 5.0)
    if base <= 0 or failures <= 0:
        return 0.0
    return min(base * 2 ** (failures - 1), _setting("GENESIS_RETRY_BACKOFF_MAX_SECONDS", 300.0))


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# Whether the task being executed in this thread was delivered by a broker to a django-q2 cluster worker. Set from
# django-q2's ``pre_execute`` signal (connected in tasks/apps.py), which its worker loop sends before every task;
# in sync mode that same loop runs in the caller's process, and the task then says ``sync``.
_delivery = threading.local()


def note_delivery(sender=None, task=None, **kwargs) -> None:
    """django-q2's ``pre_execute`` receiver: remember how the task about to run was delivered."""
    _delivery.by_cluster = not (task or {}).get("sync", False)


def in_cluster_worker() -> bool:
    """True in a django-q2 cluster's worker process running a task the broker delivered: ending this process costs
    nothing but a slot the cluster's sentinel refills. False in sync mode, ``run_mission``, the web server and tests
    that call ``execute_run`` directly (all of them a main process, which must never be killed)."""
    return bool(getattr(_delivery, "by_cluster", False)) and multiprocessing.parent_process() is not None


def _kill_this_worker() -> None:
    """End this worker process at once, as a dying machine would (no cleanup can hang on the stuck agent)."""
    os.kill(os.getpid(), signal.SIGKILL)


# --- handing runs to the queue ------------------------------------------------------------------------------


def _broker_is_transactional() -> bool:
    """The ORM brokers store the queue row in the same database: it can commit with the run (an outbox)."""
    from django_q.conf import Conf

    return not Conf.SYNC and bool(Conf.ORM) and "redis" not in settings.Q_CLUSTER


# While a worker records a run it may go on with (see the module's point 4), the one run it keeps for itself.
_chain = threading.local()


def _will_keep_one() -> bool:
    """Whether this worker is recording a run and keeps none yet: ``_start_ready`` then keeps the first run it
    creates (module point 4; the only place that keeps one)."""
    return getattr(_chain, "kept", None) == []


def enqueue_runs(run_ids: list[int], *, stamped: bool = False) -> None:
    """Hand queued runs to django-q2. With an ORM broker the queue rows commit in the caller's transaction, so a
    run is never created without its queue entry; otherwise (Redis, sync mode) they are sent after the commit.
    ``stamped``: the runs were created with their ``enqueued_at`` already set."""
    if not run_ids:
        return
    ids = list(run_ids)
    if not stamped:  # and no longer held by a worker's delivery (module point 6)
        Run.objects.filter(pk__in=ids, status=RunStatus.QUEUED).update(enqueued_at=timezone.now(),
                                                                         lease_expires_at=None)
    if _broker_is_transactional():
        _send(ids)
    else:
        transaction.on_commit(lambda: _send(ids))


def _batch_size(count: int) -> int:
    """Runs per queue message for ``count`` runs sent together: up to ``batch_max()``, and never so many that this
    cluster's workers would not each get two messages at least (cluster-wide there are more workers, not fewer)."""
    workers = max(int(settings.Q_CLUSTER.get("workers", 1)), 1)
    return max(1, min(batch_max(), count // (2 * workers)))


def _send(run_ids: list[int]) -> None:
    from django_q.tasks import async_task

    size = _batch_size(len(run_ids))
    for at in range(0, len(run_ids), size):
        ids = run_ids[at:at + size]
        if len(ids) == 1:
            async_task("tasks.engine.execute_run", ids[0], task_name=f"run-{ids[0]}", save=False)
        else:
            async_task("tasks.engine.execute_runs", ids, task_name=f"runs-{ids[0]}-{ids[-1]}", save=False)


# --- dispatch -----------------------------------------------------------------------------------------------


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
        mission_services.mission_pause(
            mission=mission, actor=actor,
            reason=f"Step mode: phase {names} {how}; waiting for the Mission Owner to continue.",
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


# --- mission lifecycle --------------------------------------------------------------------------------------


@transaction.atomic
def mission_start(*, mission: Mission, actor: Actor = None) -> Mission:
    """Launch a draft mission: it becomes active, its first phase opens and its ready tasks start."""
    mission_services.mission_launch(mission=mission, actor=actor)
    if mission.phases.exists():
        phases_advance(mission=mission, actor=actor)
    dispatch_ready(mission_id=mission.pk, actor=actor)
    return mission


@transaction.atomic
def mission_pause(*, mission: Mission, actor: Actor = None, reason: str = "") -> Mission:
    """Pause: no new attempt starts (queued runs stay queued); running attempts finish what they do."""
    return mission_services.mission_pause(mission=mission, actor=actor, reason=reason)


@transaction.atomic
def mission_resume(*, mission: Mission, actor: Actor = None) -> Mission:
    """Resume: queued runs are handed to the workers again and whatever became ready starts."""
    mission_services.mission_resume(mission=mission, actor=actor)
    if mission.phases.exists():
        phases_advance(mission=mission, actor=actor)
    queued = list(Run.objects.filter(task__mission=mission, status=RunStatus.QUEUED).values_list("pk", flat=True))
    enqueue_runs(queued)
    dispatch_ready(mission_id=mission.pk, actor=actor)
    return mission


@transaction.atomic
def mission_cancel(*, mission: Mission, actor: Actor = None, reason: str = "") -> Mission:
    """Cancel: every live run is cancelled (running agents stop at their next heartbeat), open questions close and
    unfinished tasks are cancelled."""
    reason = reason or "Mission cancelled."
    mission_services.mission_cancel(mission=mission, actor=actor, reason=reason)
    for task in Task.objects.filter(mission=mission).exclude(
        status__in=[*TASK_FINISHED, TaskStatus.CANCELLED, TaskStatus.FAILED]
    ):
        services.task_cancel(task=task, actor=None, reason=reason)
    return mission


# --- running one attempt ------------------------------------------------------------------------------------


class RunLog:
    """A logger an agent writes to; the lines become the run's log (and go to the worker's log too)."""

    def __init__(self, run: Run):
        self.lines: list[str] = []
        self._prefix = f"run {run.pk} ({run.task.key}#{run.attempt})"

    def _write(self, level: str, message: str, *args: Any) -> None:
        text = message % args if args else str(message)
        self.lines.append(f"{timezone.now():%H:%M:%S.%f} {level} {text}")
        logger.log(getattr(logging, level, logging.INFO), "%s: %s", self._prefix, text)

    def debug(self, message, *args):
        self._write("DEBUG", message, *args)

    def info(self, message, *args):
        self._write("INFO", message, *args)

    def warning(self, message, *args):
        self._write("WARNING", message, *args)

    def error(self, message, *args):
        self._write("ERROR", message, *args)

    def exception(self, message, *args):
        self._write("ERROR", message, *args)
        self.lines.append(traceback.format_exc())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class Lease:
    """The lease a worker holds on a run, renewed by a background thread that also enforces the timeout and notices
    cancellation (the run is no longer ``running`` under this token).

    Once the run was taken from this worker (cancelled, timed out, or lost), the thread gives the agent
    ``cancel_grace_seconds()`` to return. If it has not, the agent ignores ``cancelled()``: with ``hard_stop`` (a
    cluster worker) the thread records ``run.worker_stopped`` and kills the process; otherwise it records
    ``run.cancel_ignored`` and lets the agent run on. It never stops a worker for a run the worker still holds, and
    never once the agent has returned (``stop``).

    With a ``delivery`` whose other runs wait, the thread hands them back to the queue once the agent has worked
    ``handoff_seconds()`` (module point 6)."""

    def __init__(self, run: Run, token: uuid.UUID, timeout: float, *, hard_stop: bool = False,
                 delivery: _Delivery | None = None):
        self.run = run
        self.run_id = run.pk
        self.token = token
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.hard_stop = hard_stop
        self.cancelled = threading.Event()
        self.timed_out = threading.Event()
        self._stop = threading.Event()
        # Held while deciding to stop the worker, and by ``stop``: once the agent has returned there is no hard stop,
        # and once a hard stop is decided, a returning agent waits for it.
        self._returning = threading.Lock()
        self._thread = threading.Thread(target=self._beat_loop, name=f"lease-{run.pk}", daemon=True)
        self._used_db = False
        self._delivery = delivery if delivery is not None and delivery.waiting else None
        self._hand_back_at = time.monotonic() + handoff_seconds()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The agent has returned."""
        with self._returning:
            self._stop.set()
        self._thread.join()

    def renew(self) -> bool:
        """Renew the lease; False (and ``cancelled`` set) when this worker no longer holds the run."""
        now = timezone.now()
        held = Run.objects.filter(pk=self.run_id, lease_token=self.token, status=RunStatus.RUNNING).update(
            heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds())
        )
        if not held:
            self.cancelled.set()
        return bool(held)

    def _hand_back(self) -> None:
        delivery, self._delivery = self._delivery, None
        self._used_db = True
        try:
            delivery.hand_back(why=f"run {self.run_id} has worked {handoff_seconds():g} s")
        except Exception:  # they stay held: the sweep hands them on when the hold expires
            logger.exception("run %s: could not hand its delivery's other runs back", self.run_id)

    def _beat_loop(self) -> None:
        try:
            next_beat = time.monotonic() + heartbeat_seconds()
            while True:
                wake = min(next_beat, self.deadline)
                if self._delivery is not None:
                    wake = min(wake, self._hand_back_at)
                if self._stop.wait(max(wake - time.monotonic(), 0.01)):
                    return
                now = time.monotonic()
                if self._delivery is not None and now >= self._hand_back_at:
                    self._hand_back()
                if now < next_beat and now < self.deadline:
                    continue
                next_beat = now + heartbeat_seconds()
                self._used_db = True
                if time.monotonic() >= self.deadline:
                    self.timed_out.set()
                    self.cancelled.set()
                    _fail_run(run_id=self.run_id, token=self.token, retryable=True, kind="timeout",
                              error=f"Timed out after {self.timeout:g} s.", log="")
                    self._enforce(why="timed out")
                    return
                if not self.renew():
                    status = Run.objects.filter(pk=self.run_id).values_list("status", flat=True).first()
                    self._enforce(why="cancelled" if status == RunStatus.CANCELLED else f"no longer held ({status})")
                    return
        except Exception:  # the agent's outcome is still recorded (or refused) by the main thread
            logger.exception("lease thread of run %s failed", self.run_id)
        finally:
            if self._used_db:
                connection.close()

    def _enforce(self, *, why: str) -> None:
        """The run is no longer this worker's (``why``): wait out the grace period for the agent to return, then
        stop the worker (or, outside a cluster worker, record that the agent ignored it)."""
        noticed = time.monotonic()
        grace = cancel_grace_seconds()
        if self._stop.wait(grace):
            return  # the agent returned in time
        with self._returning:
            if self._stop.is_set():
                return  # it returned just now
        # Decided: from here on a returning agent waits in ``stop`` (joining this thread) for the end of the process.
        self._note_ignored(why=why, ignored=time.monotonic() - noticed, grace=grace)
        if self.hard_stop:
            _kill_this_worker()

    def _note_ignored(self, *, why: str, ignored: float, grace: float) -> None:
        run = self.run
        data = {"worker": _worker_id(), "pid": os.getpid(), "reason": why, "ignored_seconds": round(ignored, 1),
                "grace_seconds": grace}
        ignored_text = (f"The agent of attempt {run.attempt} ignored that its run was {why} for {ignored:.1f} s "
                        f"(grace {grace:g} s); ")
        if self.hard_stop:
            event, level = "run.worker_stopped", logging.ERROR
            message = ignored_text + (f"its worker {_worker_id()} (pid {os.getpid()}) is stopped so the cluster "
                                      "replaces it.")
        else:
            event, level = "run.cancel_ignored", logging.WARNING
            message = ignored_text + (f"it runs outside a cluster worker ({_worker_id()}), so it is left to finish "
                                      "and its result will be refused.")
        logger.log(level, "run %s: %s", run.pk, message)
        try:
            history_record(mission_id=run.task.mission_id, task=run.task, run=run, event=event, message=message,
                           data=data)
        except Exception:  # the worker is stopped all the same: the decision was made on the run's recorded state
            logger.exception("run %s: could not record %s", run.pk, event)


def _claim_select_sql(*, lock: bool, skip_locked: bool) -> str:
    """The run with its task, mission and agent, in one statement (hand-built: ``genesis.fastsql``); on PostgreSQL
    the run and its task are locked by it (run, then task: the order every path that changes a run's task keeps).
    """
    r, t, m, a = (model._meta.db_table for model in (Run, Task, Mission, Agent))
    sql = (f"SELECT {fastsql.columns(Run, 'r')}, {fastsql.columns(Task, 't')}, {fastsql.columns(Mission, 'm')}, "  # noqa: S608
           f"{fastsql.columns(Agent, 'a')} FROM {r} r JOIN {t} t ON t.id = r.task_id "
           f"JOIN {m} m ON m.id = t.mission_id LEFT JOIN {a} a ON a.id = t.owner_agent_id WHERE r.id = %s")
    if lock:
        sql += " FOR UPDATE OF r, t" + (" SKIP LOCKED" if skip_locked else "")
    return sql


def _claim_select(run_id: int, *, skip_locked: bool = False) -> Run | None:
    postgres = _is_postgres()
    with connection.cursor() as cursor:
        cursor.execute(_claim_select_sql(lock=postgres, skip_locked=skip_locked and postgres), [run_id])
        row = cursor.fetchone()
    if row is None:
        return None
    run, at = fastsql.from_row(Run, row)
    task, at = fastsql.from_row(Task, row, at)
    mission, at = fastsql.from_row(Mission, row, at)
    agent, _ = fastsql.from_row(Agent, row, at)
    task.mission, task.owner_agent, run.task = mission, agent, task
    return run


def _claim(run_id: int) -> tuple[Run, uuid.UUID] | None:
    """Claim a queued run for this worker, or say why not (another holds it, it already ran, its mission waits)."""
    with transaction.atomic(), history_batch():
        run = None
        if _is_postgres():
            run = _claim_select(run_id, skip_locked=True)
        if run is None:
            # Locked by another transaction (a duplicate delivery being claimed, a cancel): wait for it, then look.
            run = _claim_select(run_id)
        if run is None:
            return None  # gone
        task, mission = run.task, run.task.mission
        if run.status != RunStatus.QUEUED:
            history_record(mission=mission, task=task, run=run, event="run.claim_refused", from_status=run.status,
                           message=f"Attempt {run.attempt} was delivered again while {run.status}; not run twice.",
                           data={"worker": _worker_id()})
            return None
        if mission.status != MissionStatus.ACTIVE:
            return None  # paused or stopped: the run stays queued; resume hands it on again
        now = timezone.now()
        if run.available_at and run.available_at > now:
            return None  # backing off: the sweep hands it on when it is due
        token = uuid.uuid4()
        services.run_transition(
            run=run, to=RunStatus.RUNNING, worker=_worker_id(), lease_token=token, already_locked=True,
            lease_expires_at=now + timedelta(seconds=lease_seconds()), heartbeat_at=now,
            message=f"Claimed by {_worker_id()}.",
        )
        services.task_transition(task=task, to=TaskStatus.RUNNING, expected=TaskStatus.QUEUED, run=run,
                                 already_locked=True)
        return run, token


def _context(run: Run, lease: Lease, log: RunLog) -> AgentContext:
    task, mission = run.task, run.task.mission
    feedback: list[dict] = []
    answers: list[dict] = []
    if run.attempt > 1:
        feedback = [
            {"feedback": e.data.get("feedback", e.message), "at": e.created_at.isoformat(), "by": e.actor_label}
            for e in HistoryEntry.objects.filter(task=task, event="task.rejected").select_related("actor_user")
        ]
        answers = [
            {"question": q.text, "answer": q.answer, "by": q.answered_by.get_username() if q.answered_by else "",
             "context": q.context}
            for q in Question.objects.filter(task=task, status=QuestionStatus.ANSWERED)
            .select_related("answered_by").order_by("answered_at")
        ]
    connections: dict[str, Connection] = {}
    wanted = [("source", mission.source_connection_id), ("target", mission.target_connection_id)]
    names = [n for n in (task.config or {}).get("connections", []) if isinstance(n, str)]
    if any(pk for _, pk in wanted) or names:
        # Only connections granted to the mission (agents.access): the agent cannot even name another one.
        by_pk = {c.pk: c for c in Connection.objects.filter(Q(pk__in=[pk for _, pk in wanted if pk])
                                                            | Q(name__in=names), missions=mission)}
        for role, pk in wanted:
            if pk in by_pk:
                connections[role] = by_pk[pk]
        for c in by_pk.values():
            connections.setdefault(c.name, c)

    def write_artifact(*, name: str, kind: str, content, content_type: str = ""):
        if not Run.objects.filter(pk=run.pk, lease_token=lease.token, status=RunStatus.RUNNING).exists():
            raise DomainError("This worker no longer holds the run; the artifact was not stored.", code="stale_lease")
        return services.artifact_create(mission=mission, task=task, run=run, kind=kind, name=name, file=content,
                                        content_type=content_type, actor=task.owner_agent)

    workspace = Path(settings.VAR_DIR) / "runs" / str(run.pk)
    return AgentContext(
        mission=mission, task=task, run=run, agent=task.owner_agent, config={**(task.owner_agent.config or {}),
                                                                            **(task.config or {})},
        connections=connections, feedback=feedback, answers=answers, write_artifact=write_artifact, log=log,
        heartbeat=lease.renew, cancelled=lease.cancelled.is_set, workspace=workspace,
    )


def _run_agent(run: Run, context: AgentContext, log: RunLog) -> Outcome:
    agent = run.task.owner_agent
    try:
        if not agent.enabled:
            return Failed(error=f"Agent {agent.name} is disabled.", retryable=False)
        implementation = registry.get(agent.kind)()
        outcome = implementation.run(context)
    except registry.UnknownAgentKind as error:
        return Failed(error=str(error), retryable=False)
    except Exception as error:
        log.lines.append(traceback.format_exc())
        return Failed(error=f"{type(error).__name__}: {error}", retryable=True)
    if not isinstance(outcome, Succeeded | NeedsInput | NeedsApproval | Failed):
        return Failed(error=f"Agent {agent.kind} answered {type(outcome).__name__}, not an outcome.", retryable=False)
    return outcome


class _Delivery:
    """The runs of one queue message not yet taken (module point 6). The worker's main thread takes them one by
    one; its lease thread may hand all that are left back to the queue meanwhile."""

    def __init__(self, run_ids: list[int]):
        self._left = deque(run_ids)
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            return self._left.popleft() if self._left else None

    def hold(self) -> None:
        """Mark the runs left as this worker's, for ``hold_seconds()``, so the sweep leaves them alone."""
        with self._lock:
            ids = list(self._left)
        if ids:
            until = timezone.now() + timedelta(seconds=hold_seconds())
            Run.objects.filter(pk__in=ids, status=RunStatus.QUEUED).update(lease_expires_at=until)

    def hand_back(self, *, why: str) -> int:
        """Give the runs left back to the queue (as new messages, unheld); returns how many."""
        with self._lock:
            ids, self._left = list(self._left), deque()
        if ids:
            logger.info("handing %d runs back to the queue: %s", len(ids), why)
            with transaction.atomic():
                enqueue_runs(ids)
        return len(ids)

    @property
    def waiting(self) -> bool:
        with self._lock:
            return bool(self._left)


def execute_run(run_id: int) -> str:
    """What a worker runs for a queued run: claim it, run its agent under a lease, record the outcome exactly once;
    then the run its recording kept for this worker, if any (module point 4). Returns a short word for logs and
    tests: the last outcome, or why nothing was done."""
    return execute_runs([run_id])


def execute_runs(run_ids: list[int]) -> str:
    """What a worker runs for a queue message of several runs (module point 6): each in turn, as ``execute_run``
    runs one, while the delivery is young and none of them works long; the rest go back to the queue."""
    chain_until = time.monotonic() + chain_seconds()
    delivery = _Delivery(run_ids)
    run_id = delivery.take()
    delivery.hold()
    word = "skipped"
    try:
        while run_id is not None:
            word, kept = _execute_one(run_id, chain_until=chain_until, delivery=delivery)
            while kept is not None:
                word, kept = _execute_one(kept, chain_until=chain_until, delivery=delivery)
            if delivery.waiting and time.monotonic() >= chain_until:
                delivery.hand_back(why="the delivery is past its chaining window")
            run_id = delivery.take()
    except Exception:
        # This delivery fails (django-q2 records it); the runs it still holds need not wait for their hold to expire.
        try:
            delivery.hand_back(why=f"run {run_id} raised")
        except Exception:
            logger.exception("could not hand a failed delivery's other runs back; the sweep will")
        raise
    return word


def _execute_one(run_id: int, *, chain_until: float, delivery: _Delivery | None = None) -> tuple[str, int | None]:
    claimed = _claim(run_id)
    if claimed is None:
        return "skipped", None
    run, token = claimed
    task = run.task
    log = RunLog(run)
    lease = Lease(run, token, timeout=float(task.timeout_seconds), hard_stop=in_cluster_worker(), delivery=delivery)
    lease.start()
    try:
        context = _context(run, lease, log)
        outcome = _run_agent(run, context, log)
    finally:
        lease.stop()
    if lease.timed_out.is_set():
        _refuse_late(run=run, token=token, why="it ran past its timeout")
        return "timeout", None
    # Only a success starts dependents; a retry's backoff is for the sweep to honour.
    kept: list[int] | None = [] if isinstance(outcome, Succeeded) and time.monotonic() < chain_until else None
    outer, _chain.kept = getattr(_chain, "kept", None), kept  # sync mode runs nested executions in this thread
    try:
        word = _record(run=run, token=token, outcome=outcome, log=log)
    except DomainError as error:
        if error.code == "stale_lease":
            logger.warning("run %s: result refused, this worker lost the lease", run.pk)
            return "refused", None
        raise
    finally:
        _chain.kept = outer
    # Kept only if the recording committed (it raised otherwise, and the kept run rolled back with it).
    return word, (kept[0] if kept else None)


@contextmanager
def _as_lease_holder(run: Run):
    """A transaction for recording an outcome; if this worker no longer holds the lease, everything in it is
    rolled back and the refusal itself is recorded (outside it, so it stays)."""
    try:
        with transaction.atomic():
            yield
    except DomainError as error:
        if error.code == "stale_lease":
            history_record(
                mission=run.task.mission, task=run.task, run=run, event="run.stale_result_refused",
                message=f"A worker without the current lease tried to record attempt {run.attempt}; refused.",
                data={"worker": _worker_id()},
            )
        raise


def _refuse_late(*, run: Run, token, why: str) -> None:
    history_record(mission=run.task.mission, task=run.task, run=run, event="run.stale_result_refused",
                   message=f"The agent of attempt {run.attempt} returned after {why}; its result was not recorded.",
                   data={"worker": _worker_id()})


def _record(*, run: Run, token, outcome: Outcome, log: RunLog) -> str:
    task, mission, agent = run.task, run.task.mission, run.task.owner_agent
    if isinstance(outcome, Succeeded):
        verdict = evaluate_acceptance(task=task, run=run, actor=agent)
        if not verdict.passed:
            failures = "; ".join(f"{r.get('name')}: {r.get('message')}" for r in verdict.failures)
            _fail_run(run_id=run.pk, token=token, retryable=True, kind="acceptance", log=log.text,
                      error=f"Acceptance checks failed: {failures}",
                      result={**outcome.outputs, "checks": verdict.results})
            return "failed"
        with _as_lease_holder(run):
            # The run's and the task's entries, and those of the dependents it starts, in one INSERT.
            with history_batch():
                done = services.run_transition(
                    run=run, to=RunStatus.SUCCEEDED, held_token=token, require_token=True, actor=agent,
                    message=outcome.summary or "Succeeded.", log=log.text, lock_task=True,
                    result={**outcome.outputs, **({"checks": verdict.results} if verdict.results else {})},
                )
                services.task_transition(task=done.task, to=TaskStatus.DONE, expected=TaskStatus.RUNNING, run=done,
                                         actor=agent, message=outcome.summary or "Done.", already_locked=True)
                pending = _start_dependents(task=done.task, actor=agent)
            # Exit checks and success criteria read history back: after the batch is written.
            _after_task_done_finish(task=done.task, pending=pending, actor=agent)
        return "succeeded"
    if isinstance(outcome, NeedsApproval):
        with _as_lease_holder(run):
            waiting = services.run_transition(
                run=run, to=RunStatus.WAITING, held_token=token, require_token=True, actor=agent, log=log.text,
                message=outcome.summary, result={**outcome.outputs, "summary": outcome.summary},
            )
            services.task_transition(task=task, to=TaskStatus.WAITING_APPROVAL, expected=TaskStatus.RUNNING,
                                     run=waiting, actor=agent, message=outcome.summary)
            notifications.notify(
                mission=mission, task=task, event="task.waiting_approval", person=mission.owner,
                subject=f"[{mission.name}] Approval needed: {task.key}",
                body=f"{agent.name} proposes for task {task.key}: {outcome.summary}\nApprove it, or reject it with "
                     "feedback.",
            )
        return "waiting_approval"
    if isinstance(outcome, NeedsInput):
        with _as_lease_holder(run):
            waiting = services.run_transition(
                run=run, to=RunStatus.WAITING, held_token=token, require_token=True, actor=agent, log=log.text,
                message=f"Asked: {outcome.question}", result={"question": outcome.question},
            )
            services.task_transition(task=task, to=TaskStatus.WAITING_INPUT, expected=TaskStatus.RUNNING,
                                     run=waiting, actor=agent, message=f"Waiting for an answer: {outcome.question}")
            person = task.owner_user or mission.owner
            services.question_create(task=task, run=waiting, addressed_to=person, text=outcome.question,
                                     options=outcome.options, default=outcome.default, context=outcome.context,
                                     actor=agent)
            notifications.notify(
                mission=mission, task=task, event="question.asked", person=person,
                subject=f"[{mission.name}] Question on {task.key}",
                body=f"{agent.name} asks: {outcome.question}"
                     + (f"\nOptions: {', '.join(map(str, outcome.options))}" if outcome.options else ""),
            )
        return "waiting_input"
    _fail_run(run_id=run.pk, token=token, retryable=outcome.retryable, kind="error", error=outcome.error,
              log=log.text, result=outcome.outputs)
    return "failed"


def _fail_run(*, run_id: int, token, retryable: bool, kind: str, error: str, log: str,
              result: dict | None = None) -> bool:
    """Record a failed attempt (only the lease holder may) and retry the task or fail it."""
    run = Run.objects.select_related("task__mission", "task__owner_agent").get(pk=run_id)
    try:
        with _as_lease_holder(run):
            failed = services.run_transition(
                run=run, to=RunStatus.FAILED, held_token=token, require_token=True, actor=run.task.owner_agent,
                message=error, error=error, log=log, result={**(result or {}), "failure": kind},
            )
            _retry_or_fail(task=run.task, run=failed, retryable=retryable, reason=error)
    except DomainError as refused:
        if refused.code != "stale_lease":
            raise
        return False
    return True


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
    notifications.notify(
        mission=mission, task=task, event="task.failed", person=person,
        subject=f"[{mission.name}] Task {task.key} failed",
        body=f"Task {task.key} failed after {failures} attempt(s): {reason}\nRetry it once the cause is fixed.",
    )


# --- the sweep: recovers whatever an event missed -----------------------------------------------------------


def sweep() -> dict[str, int]:
    """Mark runs whose lease expired ``lost`` (and retry them), fail runs past their timeout, hand on queued runs
    that are due and were never (or long ago) enqueued, and dispatch active missions' ready tasks."""
    counts = {"lost": 0, "timed_out": 0, "enqueued": 0, "dispatched": 0}
    now = timezone.now()
    expired = list(Run.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now)
                   .values_list("pk", flat=True)[:500])
    for run_id in expired:
        counts["lost"] += _mark_lost(run_id)
    stale_after = timedelta(seconds=max(float(settings.Q_CLUSTER.get("retry", 60)), lease_seconds()) + 5)
    due = list(
        Run.objects.filter(status=RunStatus.QUEUED, task__mission__status=MissionStatus.ACTIVE)
        .filter(Q(available_at__isnull=True) | Q(available_at__lte=now))
        # Never enqueued: a run its worker kept to claim next (module point 4) is left to it for a lease's time.
        .filter(Q(enqueued_at__isnull=True, created_at__lt=now - timedelta(seconds=lease_seconds()))
                | Q(enqueued_at__lt=now - stale_after)
                # Held by a worker's delivery (module point 6) that never reached it: that worker is gone.
                | Q(lease_expires_at__lt=now)
                | Q(available_at__isnull=False, enqueued_at__lt=F("available_at")))
        .values_list("pk", flat=True)[:500]
    )
    if due:
        with transaction.atomic():
            enqueue_runs(due)
        counts["enqueued"] = len(due)
    missions = Mission.objects.filter(status=MissionStatus.ACTIVE).filter(
        Exists(Task.objects.filter(mission=OuterRef("pk"), status__in=[TaskStatus.PENDING, TaskStatus.READY]))
        | ~Exists(Task.objects.filter(mission=OuterRef("pk")).exclude(status__in=TASK_FINISHED))
    ).values_list("pk", flat=True)
    for mission_id in missions:
        counts["dispatched"] += len(dispatch_ready(mission_id=mission_id))
    return counts


def _mark_lost(run_id: int) -> int:
    with transaction.atomic():
        qs = Run.objects.select_related("task__mission", "task__owner_agent")
        qs = qs.select_for_update(skip_locked=True, of=("self",)) if _is_postgres() else qs.select_for_update()
        run = qs.filter(pk=run_id, status=RunStatus.RUNNING, lease_expires_at__lt=timezone.now()).first()
        if run is None:
            return 0
        worker = run.worker
        lost = services.run_transition(
            run=run, to=RunStatus.LOST, message=f"Lease of {worker} expired without a heartbeat; the worker is "
            "presumed dead or stalled.", data={"worker": worker},
            error=f"Lost: lease of {worker} expired.",
        )
        _retry_or_fail(task=run.task, run=lost, retryable=True, reason=f"worker {worker} was lost")
    return 1


# --- driving a mission from one process (run_mission, tests) ------------------------------------------------


def pending_runs(mission: Mission) -> list[int]:
    now = timezone.now()
    return list(
        Run.objects.filter(task__mission=mission, status=RunStatus.QUEUED)
        .filter(Q(available_at__isnull=True) | Q(available_at__lte=now)).order_by("pk").values_list("pk", flat=True)
    )


def auto_decide(mission: Mission) -> int:
    """Approve what waits for approval and answer open questions with their default (``--auto-approve``),
    acting as the Mission Owner. Returns how many decisions were made."""
    decided = 0
    for task in Task.objects.filter(mission=mission, status=TaskStatus.WAITING_APPROVAL):
        services.task_approve(task=task, actor=mission.owner, note="Auto-approved (run_mission --auto-approve).")
        decided += 1
    for question in Question.objects.filter(mission=mission, status=QuestionStatus.OPEN):
        answer = question.default or (question.options[0] if question.options else "yes")
        services.question_answer(question=question, actor=mission.owner, answer=answer)
        decided += 1
    return decided


def waiting_on_people(mission: Mission) -> bool:
    return Task.objects.filter(
        mission=mission, status__in=[TaskStatus.WAITING_APPROVAL, TaskStatus.WAITING_INPUT]
    ).exists()


def phases_blocked(mission: Mission) -> bool:
    return mission.phases.filter(status=PhaseStatus.FAILED).exists()
