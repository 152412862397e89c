"""The hard stop of an agent that ignores a cancel or a timeout, in-process: the lease thread's decision (stop the
worker, record only, or leave it be) and how the engine knows it runs in a cluster worker. The worker really being
killed and replaced is tested with real clusters in test_workers.py."""

import multiprocessing
import os
import signal
import time

import pytest
from django_q.signals import pre_execute

from history.models import HistoryEntry
from tasks import runtime, services
from tasks.choices import RunStatus, TaskStatus
from tasks.models import Run, Task
from workflows import missions as mission_workflows
from workflows import tasks as task_workflows

pytestmark = pytest.mark.django_db(transaction=True)  # the lease thread uses its own connection


@pytest.fixture
def kills(monkeypatch):
    """Records the hard stops the engine orders, instead of killing the test process."""
    calls = []
    monkeypatch.setattr(runtime, "_kill_this_worker", lambda: calls.append(os.getpid()))
    return calls


@pytest.fixture
def fast(settings):
    settings.GENESIS_HEARTBEAT_SECONDS = 0.05
    settings.GENESIS_CANCEL_GRACE_SECONDS = 0.3
    return settings


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def claimed_run(mission, agent, lead, enqueued, **fields):
    """A run of a one-task mission, claimed by this process (the queue is not run)."""
    task = services.task_create(mission=mission, key="work", title="work", owner_agent=agent, **fields)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = Run.objects.get(task=task)
    claimed = runtime._claim(run.pk)
    assert claimed is not None
    return claimed


def entries(run, event):
    return list(HistoryEntry.objects.filter(run=run, event=event))


# --- where a run executes ---------------------------------------------------------------------------------------


def test_only_a_task_a_broker_delivered_to_a_worker_process_counts_as_in_a_cluster_worker(monkeypatch):
    pre_execute.send(sender="django_q", func=None, task={"id": "x", "sync": True})
    assert runtime.in_cluster_worker() is False  # sync mode: the caller's process
    pre_execute.send(sender="django_q", func=None, task={"id": "y"})
    assert runtime.in_cluster_worker() is False  # delivered, but this is a main process (never killed)
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: object())
    assert runtime.in_cluster_worker() is True  # delivered to a child of the cluster's sentinel
    pre_execute.send(sender="django_q", func=None, task={"id": "z", "sync": True})
    assert runtime.in_cluster_worker() is False


def test_a_run_in_sync_mode_is_not_in_a_cluster_worker(mission, agent, lead, monkeypatch):
    seen = []
    real = runtime.Lease

    def lease(*args, **kwargs):
        seen.append(kwargs["hard_stop"])
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime, "Lease", lease)
    services.task_create(mission=mission, key="a", title="a", owner_agent=agent, config={})
    mission_workflows.mission_launch(mission=mission, actor=lead)  # sync mode: django-q2 runs the run in this process
    assert seen == [False]
    assert Task.objects.get(mission=mission).status == TaskStatus.DONE


# --- the lease thread's decision --------------------------------------------------------------------------------


def test_a_worker_whose_agent_ignores_a_cancel_past_the_grace_period_is_stopped(
        mission, agent, lead, enqueued, kills, fast):
    run, token = claimed_run(mission, agent, lead, enqueued)
    lease = runtime.Lease(run, token, timeout=60, hard_stop=True)
    lease.start()
    task_workflows.task_cancel(task=run.task, actor=lead, reason="Not needed")
    try:
        assert wait_for(lambda: kills), "the worker was not stopped"
    finally:
        lease.stop()  # the agent "returns" after the (recorded, not real) kill
    assert kills == [os.getpid()]
    assert lease.cancelled.is_set()
    (stopped,) = entries(run, "run.worker_stopped")
    assert stopped.data["reason"] == "cancelled"
    assert stopped.data["pid"] == os.getpid()
    assert stopped.data["worker"] == runtime._worker_id()
    assert stopped.data["ignored_seconds"] >= 0.3
    assert "ignored that its run was cancelled" in stopped.message
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    # The killed worker's queue message (an ORM broker delivers it again after Q_RETRY) cannot run it again.
    assert runtime.execute_run(run.pk) == "skipped"
    assert len(entries(run, "run.claim_refused")) == 1


