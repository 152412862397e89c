"""Real worker clusters (``manage.py qcluster`` processes, not sync mode) against PostgreSQL: exactly-once under
two clusters, a worker killed or stopped mid-run, a task that always crashes, cancel of running work, and the hard
stop of a worker whose agent ignores a cancel or a timeout."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from history.models import HistoryEntry
from missions import services as mission_services
from missions.choices import MissionStatus
from missions.models import Mission
from tasks import services
from tasks.choices import RunStatus, TaskStatus
from tasks.models import Notification, Run, Task
from tests.tasks.queue import messages
from workflows import missions as mission_workflows
from workflows import tasks as task_workflows

ROOT = Path(__file__).resolve().parents[2]
GRACE = 1.0  # GENESIS_CANCEL_GRACE_SECONDS of the clusters
pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").split(":")[0] not in {"postgres", "postgresql"},
                       reason="real worker clusters are tested on PostgreSQL"),
]


@pytest.fixture
def clusters(monkeypatch, tmp_path):
    """Start N qcluster processes on the test database; stop them all at the end."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    started: list[subprocess.Popen] = []
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "genesis.settings",
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
                        f"{db['NAME']}",
        "GENESIS_VAR_DIR": str(tmp_path),
        "GENESIS_LEASE_SECONDS": "2",
        "GENESIS_HEARTBEAT_SECONDS": "0.3",
        "GENESIS_SWEEP_SECONDS": "0.5",
        "GENESIS_RETRY_BACKOFF_SECONDS": "0",
        "GENESIS_NOTIFY_BACKOFF_SECONDS": "0",
        "GENESIS_CANCEL_GRACE_SECONDS": str(GRACE),
        # With 2 s leases, runs waiting behind busy workers on a loaded machine would be sent again (refused at their
        # claim, which these tests count as a fault); test_worker_faults.py tests the two-lease default.
        "GENESIS_REDISPATCH_SECONDS": "30",
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        # No dbt import at each cluster's start (2 s): these runs never build (test_a_cluster_preloads_* tests it).
        "GENESIS_WORKER_PRELOAD": "",
        "GENESIS_WORKER_WARMUP": "",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }

    def start(n: int = 1, workers: int = 2, **extra_env: str) -> list[subprocess.Popen]:
        for _ in range(n):
            started.append(subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"], cwd=ROOT,
                env={**env, "Q_WORKERS": str(workers), **extra_env},
                start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"cluster-{len(started)}.log", "w"),  # noqa: SIM115
            ))
        time.sleep(1.5)  # let the pushers start listening
        return started

    yield start
    # SIGTERM to the cluster's main process alone stops it cleanly in about a second (the same signal sent to the
    # whole group kills its sentinel mid-wait and leaves the main process hanging); whatever is left after that (a
    # worker still busy with a long agent) is killed with the group.
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    connection.close()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def mission_status(mission) -> str:
    return Mission.objects.values_list("status", flat=True).get(pk=mission.pk)


def build_graph(mission, agent, sleep_ms: int = 0) -> list[Task]:
    """200 tasks: 5 blocks of 40, each a chain of 10, a fan-out of 20 and a fan-in, the blocks chained."""
    tasks: list[Task] = []
    config = {"sleep_ms": sleep_ms}

    def add(key):
        task = Task(mission=mission, key=key, title=key, owner_agent=agent, config=config, position=len(tasks))
        tasks.append(task)
        return task

    edges = []
    previous_sink = None
    for block in range(5):
        chain = [add(f"b{block}-chain{i}") for i in range(10)]
        fan = [add(f"b{block}-fan{i}") for i in range(20)]
        sink = add(f"b{block}-sink")
        extra = [add(f"b{block}-tail{i}") for i in range(9)]
        if previous_sink is not None:
            edges.append((chain[0], previous_sink))
        edges += [(chain[i + 1], chain[i]) for i in range(9)]
        edges += [(f, chain[-1]) for f in fan]
        edges += [(sink, f) for f in fan]
        edges += [(extra[0], sink)] + [(extra[i + 1], extra[i]) for i in range(8)]
        previous_sink = extra[-1]
    Task.objects.bulk_create(tasks)
    from tasks.models import Dependency

    Dependency.objects.bulk_create([Dependency(task=a, depends_on=b) for a, b in edges])
    assert len(tasks) == 200
    return tasks


