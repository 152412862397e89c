"""The worker runtime: claim a queued run, run its agent under a lease, record the outcome exactly once, retry or
fail (``tasks`` points 2, 3, 5 and 6)."""

from __future__ import annotations

import functools
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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from agents import registry
from agents.base import AgentContext, Failed, NeedsApproval, NeedsInput, Outcome, Succeeded
from agents.connectors.base import query_timeout
from agents.models import Agent, Connection
from genesis import fastsql
from genesis.exceptions import DomainError
from history.models import HistoryEntry
from history.services import history_batch, history_record
from missions.choices import MissionStatus
from missions.models import Mission
from tasks import notifications, selectors, services
from tasks.acceptance import evaluate_acceptance
from tasks.choices import QuestionStatus, RunStatus, TaskStatus
from tasks.dispatch import _after_task_done_finish, _is_postgres, _retry_or_fail, _start_dependents, keeping_next
from tasks.models import Question, Run, Task
from tasks.queue import enqueue_runs
from tasks.timing import (
    cancel_grace_seconds,
    chain_seconds,
    handoff_seconds,
    heartbeat_seconds,
    hold_seconds,
    lease_seconds,
)

logger = logging.getLogger("genesis.engine")


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

# How often a worker tries a claim or a recording whose database connection failed (killed, a failover, a restart of
# the server), reconnecting in between; the lease (renewed up to the agent's return) leaves time for all of them.
DB_ATTEMPTS = 3
DB_ERRORS = (OperationalError, InterfaceError)

def _reconnect(*, attempt: int, what: str, error: Exception) -> None:
    """After a failed transaction whose cause may be a lost connection: drop the connection (the next query opens a
    new one) and wait a little, longer each time."""
    logger.warning("%s: the database connection failed (%s: %s); reconnecting (try %d of %d)", what,
                   type(error).__name__, str(error).strip(), attempt + 1, DB_ATTEMPTS)
    connection.close()
    time.sleep(0.2 * 2 ** (attempt - 1))

def _reconnecting(fn, *, what: str, watch: _AgentConnection | None = None):
    """``fn`` (a database read or write the engine hands an agent) tried again on a new connection when the one it
    used was lost, up to ``DB_ATTEMPTS`` times; inside a transaction the error is the caller's to handle. The
    agent's ``watch`` learns of the new connection: the agent saw no error, so it is no loss under the agent.
    Four are built for every run and most are never called, so the wrapper is a bare closure: ``functools.wraps``
    would copy ``fn``'s attributes each time, as many Python calls as the rest of building the run's context."""
    def call(*args, **kwargs):
        for attempt in range(1, DB_ATTEMPTS + 1):
            try:
                result = fn(*args, **kwargs)
                if attempt > 1 and watch is not None:
                    watch.reconnected()
                return result
            except DB_ERRORS as error:
                if attempt == DB_ATTEMPTS or connection.in_atomic_block:
                    raise
                _reconnect(attempt=attempt, what=what, error=error)
        raise AssertionError("unreachable")  # the last attempt returned or raised
    return call

