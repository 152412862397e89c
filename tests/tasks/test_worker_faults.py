"""Faults of real worker clusters (``manage.py qcluster`` processes against PostgreSQL) that the cluster must get
over by itself: a worker killed while it holds django-q2's task-queue lock, a whole cluster killed while it holds
messages, and a database connection killed under a running agent."""

import os
import signal
import time
from pathlib import Path

import pytest
from django.db import connection

from history.models import HistoryEntry
from missions.choices import MissionStatus
from tasks import services
from tasks.choices import RunStatus
from tasks.models import Run
from tests.tasks import test_workers
from tests.tasks.test_workers import alive, mission_status, wait_for
from workflows import missions as mission_workflows

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").split(":")[0] not in {"postgres", "postgresql"},
                       reason="real worker clusters are tested on PostgreSQL"),
]
clusters = test_workers.clusters  # the fixture that starts real clusters and stops them by pid
READ, FUTEX = "0", "202"  # x86-64 system call numbers, as /proc/PID/syscall shows them


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found  # gone (a sentinel the watchdog or a kill replaced)
    for thread in threads:
        try:
            found += [int(p) for p in Path(f"/proc/{pid}/task/{thread}/children").read_text().split()]
        except FileNotFoundError:
            pass
    return sorted(found)


def syscall(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return ""


def sentinel_of(process) -> int:
    return wait_for(lambda: next(iter(children(process.pid)), None), 90, "the sentinel")


def cluster_processes(process, workers: int) -> list[int]:
    """The sentinel's children once all are up: its workers first (spawned first), then monitor and pusher."""
    sentinel = sentinel_of(process)
    return wait_for(lambda: (found := children(sentinel)) and len(found) == workers + 2 and found, 90,
                    "the cluster's processes")


def lock_holder(workers: list[int]) -> int:
    """The idle worker that holds the task queue's read lock: it waits in read() on the queue's pipe while the
    others wait for the lock (futex)."""
    def holder():
        calls = {pid: syscall(pid) for pid in workers}
        reading = [pid for pid, call in calls.items() if call == READ]
        return reading[0] if len(reading) == 1 and all(c in {READ, FUTEX} for c in calls.values()) else None

    def steady():  # the same one, sampled five times over a second
        seen = {holder() for _ in range(5) if time.sleep(0.2) is None}
        return seen.pop() if len(seen) == 1 and None not in seen else None
    return wait_for(steady, 90, "an idle worker reading the task queue")


def quick_tasks(mission, agent, n: int):
    return [services.task_create(mission=mission, key=f"t{i}", title=f"t{i}", owner_agent=agent) for i in range(n)]


@pytest.mark.parametrize("watchdog", [True, False], ids=["with-watchdog", "without"])
def test_a_worker_killed_holding_the_queue_lock_does_not_hang_the_cluster(mission, agent, lead, clusters, watchdog):
    """Without the watchdog the cluster never runs anything again (the finding this reproduces); with it the
    cluster restarts itself within the stall time and the work runs."""
    (process,) = clusters(1, workers=2, GENESIS_STALL_SECONDS="2" if watchdog else "0", GENESIS_REDISPATCH_SECONDS="4")
    workers = cluster_processes(process, 2)[:2]
    victim = lock_holder(workers)
    os.kill(victim, signal.SIGKILL)
    sentinel = sentinel_of(process)
    wait_for(lambda: victim not in children(sentinel) and len(children(sentinel)) == 4, 90, "the guard's new worker")
    quick_tasks(mission, agent, 3)
    started = time.monotonic()
    mission_workflows.mission_launch(mission=mission, actor=lead)
    if not watchdog:
        time.sleep(8)
        assert not Run.objects.filter(task__mission=mission, status=RunStatus.SUCCEEDED).exists()
        return
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    took = time.monotonic() - started
    print(f"queue-lock kill: work enqueued after the kill ran {took:.1f} s later")
    assert list(Run.objects.filter(task__mission=mission).values_list("status", flat=True)) == [RunStatus.SUCCEEDED] * 3
    assert sentinel_of(process) != sentinel  # a fresh cluster


def test_runs_a_dead_cluster_held_are_run_again_within_two_leases_and_its_old_messages_never_run_twice(
        mission, agent, lead, clusters):
    """The whole cluster is killed while its worker runs one task and its pusher holds the messages of two more (the
    broker has handed them out: an ORM broker would deliver them again only after Q_RETRY, about an hour). A new
    cluster runs them within about two leases (GENESIS_LEASE_SECONDS=2 here); when the dead cluster's messages are
    delivered again later, their claims are refused and nothing runs twice."""
    from django_q.models import OrmQ

    slow = services.task_create(mission=mission, key="slow", title="slow", owner_agent=agent,
                                config={"sleep_ms": 4000})
    held = [services.task_create(mission=mission, key=f"held{i}", title=f"held{i}", owner_agent=agent)
            for i in range(2)]
    (first,) = clusters(1, workers=1, GENESIS_REDISPATCH_SECONDS="4")  # the default: two leases
    # The worker runs the slow task; the held tasks' messages were taken by the pusher (one in the cluster's task
    # queue, one in the pusher's hands waiting for room), so none waits in the broker.
    mission_workflows.mission_launch(mission=mission, actor=lead)
    wait_for(lambda: Run.objects.filter(task=slow, status=RunStatus.RUNNING).exists(), 30, "the slow run")
    wait_for(lambda: OrmQ.objects.count() == 3 and not OrmQ.objects.filter(lock__lte=time_now()).exists(), 30,
             "the pusher to take every message")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    crashed = time.monotonic()
    assert Run.objects.filter(task__in=held, status=RunStatus.QUEUED).count() == 2
    (second,) = clusters(1, workers=2, GENESIS_REDISPATCH_SECONDS="4")[1:]
    cluster_processes(second, 2)
    up = time.monotonic()
    wait_for(lambda: Run.objects.filter(task__in=held).exclude(status=RunStatus.QUEUED).count() == 2, 60,
             "the held runs to be taken up again")
    took = time.monotonic() - crashed
    print(f"whole-cluster crash: the held runs were taken up again {took:.1f} s after the crash "
          f"({time.monotonic() - up:.1f} s after the new cluster was up)")
    assert time.monotonic() - up < 2 * 2 + 2  # two leases, a sweep period and some slack
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    # The dead cluster's messages, delivered again (as the ORM broker does once their Q_RETRY lock runs out).
    old = OrmQ.objects.filter(lock__gt=time_now()).count()
    assert old >= 2
    OrmQ.objects.update(lock=time_now())
    wait_for(lambda: not OrmQ.objects.exists(), 30, "the old messages to be delivered")
    wait_for(lambda: HistoryEntry.objects.filter(mission=mission, event="run.claim_refused").count() >= 2, 30,
             "their claims to be refused")
    for task in held:
        assert list(Run.objects.filter(task=task).values_list("status", flat=True)) == [RunStatus.SUCCEEDED]
    assert list(Run.objects.filter(task=slow).order_by("attempt").values_list("status", flat=True)) == [
        RunStatus.LOST, RunStatus.SUCCEEDED]
    assert mission_status(mission) == MissionStatus.COMPLETED


REDIS_URL = "redis://127.0.0.1:6379/3"


@pytest.fixture
def redis_broker(monkeypatch, settings):
    """This test process enqueues on the Redis broker (database 3, emptied before and after) that the clusters it
    starts with ``REDIS_URL`` read from."""
    import redis
    from django_q.conf import Conf

    client = redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    settings.Q_CLUSTER = {**{k: v for k, v in settings.Q_CLUSTER.items() if k not in {"orm", "poll"}},
                          "redis": REDIS_URL, "broker_class": "tasks.broker.RedisBroker"}
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    monkeypatch.setattr(Conf, "BROKER_CLASS", "tasks.broker.RedisBroker")
    key = f"django_q:{Conf.CLUSTER_NAME}:q"
    client.flushdb()
    yield client, key
    client.flushdb()
    client.close()


def test_on_redis_runs_a_dead_cluster_popped_are_run_again_within_two_leases_and_never_twice(
        mission, agent, lead, clusters, redis_broker):
    """django-q2's Redis broker has no receipts: a message is gone from Redis once a pusher pops it, so a cluster
    killed while it holds messages loses them for good (not for an hour, as the ORM broker's Q_RETRY lock does).
    The sweep sends them again once Redis holds none and two leases have passed; the dead cluster's messages, pushed
    again as a duplicate delivery would be, are refused at their claims and every task runs once."""
    client, key = redis_broker
    slow = services.task_create(mission=mission, key="slow", title="slow", owner_agent=agent,
                                config={"sleep_ms": 4000})
    held = [services.task_create(mission=mission, key=f"held{i}", title=f"held{i}", owner_agent=agent)
            for i in range(2)]
    mission_workflows.mission_launch(mission=mission, actor=lead)  # no cluster yet: the messages wait in Redis
    sent = client.lrange(key, 0, -1)
    assert len(sent) == 3
    (first,) = clusters(1, workers=1, REDIS_URL=REDIS_URL, GENESIS_REDISPATCH_SECONDS="4")
    wait_for(lambda: Run.objects.filter(task=slow, status=RunStatus.RUNNING).exists(), 60, "the slow run")
    # One message runs, one waits in the cluster's task queue, one in the pusher's hands: Redis holds none.
    wait_for(lambda: client.llen(key) == 0, 30, "the pusher to pop every message")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    crashed = time.monotonic()
    assert Run.objects.filter(task__in=held, status=RunStatus.QUEUED).count() == 2
    (second,) = clusters(1, workers=2, REDIS_URL=REDIS_URL, GENESIS_REDISPATCH_SECONDS="4")[1:]
    cluster_processes(second, 2)
    up = time.monotonic()
    wait_for(lambda: Run.objects.filter(task__in=held).exclude(status=RunStatus.QUEUED).count() == 2, 60,
             "the held runs to be taken up again")
    print(f"whole-cluster crash on Redis: the held runs were taken up again {time.monotonic() - crashed:.1f} s after "
          f"the crash ({time.monotonic() - up:.1f} s after the new cluster was up)")
    assert time.monotonic() - up < 2 * 2 + 2  # two leases, a sweep period and some slack
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    refused = HistoryEntry.objects.filter(mission=mission, event="run.claim_refused").count()
    client.rpush(key, *sent)  # the dead cluster's three messages, delivered again
    wait_for(lambda: client.llen(key) == 0, 30, "the old messages to be delivered")
    wait_for(lambda: HistoryEntry.objects.filter(mission=mission, event="run.claim_refused").count() >= refused + 3,
             30, "their claims to be refused")
    for task in held:
        assert list(Run.objects.filter(task=task).values_list("status", flat=True)) == [RunStatus.SUCCEEDED]
    assert list(Run.objects.filter(task=slow).order_by("attempt").values_list("status", flat=True)) == [
        RunStatus.LOST, RunStatus.SUCCEEDED]
    assert mission_status(mission) == MissionStatus.COMPLETED


def time_now():
    from django.utils import timezone

    return timezone.now()


def kill_other_connections() -> int:
    """Terminate every connection to the test database but this process's own, as a failover would; how many."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        return len(cursor.fetchall())


@pytest.mark.parametrize("artifact", [False, True], ids=["recording", "agent-writes"])
def test_database_connections_killed_under_a_running_agent_cost_no_attempt(mission, agent, lead, clusters, artifact):
    """Every connection of the cluster is killed (``pg_terminate_backend``, as a failover or a restart of the server
    would) while its agent works: the lease thread renews on a new connection, the worker reconnects to record the
    result (or the agent's artifact write reconnects first), and the task succeeds on its first attempt."""
    task = services.task_create(mission=mission, key="slow", title="slow", owner_agent=agent, max_attempts=1,
                                config={"sleep_ms": 3000, **({"artifact": "report"} if artifact else {})})
    after = services.task_create(mission=mission, key="after", title="after", owner_agent=agent)
    services.dependency_add(task=after, depends_on=task)
    clusters(1, workers=1)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = wait_for(lambda: Run.objects.filter(task=task, status=RunStatus.RUNNING).first(), 30, "the run")
    time.sleep(1.0)  # the worker's connections are open and idle while the agent works
    assert kill_other_connections() >= 2
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    assert list(Run.objects.filter(task=task).values_list("attempt", "status")) == [(1, RunStatus.SUCCEEDED)]
    assert list(Run.objects.filter(task=after).values_list("status", flat=True)) == [RunStatus.SUCCEEDED]
    if artifact:
        assert run.artifacts.count() == 1
    else:
        assert HistoryEntry.objects.get(run=run, event="run.db_reconnected").data["recorded"] == "succeeded"
    assert not HistoryEntry.objects.filter(mission=mission, event__in=["run.lost", "run.stale_result_refused"]).exists()


@pytest.mark.parametrize("catches", [False, True], ids=["agent-raises", "agent-catches"])
def test_a_connection_killed_under_the_agents_own_query_reruns_the_attempt_in_place(mission, agent, lead, clusters,
                                                                                    catches):
    """The agent queries the platform database itself (not through a call the engine hands it) when every
    connection is killed: its query raises (and the agent lets it through, or catches it and answers a failure),
    the worker sees its connection dead, reconnects and runs the same attempt again (``run.db_rerun``); with
    ``max_attempts=1`` the task still succeeds. The report the lost try stored before the kill is stored once."""
    task = services.task_create(mission=mission, key="reader", title="reader", owner_agent=agent, max_attempts=1,
                                config={"sleep_ms": 3000, "db_read_ms": 100, "artifact": "report",
                                        "artifact_first": True, "catch_db_errors": catches})
    clusters(1, workers=1)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = wait_for(lambda: Run.objects.filter(task=task, status=RunStatus.RUNNING).first(), 30, "the run")
    time.sleep(1.0)
    assert kill_other_connections() >= 2
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    assert list(Run.objects.filter(task=task).values_list("attempt", "status")) == [(1, RunStatus.SUCCEEDED)]
    rerun = HistoryEntry.objects.get(run=run, event="run.db_rerun")
    assert rerun.data["rerun"] == 1
    assert ("the agent failed (Could not read" if catches else "OperationalError") in rerun.data["errors"][0]
    assert list(run.artifacts.values_list("name", "version")) == [("reader-report.txt", 1)]
    assert HistoryEntry.objects.filter(run=run, event="artifact.created").count() == 1
    assert not HistoryEntry.objects.filter(mission=mission, event__in=["run.lost", "run.stale_result_refused"]).exists()


@pytest.mark.parametrize("role", ["waiting-worker", "monitor", "pusher", "sentinel"])
def test_any_process_of_a_cluster_killed_while_idle_leaves_a_cluster_that_runs_work(mission, agent, lead, clusters,
                                                                                    role):
    """Each role of a cluster SIGKILLed in turn while idle (the worker that holds the queue lock has its own test):
    the guard replaces a worker, the monitor or the pusher; the watchdog restarts a cluster whose monitor died
    holding the result queue's lock; a killed sentinel takes its processes with it and a fresh cluster starts."""
    (process,) = clusters(1, workers=2, GENESIS_STALL_SECONDS="2", GENESIS_REDISPATCH_SECONDS="4")
    found = cluster_processes(process, 2)
    sentinel = sentinel_of(process)
    workers, monitor, pusher = found[:2], found[2], found[3]
    victim = {"waiting-worker": lambda: next(p for p in workers if p != lock_holder(workers)),
              "monitor": lambda: monitor, "pusher": lambda: pusher, "sentinel": lambda: sentinel}[role]()
    os.kill(victim, signal.SIGKILL)
    if role == "sentinel":
        wait_for(lambda: not any(alive(pid) for pid in found), 30,
                 "the sentinel's processes to die with it")
    quick_tasks(mission, agent, 3)
    started = time.monotonic()
    mission_workflows.mission_launch(mission=mission, actor=lead)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 60, "the mission to complete")
    print(f"{role} killed: work enqueued after it ran in {time.monotonic() - started:.1f} s")
    assert list(Run.objects.filter(task__mission=mission).values_list("status", flat=True)) == [RunStatus.SUCCEEDED] * 3


def test_a_sentinel_killed_while_its_cluster_starts_is_replaced(mission, agent, lead, clusters, tmp_path):
    """django-q2's cluster start raises when its sentinel dies before it is up, which ended the command: no cluster
    ran any more. On a loaded machine the window lasts a second or more (a test killing a sentinel as soon as its
    processes were there hit it now and then). Here a running cluster's sentinel is killed, then each sentinel the
    command starts in its place as soon as it appears, until one kill lands while its cluster starts; the command
    starts yet another cluster, which runs the work."""
    (process,) = clusters(1, workers=2, GENESIS_STALL_SECONDS="2")
    log = tmp_path / "cluster-0.log"
    sentinel = sentinel_of(process)
    cluster_processes(process, 2)
    killed = [sentinel]
    os.kill(sentinel, signal.SIGKILL)  # up and running: the command starts a fresh cluster half a second later
    for _ in range(5):
        deadline = time.monotonic() + 90
        while not (found := [p for p in children(process.pid) if p not in killed]):
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.001)
        os.kill(found[0], signal.SIGKILL)
        killed.append(found[0])
        wait_for(lambda: log.read_text().count("starting a fresh cluster") >= len(killed) or process.poll() is not None,
                 30, "the command to start a fresh cluster, or to end")  # noqa: B023
        if "failed to start" in log.read_text():
            break
    assert "failed to start" in log.read_text(), "no kill landed while a sentinel started"
    time.sleep(1.0)
    assert process.poll() is None, log.read_text()  # the command goes on
    quick_tasks(mission, agent, 3)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    wait_for(lambda: mission_status(mission) == MissionStatus.COMPLETED, 90, "the mission to complete")
    assert list(Run.objects.filter(task__mission=mission).values_list("status", flat=True)) == [RunStatus.SUCCEEDED] * 3


def test_a_killed_qcluster_command_takes_its_whole_cluster_with_it(clusters):
    (process,) = clusters(1, workers=2)
    found = [sentinel_of(process), *cluster_processes(process, 2)]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    wait_for(lambda: not any(alive(pid) for pid in found), 30,
             "every process of the cluster to die with it")