def test_two_clusters_run_every_task_of_200_exactly_once(mission, agent, lead, clusters):
    build_graph(mission, agent)
    clusters(2)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 120, "the mission to complete")
    runs = list(Run.objects.filter(task__mission=mission).values("task_id", "status", "started_at", "finished_at",
                                                                   "worker"))
    assert len(runs) == 200
    assert {r["status"] for r in runs} == {RunStatus.SUCCEEDED}
    assert len({r["task_id"] for r in runs}) == 200
    assert len({r["worker"].rsplit(":", 1)[1] for r in runs}) >= 2  # the work was shared
    # history is complete: each task went ready → queued → running → done exactly once
    for event in ("task.ready", "task.queued", "task.running", "task.done", "run.created", "run.running",
                  "run.succeeded"):
        assert HistoryEntry.objects.filter(mission=mission, event=event).count() == 200, event
    assert not HistoryEntry.objects.filter(mission=mission, event="run.claim_refused").exists()


def test_a_cluster_preloads_its_modules_once_before_forking_its_workers(mission, agent, lead, clusters, tmp_path):
    """GENESIS_WORKER_PRELOAD is imported by the qcluster command itself, before its sentinel and workers fork from
    it (so they start with it); a module that cannot be imported does not keep the cluster from working."""
    marker = tmp_path / "preloaded.txt"
    build_graph(mission, agent)
    [process] = clusters(1, GENESIS_WORKER_PRELOAD="tests.tasks.preload_marker,no_such_module_here",
                         GENESIS_TEST_PRELOAD_MARKER=str(marker))
    mission_workflows.mission_launch(mission=mission, actor=lead)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 120, "the mission to complete")
    assert marker.read_text().split() == [str(process.pid)]