def test_an_agent_that_returns_within_the_grace_period_keeps_its_worker(mission, agent, lead, enqueued, kills, fast):
    run, token = claimed_run(mission, agent, lead, enqueued)
    fast.GENESIS_CANCEL_GRACE_SECONDS = 2
    lease = runtime.Lease(run, token, timeout=60, hard_stop=True)
    lease.start()
    task_workflows.task_cancel(task=run.task, actor=lead, reason="Not needed")
    assert wait_for(lease.cancelled.is_set)
    time.sleep(0.2)  # the agent takes a moment to wind down, well within the grace period
    lease.stop()
    assert kills == []
    assert not HistoryEntry.objects.filter(run=run, event__in=["run.worker_stopped", "run.cancel_ignored"]).exists()


def test_a_run_the_worker_still_holds_never_stops_it(mission, agent, lead, enqueued, kills, fast):
    run, token = claimed_run(mission, agent, lead, enqueued)
    fast.GENESIS_CANCEL_GRACE_SECONDS = 0
    lease = runtime.Lease(run, token, timeout=60, hard_stop=True)
    lease.start()
    time.sleep(0.5)  # ten heartbeats
    lease.stop()
    assert kills == []
    assert not lease.cancelled.is_set()
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert not entries(run, "run.worker_stopped")


def test_a_timed_out_run_whose_agent_ignores_it_stops_the_worker(mission, agent, lead, enqueued, kills, fast):
    run, token = claimed_run(mission, agent, lead, enqueued, max_attempts=1)
    lease = runtime.Lease(run, token, timeout=0.2, hard_stop=True)
    lease.start()
    try:
        assert wait_for(lambda: kills), "the worker was not stopped"
    finally:
        lease.stop()
    assert lease.timed_out.is_set()
    (stopped,) = entries(run, "run.worker_stopped")
    assert stopped.data["reason"] == "timed out"
    assert Run.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert Task.objects.get(pk=run.task_id).status == TaskStatus.FAILED
    assert runtime.execute_run(run.pk) == "skipped"
    assert len(entries(run, "run.claim_refused")) == 1


# --- through execute_run ----------------------------------------------------------------------------------------


def test_outside_a_cluster_worker_an_agent_that_ignores_its_timeout_is_recorded_not_killed(
        mission, agent, lead, enqueued, kills, fast):
    task = services.task_create(mission=mission, key="stuck", title="stuck", owner_agent=agent, timeout_seconds=1,
                                max_attempts=1, config={"sleep_ms": 2000, "ignore_cancel": True})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = Run.objects.get(task=task)
    started = time.monotonic()
    assert runtime.execute_run(run.pk) == "timeout"
    assert time.monotonic() - started >= 2  # it slept its full time: it ignored the timeout
    assert kills == []
    assert not entries(run, "run.worker_stopped")
    (ignored,) = entries(run, "run.cancel_ignored")
    assert ignored.data["reason"] == "timed out"
    assert "outside a cluster worker" in ignored.message
    run.refresh_from_db()
    assert (run.status, run.result["failure"]) == (RunStatus.FAILED, "timeout")
    assert entries(run, "run.stale_result_refused")  # its late result was refused


def test_in_a_cluster_worker_an_agent_that_ignores_its_timeout_has_its_worker_stopped(
        mission, agent, lead, enqueued, kills, fast, monkeypatch):
    monkeypatch.setattr(runtime, "in_cluster_worker", lambda: True)
    task = services.task_create(mission=mission, key="stuck", title="stuck", owner_agent=agent, timeout_seconds=1,
                                max_attempts=1, config={"sleep_ms": 2000, "ignore_cancel": True})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = Run.objects.get(task=task)
    runtime.execute_run(run.pk)
    assert kills == [os.getpid()]
    (stopped,) = entries(run, "run.worker_stopped")
    assert stopped.data["reason"] == "timed out"
    assert 0.3 <= stopped.data["ignored_seconds"] < 1.5


def test_in_a_cluster_worker_an_agent_that_honours_its_timeout_keeps_its_worker(
        mission, agent, lead, enqueued, kills, fast, monkeypatch):
    monkeypatch.setattr(runtime, "in_cluster_worker", lambda: True)
    task = services.task_create(mission=mission, key="slow", title="slow", owner_agent=agent, timeout_seconds=1,
                                max_attempts=1, config={"sleep_ms": 5000})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = Run.objects.get(task=task)
    started = time.monotonic()
    assert runtime.execute_run(run.pk) == "timeout"
    assert time.monotonic() - started < 2
    assert kills == []
    assert not HistoryEntry.objects.filter(run=run, event__in=["run.worker_stopped", "run.cancel_ignored"]).exists()


def test_the_real_hard_stop_is_a_sigkill_of_this_process(monkeypatch):
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    runtime._kill_this_worker()
    assert sent == [(os.getpid(), signal.SIGKILL)]