class _AgentConnection:
    """The platform database connection the agent's own code works on, as far as the worker knows it works: the one
    open when the agent started, or the one a call the engine hands it reconnected to (transparently to the agent).
    Another one, or none, once the agent returns, means it was lost under the agent's own code (Django drops a
    connection whose rollback failed, and opens a new one at the next query)."""

    def __init__(self) -> None:
        self.opened: object | None = None

    def start(self) -> None:
        try:
            connection.ensure_connection()
        except DB_ERRORS:
            pass  # the agent's first query opens one, and is judged as any other
        self.opened = connection.connection

    def reconnected(self) -> None:
        self.opened = connection.connection


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
    ``handoff_seconds()`` (``tasks`` point 6).

    A ``local`` lease is one claimed inside the caller's open transaction (the in-process driver run within one, as
    a test is): until it commits, no other connection can see the run, so none can take it, sweep it or cancel it,
    and a thread on its own connection would find no run to renew and take it as lost. Its thread then touches no
    database: it only marks the timeout, the main thread records it once the agent returns (``_refuse_timed_out``),
    and renewals are the agent's own ``heartbeat`` calls, on the caller's connection."""

    def __init__(self, run: Run, token: uuid.UUID, timeout: float, *, hard_stop: bool = False,
                 delivery: _Delivery | None = None, local: bool = False):
        self.run = run
        self.local = local
        self.timed_out_at: float | None = None
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
        self._delivery = delivery if delivery is not None and delivery.waiting and not local else None
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
                if self.local:
                    if now >= self.deadline:
                        self.timed_out_at = now
                        self.timed_out.set()
                        self.cancelled.set()
                        return
                    continue
                self._used_db = True
                if time.monotonic() >= self.deadline:
                    self.timed_out_at = time.monotonic()
                    self.timed_out.set()
                    self.cancelled.set()
                    _fail_run(run_id=self.run_id, token=self.token, retryable=True, kind="timeout",
                              error=f"Timed out after {self.timeout:g} s.", log="")
                    self._enforce(why="timed out")
                    return
                try:
                    held = self.renew()
                except DB_ERRORS as error:  # the lease expires only if this lasts: renewed at the next beat
                    logger.warning("run %s: could not renew its lease (%s); reconnecting", self.run_id, error)
                    connection.close()
                    continue
                if not held:
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
    """Claim a queued run for this worker, or say why not (another holds it, it already ran, its mission waits).
    A claim whose connection failed rolled back whole: it is tried again on a new connection."""
    for attempt in range(1, DB_ATTEMPTS + 1):
        try:
            return _claim_once(run_id)
        except DB_ERRORS as error:
            if attempt == DB_ATTEMPTS or connection.in_atomic_block:
                raise
            _reconnect(attempt=attempt, what=f"claiming run {run_id}", error=error)
    return None

def _claim_once(run_id: int) -> tuple[Run, uuid.UUID] | None:
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

def _context(run: Run, lease: Lease, log: RunLog, watch: _AgentConnection | None = None) -> AgentContext:
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
        # Once per (run, name, content), under the lease checked in the same transaction: a write tried again after
        # a lost connection, or an attempt rerun from the top, leaves one artifact; a stale worker stores none.
        return services.artifact_store_for_run(run=run, token=lease.token, kind=kind, name=name, content=content,
                                               content_type=content_type, actor=task.owner_agent)

    workspace = Path(settings.VAR_DIR) / "runs" / str(run.pk)
    label = f"run {run.pk}"
    return AgentContext(
        mission=mission, task=task, run=run, agent=task.owner_agent, config={**(task.owner_agent.config or {}),
                                                                            **(task.config or {})},
        connections=connections, feedback=feedback, answers=answers, log=log, cancelled=lease.cancelled.is_set,
        workspace=workspace,
        # What the agent asks of the database survives a lost connection as the worker's own writes do.
        write_artifact=_reconnecting(write_artifact, what=f"{label} writing an artifact", watch=watch),
        heartbeat=_reconnecting(lease.renew, what=f"{label} renewing its lease", watch=watch),
        read_artifact=_reconnecting(functools.partial(selectors.artifact_content_latest, mission=mission),
                                    what=f"{label} reading an artifact", watch=watch),
        mission_runs=_reconnecting(functools.partial(selectors.mission_runs, mission=mission),
                                   what=f"{label} reading the mission's runs", watch=watch),
    )

# How often one attempt is run again because the platform database's connection was lost under its agent (its own
# ORM call raised, outside the engine's reconnecting calls); one more loss after that counts as the attempt's failure,
# so a database that stays broken does not keep a worker rerunning forever.
DB_RERUNS = 2


@dataclass
class _ConnectionLost:
    """What ``_run_agent`` answers when the agent raised because the platform database's connection was lost."""

    error: str


