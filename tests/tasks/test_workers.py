"""Real worker clusters (``manage.py qcluster`` processes, not sync mode) against PostgreSQL: exactly-once under
two clusters, a worker killed or stopped mid-run, a task that always crashes, cancel of running work."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from missions.choices import MissionStatus
from missions.models import Mission
from tasks import engine, services
from tasks.choices import RunStatus, TaskStatus
from tasks.models import HistoryEntry, Notification, Run, Task

ROOT = Path(__file__).resolve().parents[2]
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
        "DB_CONN_MAX_AGE": "600",
        "Q_WORKERS": "2",
        "LOG_LEVEL": "WARNING",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }

    def start(n: int = 1) -> list[subprocess.Popen]:
        for _ in range(n):
            started.append(subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"cluster-{len(started)}.log", "w"),  # noqa: SIM115
            ))
        time.sleep(1.5)  # let the pushers start listening
        return started

    yield start
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
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
    engine.mission_start(mission=mission, actor=lead)
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


def test_a_worker_killed_mid_run_is_marked_lost_and_the_task_retried(mission, agent, lead, clusters):
    tasks = {key: services.task_create(mission=mission, key=key, title=key, owner_agent=agent,
                                       config={"sleep_ms": 5000 if key == "slow" else 0})
             for key in ("slow", "after")}
    services.dependency_add(task=tasks["after"], depends_on=tasks["slow"])
    clusters(1)
    engine.mission_start(mission=mission, actor=lead)
    run = wait_for(lambda: Run.objects.filter(task=tasks["slow"], status=RunStatus.RUNNING).first(), 30,
                   "the slow task to run")
    os.kill(int(run.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    runs = list(Run.objects.filter(task=tasks["slow"]).order_by("attempt").values_list("status", flat=True))
    assert runs == [RunStatus.LOST, RunStatus.SUCCEEDED]
    lost = HistoryEntry.objects.get(run=run, event="run.lost")
    assert "expired" in lost.message
    assert HistoryEntry.objects.filter(task=tasks["slow"], event="run.retry_scheduled").count() == 1


def test_a_stopped_worker_past_its_lease_has_its_late_result_refused(mission, agent, lead, clusters):
    task = services.task_create(mission=mission, key="slow", title="slow", owner_agent=agent,
                                config={"sleep_ms": 3000})
    clusters(2)
    engine.mission_start(mission=mission, actor=lead)
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
    engine.mission_start(mission=mission, actor=lead)
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
    engine.mission_start(mission=mission, actor=lead)
    run = wait_for(lambda: Run.objects.filter(task=task, status=RunStatus.RUNNING).first(), 30, "the run")
    cancelled_at = time.monotonic()
    services.task_cancel(task=task, actor=lead, reason="Not needed")
    refusal = wait_for(lambda: HistoryEntry.objects.filter(run=run, event="run.stale_result_refused").first(), 10,
                       "the agent to stop")
    assert time.monotonic() - cancelled_at < 5
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert Task.objects.get(pk=task.pk).status == TaskStatus.CANCELLED
    assert "record" in refusal.message