def test_a_worker_killed_mid_run_is_marked_lost_and_the_task_retried(mission, agent, lead, clusters):
    tasks = {key: services.task_create(mission=mission, key=key, title=key, owner_agent=agent,
                                       config={"sleep_ms": 5000 if key == "slow" else 0})
             for key in ("slow", "after")}
    services.dependency_add(task=tasks["after"], depends_on=tasks["slow"])
    clusters(1)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = wait_for(lambda: Run.objects.filter(task=tasks["slow"], status=RunStatus.RUNNING).first(), 30,
                   "the slow task to run")
    os.kill(int(run.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    runs = list(Run.objects.filter(task=tasks["slow"]).order_by("attempt").values_list("status", flat=True))
    assert runs == [RunStatus.LOST, RunStatus.SUCCEEDED]
    lost = HistoryEntry.objects.get(run=run, event="run.lost")
    assert "expired" in lost.message
    assert HistoryEntry.objects.filter(task=tasks["slow"], event="run.retry_scheduled").count() == 1


def test_a_worker_killed_holding_a_delivery_of_several_runs_loses_none(mission, agent, lead, clusters, settings):
    """A queue message may carry several runs (engine module point 6). Its worker dies on the first: the runs it
    held are handed on by the sweep once the hold expires, each runs exactly once and the mission completes."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 1}  # so five runs go out two a message
    keys = ["crash", "held", "q2", "q3", "q4"]
    tasks = {key: services.task_create(mission=mission, key=key, title=key, owner_agent=agent,
                                       config={"crash_attempts": 1} if key == "crash" else {}) for key in keys}
    mission_workflows.mission_launch(mission=mission, actor=lead)
    carried = messages()
    by_task = dict(Run.objects.filter(task__mission=mission).values_list("task__key", "pk"))
    assert carried[0] == [by_task["crash"], by_task["held"]]
    clusters(1, workers=1)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    assert list(Run.objects.filter(task=tasks["crash"]).order_by("attempt").values_list("status", flat=True)) == [
        RunStatus.LOST, RunStatus.SUCCEEDED]
    for key in keys[1:]:
        assert list(Run.objects.filter(task=tasks[key]).values_list("status", flat=True)) == [RunStatus.SUCCEEDED]
    assert not HistoryEntry.objects.filter(mission=mission, event="run.claim_refused").exists()
    runs = {run.task.key: run for run in Run.objects.filter(task__mission=mission, attempt=1).select_related("task")}
    # "held" waited for its hold to expire (the dead worker's), while the new worker took the other messages.
    # The clusters' hold: 2 s chaining window + 0.5 s hand-off + 2 s lease.
    assert (runs["held"].started_at - runs["crash"].started_at).total_seconds() >= 4.0
    assert runs["held"].started_at > max(runs[key].finished_at for key in ("q2", "q3", "q4"))


def test_quick_runs_of_a_message_do_not_wait_behind_a_long_one(mission, agent, lead, clusters, settings):
    """The long run's worker gives its message's other runs back after GENESIS_HANDOFF_SECONDS (0.5 s), and the
    other worker runs them while the long one still works."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 1}  # so eight runs go out four a message
    keys = ["slow"] + [f"q{i}" for i in range(7)]
    for key in keys:
        services.task_create(mission=mission, key=key, title=key, owner_agent=agent,
                             config={"sleep_ms": 4000 if key == "slow" else 100})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    by_task = dict(Run.objects.filter(task__mission=mission).values_list("task__key", "pk"))
    assert messages()[0] == [by_task[k] for k in keys[:4]]
    clusters(1, workers=2)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    runs = {run.task.key: run for run in Run.objects.filter(task__mission=mission).select_related("task")}
    assert len(runs) == 8 and {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    for key in ("q0", "q1", "q2"):  # the slow run's batch-mates
        assert runs[key].finished_at < runs["slow"].finished_at - timedelta(seconds=1), key
        assert runs[key].worker != runs["slow"].worker
    assert not HistoryEntry.objects.filter(mission=mission, event="run.claim_refused").exists()


REDIS_TEST_URL = "redis://127.0.0.1:6379/8"


def test_on_the_redis_broker_a_lost_worker_and_batched_runs_lose_nothing(mission, agent, lead, clusters, settings,
                                                                        monkeypatch):
    """With REDIS_URL set, django-q2's Redis broker carries the runs (a message popped is gone, so a dead worker's
    message is never delivered again: the engine's leases, holds and sweep must recover everything)."""
    redis = pytest.importorskip("redis")
    from django_q.conf import Conf

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379 (.ci/run starts one)")
    # This process enqueues the way a web server with REDIS_URL set does.
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": REDIS_TEST_URL}
    monkeypatch.setattr(Conf, "REDIS", REDIS_TEST_URL)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "BROKER_CLASS", "tasks.broker.RedisBroker")
    keys = ["crash", "a", "b", "c", "d", "e"]
    tasks = {"root": services.task_create(mission=mission, key="root", title="root", owner_agent=agent),
             "sink": services.task_create(mission=mission, key="sink", title="sink", owner_agent=agent)}
    for key in keys:
        tasks[key] = services.task_create(mission=mission, key=key, title=key, owner_agent=agent,
                                          config={"crash_attempts": 1} if key == "crash" else {"sleep_ms": 50})
        services.dependency_add(task=tasks[key], depends_on=tasks["root"])
        services.dependency_add(task=tasks["sink"], depends_on=tasks[key])
    clusters(1, workers=1, REDIS_URL=REDIS_TEST_URL)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    assert list(Run.objects.filter(task=tasks["crash"]).order_by("attempt").values_list("status", flat=True)) == [
        RunStatus.LOST, RunStatus.SUCCEEDED]
    for key in ["root", "sink", *keys[1:]]:
        assert list(Run.objects.filter(task=tasks[key]).values_list("status", flat=True)) == [RunStatus.SUCCEEDED]
    assert not HistoryEntry.objects.filter(mission=mission, event="run.claim_refused").exists()
    assert client.llen(f"django_q:{Conf.CLUSTER_NAME}:q") == 0  # nothing left on the queue
    assert messages() == []  # nothing went through the database's queue table
    client.flushdb()


def test_a_stopped_worker_past_its_lease_has_its_late_result_refused(mission, agent, lead, clusters):
    task = services.task_create(mission=mission, key="slow", title="slow", owner_agent=agent,
                                config={"sleep_ms": 3000})
    clusters(2)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    first = wait_for(lambda: Run.objects.filter(task=task, status=RunStatus.RUNNING).first(), 30, "the run")
    pid = int(first.worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: Run.objects.filter(task=task, status=RunStatus.SUCCEEDED).exists(), 60,
                 "another worker to take the task over")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: HistoryEntry.objects.filter(run=first, event="run.stale_result_refused").exists(), 30,
             "the late result to be refused")
    runs = list(Run.objects.filter(task=task).order_by("attempt").values_list("status", "worker"))
    assert [status for status, _ in runs] == [RunStatus.LOST, RunStatus.SUCCEEDED]
    assert runs[1][1] != first.worker
    assert Run.objects.filter(task=task, status=RunStatus.SUCCEEDED).count() == 1
    assert mission_status(mission) == MissionStatus.COMPLETED


def test_a_task_that_always_crashes_stops_at_max_attempts_and_the_owner_is_told(mission, agent, lead, clusters):
    task = services.task_create(mission=mission, key="crash", title="crash", owner_agent=agent, max_attempts=2,
                                config={"crash_always": True})
    clusters(1)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    wait_for(lambda: mission_status(mission) == MissionStatus.FAILED, 60, "the mission to fail")
    runs = list(Run.objects.filter(task=task).order_by("attempt").values_list("status", flat=True))
    assert runs == [RunStatus.LOST, RunStatus.LOST]
    assert Task.objects.get(pk=task.pk).status == TaskStatus.FAILED
    wait_for(lambda: Notification.objects.filter(task=task, event="task.failed", status="sent",
                                                 target="lead@example.com").exists(), 30, "the owner's notice")


def test_cancel_stops_running_work_promptly(mission, agent, lead, clusters):
    task = services.task_create(mission=mission, key="long", title="long", owner_agent=agent,
                                config={"sleep_ms": 60000})
    clusters(1)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = wait_for(lambda: Run.objects.filter(task=task, status=RunStatus.RUNNING).first(), 30, "the run")
    cancelled_at = time.monotonic()
    task_workflows.task_cancel(task=task, actor=lead, reason="Not needed")
    refusal = wait_for(lambda: HistoryEntry.objects.filter(run=run, event="run.stale_result_refused").first(), 10,
                       "the agent to stop")
    assert time.monotonic() - cancelled_at < 5
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert Task.objects.get(pk=task.pk).status == TaskStatus.CANCELLED
    assert "record" in refusal.message


# --- the hard stop of an agent that ignores a cancel or a timeout ---------------------------------------------


def worker_pid(run) -> int:
    return int(run.worker.rsplit(":", 1)[1])


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent (the cluster's sentinel) to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def queued_behind(lead, agent, name: str) -> Task:
    """A quick task of another mission, started now: with a one-worker cluster busy, it waits for the slot."""
    other = mission_services.mission_create(name=name, objective="Another outcome, waiting for a worker.",
                                            owner=lead)
    task = services.task_create(mission=other, key="quick", title="quick", owner_agent=agent, config={})
    mission_workflows.mission_launch(mission=other, actor=lead)
    return task


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
def test_a_worker_whose_agent_ignores_a_cancel_or_timeout_is_stopped_and_replaced(mission, agent, lead, clusters,
                                                                                  stop):
    stuck = services.task_create(mission=mission, key="stuck", title="stuck", owner_agent=agent, max_attempts=1,
                                 timeout_seconds=2 if stop == "timeout" else 3600,
                                 config={"sleep_ms": 120000, "ignore_cancel": True})
    (cluster,) = clusters(1, workers=1)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = wait_for(lambda: Run.objects.filter(task=stuck, status=RunStatus.RUNNING).first(), 30, "the run")
    pid = worker_pid(run)
    quick = queued_behind(lead, agent, "Other mission")
    time.sleep(0.5)
    assert Run.objects.get(task=quick).status == RunStatus.QUEUED  # the only worker is busy
    stopped_at = time.monotonic()
    if stop == "cancel":
        task_workflows.task_cancel(task=stuck, actor=lead, reason="Not needed")
    entry = wait_for(lambda: HistoryEntry.objects.filter(run=run, event="run.worker_stopped").first(),
                     GRACE + 10, "the worker to be stopped")
    wait_for(lambda: not alive(pid), 10, "the worker process to end")
    if stop == "cancel":
        assert time.monotonic() - stopped_at < GRACE + 5
    assert entry.data["pid"] == pid
    assert entry.data["worker"] == run.worker
    assert entry.data["reason"] == ("cancelled" if stop == "cancel" else "timed out")
    assert GRACE <= entry.data["ignored_seconds"] < GRACE + 2
    run.refresh_from_db()
    if stop == "cancel":
        assert (run.status, Task.objects.get(pk=stuck.pk).status) == (RunStatus.CANCELLED, TaskStatus.CANCELLED)
    else:
        assert (run.status, run.result["failure"]) == (RunStatus.FAILED, "timeout")
        assert Task.objects.get(pk=stuck.pk).status == TaskStatus.FAILED
    # The slot came back: the cluster replaced the worker and the task waiting for it runs there.
    done = wait_for(lambda: Run.objects.filter(task=quick, status=RunStatus.SUCCEEDED).first(), 30,
                    "the waiting task to run")
    assert worker_pid(done) != pid
    assert done.worker.rsplit(":", 1)[0] == run.worker.rsplit(":", 1)[0]
    assert cluster.poll() is None  # the cluster itself runs on
    # The killed worker never recorded anything more, and its run was not run again.
    assert not HistoryEntry.objects.filter(run=run, event="run.stale_result_refused").exists()
    assert Run.objects.filter(task=stuck).count() == 1


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
def test_a_worker_whose_agent_honours_a_cancel_or_timeout_is_kept(mission, agent, lead, clusters, stop):
    slow = services.task_create(mission=mission, key="slow", title="slow", owner_agent=agent, max_attempts=1,
                                timeout_seconds=2 if stop == "timeout" else 3600, config={"sleep_ms": 60000})
    clusters(1, workers=1)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = wait_for(lambda: Run.objects.filter(task=slow, status=RunStatus.RUNNING).first(), 30, "the run")
    pid = worker_pid(run)
    if stop == "cancel":
        task_workflows.task_cancel(task=slow, actor=lead, reason="Not needed")
    wait_for(lambda: HistoryEntry.objects.filter(run=run, event="run.stale_result_refused").exists(), 10,
             "the agent to stop")
    time.sleep(GRACE + 1)
    assert alive(pid)
    assert not HistoryEntry.objects.filter(run=run, event="run.worker_stopped").exists()
    # The same worker takes the next task.
    quick = queued_behind(lead, agent, "Other mission")
    done = wait_for(lambda: Run.objects.filter(task=quick, status=RunStatus.SUCCEEDED).first(), 30, "the next task")
    assert worker_pid(done) == pid