def _db_error_in(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised from, one of Django's database errors."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, DB_ERRORS):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def platform_connection_lost(error: BaseException, *, opened: object | None) -> bool:
    """Whether ``error``, raised out of an agent, is the platform database's connection failing under it: a Django
    database error (the agent's own ORM call) after which the connection the agent started on (``opened``, the
    DB-API connection) is gone, or no longer answers a ``SELECT 1``. Gone: Django drops a connection when a rollback
    fails on it, as leaving the agent's own ``atomic`` block does, and may already have opened a new one.
    A source's or a warehouse's failure is the agent's own: its connectors raise their driver's errors (sqlite3,
    psycopg, duckdb), which Django does not wrap; so is an error the platform database gave on a connection that
    still works (a bad query, a statement timeout, a lock). Inside a transaction nothing is probed (the caller's
    transaction is broken either way, and only the caller can start it again)."""
    if not _db_error_in(error):
        return False
    return _connection_gone(opened=opened)


def _connection_gone(*, opened: object | None) -> bool:
    """Whether the platform database connection the agent started on (``opened``) was replaced, dropped, or no longer
    answers a ``SELECT 1``; never probed inside a transaction (see ``platform_connection_lost``)."""
    if connection.in_atomic_block:
        return False
    if connection.connection is None or connection.connection is not opened:
        return True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DB_ERRORS:
        return True
    return False


def _run_attempt(run: Run, context: AgentContext, log: RunLog, lease: Lease,
                 watch: _AgentConnection | None = None) -> Outcome:
    """Run the agent for this attempt. When the platform database's connection was lost under it (its own query
    raised, or it answered a failure after the connection it worked on was lost), reconnect and run it again as the
    same attempt (the lease is still this worker's, renewed on the new connection), up to
    ``DB_RERUNS`` times, each recorded as ``run.db_rerun``; a further loss fails the attempt as any error does."""
    losses: list[str] = []
    while True:
        outcome = _run_agent(run, context, log, watch or _AgentConnection())
        if not isinstance(outcome, _ConnectionLost):
            return outcome
        losses.append(outcome.error)
        if len(losses) > DB_RERUNS:
            return Failed(error=f"The platform database connection was lost under the agent {len(losses)} times "
                                f"(last: {outcome.error}); the attempt fails.", retryable=True)
        log.warning("the platform database connection was lost under the agent (%s); reconnecting to run attempt %s "
                    "again (rerun %d of %d)", outcome.error, run.attempt, len(losses), DB_RERUNS)
        connection.close()
        try:
            held = _reconnecting(lease.renew, what=f"run {run.pk} renewing its lease after a lost connection")()
        except DB_ERRORS as error:
            return Failed(error=f"The platform database connection was lost under the agent ({outcome.error}) and "
                                f"could not be opened again ({type(error).__name__}: {error}).", retryable=True)
        if not held:
            return Failed(error=f"The platform database connection was lost under the agent ({outcome.error}); the "
                                "run was no longer this worker's once it reconnected.", retryable=True)
        _note_rerun(run=run, losses=losses)


def _note_rerun(*, run: Run, losses: list[str]) -> None:
    try:
        history_record(
            mission_id=run.task.mission_id, task=run.task, run=run, event="run.db_rerun",
            message=f"The platform database connection was lost under the agent of attempt {run.attempt} "
                    f"({losses[-1]}); the worker reconnected and runs attempt {run.attempt} again (rerun "
                    f"{len(losses)} of {DB_RERUNS}), which does not count as another attempt.",
            data={"worker": _worker_id(), "rerun": len(losses), "reruns": DB_RERUNS, "errors": losses},
        )
    except Exception:  # the rerun goes ahead; only this note of why is missing
        logger.exception("run %s: could not record the rerun", run.pk)


def _run_agent(run: Run, context: AgentContext, log: RunLog,
               watch: _AgentConnection) -> Outcome | _ConnectionLost:
    agent = run.task.owner_agent
    watch.start()
    try:
        if not agent.enabled:
            return Failed(error=f"Agent {agent.name} is disabled.", retryable=False)
        implementation = registry.get(agent.kind)()
        # An agent's queries read whole tables (profiles, checks, verification): the worker's limit, not a page's.
        with query_timeout(settings.GENESIS_AGENT_QUERY_TIMEOUT_SECONDS):
            outcome = implementation.run(context)
    except registry.UnknownAgentKind as error:
        return Failed(error=str(error), retryable=False)
    except Exception as error:
        log.lines.append(traceback.format_exc())
        if platform_connection_lost(error, opened=watch.opened):
            return _ConnectionLost(error=f"{type(error).__name__}: {str(error).strip()}")
        return Failed(error=f"{type(error).__name__}: {error}", retryable=True)
    if not isinstance(outcome, Succeeded | NeedsInput | NeedsApproval | Failed):
        return Failed(error=f"Agent {agent.kind} answered {type(outcome).__name__}, not an outcome.", retryable=False)
    if isinstance(outcome, Failed) and not context.cancelled() and _connection_gone(opened=watch.opened):
        # The agent caught the error of its own query on a lost connection and answered a failure: the same loss as
        # one it let through, so the same bounded rerun. Only a failure: an agent that got through despite the loss
        # answered what it did, and the recording reconnects by itself.
        return _ConnectionLost(error=f"the agent failed ({outcome.error}) after the platform database connection "
                                     "it worked on was lost")
    return outcome

class _Delivery:
    """The runs of one queue message not yet taken (``tasks`` point 6). The worker's main thread takes them one by
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
    then the run its recording kept for this worker, if any (``tasks`` point 4). Returns a short word for logs and
    tests: the last outcome, or why nothing was done."""
    return execute_runs([run_id])

def execute_runs(run_ids: list[int]) -> str:
    """What a worker runs for a queue message of several runs (``tasks`` point 6): each in turn, as ``execute_run``
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
    lease = Lease(run, token, timeout=float(task.timeout_seconds), hard_stop=in_cluster_worker(), delivery=delivery,
                  local=connection.in_atomic_block)
    lease.start()
    try:
        watch = _AgentConnection()
        context = _context(run, lease, log, watch)
        outcome = _run_attempt(run, context, log, lease, watch)
    finally:
        lease.stop()
    if lease.timed_out.is_set():
        if lease.local:
            _refuse_timed_out(run=run, token=token, lease=lease, log=log)
        _refuse_late(run=run, token=token, why="it ran past its timeout")
        return "timeout", None
    # Only a success starts dependents; a retry's backoff is for the sweep to honour.
    try:
        word, kept = _record_reconnecting(run=run, token=token, outcome=outcome, log=log,
                                          keep=isinstance(outcome, Succeeded) and time.monotonic() < chain_until)
    except DomainError as error:
        if error.code == "stale_lease":
            logger.warning("run %s: result refused, this worker lost the lease", run.pk)
            return "refused", None
        raise
    # Kept only if the recording committed (it raised otherwise, and the kept run rolled back with it).
    return word, (kept[0] if kept else None)

def _record_reconnecting(*, run: Run, token, outcome: Outcome, log: RunLog, keep: bool) -> tuple[str, list[int]]:
    """Record the outcome (``_record``). If the database connection failed under it, the recording rolled back
    whole: reconnect and record it again, from the run as the database has it, up to ``DB_ATTEMPTS`` times. The
    attempt is not lost to a dropped connection, and the drop is recorded as what it was (``run.db_reconnected``);
    the lease token still fences it, so a worker whose lease ran out meanwhile is refused as before."""
    failures: list[str] = []
    for attempt in range(1, DB_ATTEMPTS + 1):
        try:
            with keeping_next(keep) as kept:
                word = _record(run=run, token=token, outcome=outcome, log=log)
        except DB_ERRORS as error:
            if attempt == DB_ATTEMPTS or connection.in_atomic_block:
                raise
            failures.append(f"{type(error).__name__}: {str(error).strip()}")
            _reconnect(attempt=attempt, what=f"recording run {run.pk}", error=error)
            run = Run.objects.select_related("task__mission", "task__owner_agent").get(pk=run.pk)
            continue
        if failures:
            _note_reconnected(run=run, failures=failures, word=word)
        return word, kept or []
    raise AssertionError("unreachable")  # the last attempt returned or raised

def _note_reconnected(*, run: Run, failures: list[str], word: str) -> None:
    try:
        history_record(
            mission_id=run.task.mission_id, task=run.task, run=run, event="run.db_reconnected",
            message=f"The database connection failed while attempt {run.attempt} was recorded ({failures[-1]}); "
                    f"the worker reconnected and recorded it ({word}) on try {len(failures) + 1}.",
            data={"worker": _worker_id(), "failures": failures, "recorded": word},
        )
    except Exception:  # the outcome is recorded; only this note of how is missing
        logger.exception("run %s: could not record the reconnection", run.pk)

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

def _refuse_timed_out(*, run: Run, token, lease: Lease, log: RunLog) -> None:
    """A local lease's timeout, recorded on the caller's connection once the agent has returned (its thread could
    not: ``Lease``): the attempt fails as a timeout, and an agent that went on past the grace period is noted."""
    _fail_run(run_id=run.pk, token=token, retryable=True, kind="timeout", error=f"Timed out after {lease.timeout:g} s.",
              log=log.text)
    ignored = time.monotonic() - (lease.timed_out_at or time.monotonic())
    if ignored > cancel_grace_seconds():
        lease._note_ignored(why="timed out", ignored=ignored, grace=cancel_grace_seconds())


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
