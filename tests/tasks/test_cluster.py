"""The watchdog's reading of a cluster (tasks/cluster.py), on queues and timers made here: when a cluster counts as
stalled, and that the reading never waits on a lock a dead process may hold. The real clusters, killed process by
process, are in test_worker_faults.py."""

import multiprocessing
import threading
import time
from types import SimpleNamespace

from django_q.queues import Queue

from tasks import cluster


def sentinel(*timers: float, messages: int = 0, results: int = 0) -> cluster.Sentinel:
    watched = cluster.Sentinel.__new__(cluster.Sentinel)  # its queues and pool only: no processes are started
    watched.pool = [SimpleNamespace(timer=multiprocessing.Value("f", value)) for value in timers]
    watched.task_queue, watched.result_queue = Queue(), Queue()
    for _ in range(messages):
        watched.task_queue.put({"func": "x"})
    for _ in range(results):
        watched.result_queue.put({"func": "x"})
    return watched


def test_messages_waiting_while_every_worker_is_idle_is_a_stall():
    assert "2 messages wait while all 2 workers are idle" in sentinel(cluster.IDLE, cluster.IDLE, messages=2).stalled()


def test_results_waiting_while_every_worker_is_idle_is_a_stall():
    assert "results wait for the monitor" in sentinel(cluster.IDLE, results=1).stalled()


def test_a_busy_worker_or_an_empty_queue_is_no_stall():
    assert sentinel(cluster.IDLE, 3663.0, messages=2).stalled() == ""  # waits for the busy one: normal
    assert sentinel(cluster.IDLE, cluster.IDLE).stalled() == ""
    assert sentinel(3663.0, results=1).stalled() == ""  # giving up would stop work in progress


def test_the_reading_takes_none_of_the_locks_a_dead_process_may_hold():
    watched = sentinel(cluster.IDLE, cluster.IDLE, messages=1)
    held = [watched.task_queue._rlock, watched.task_queue.size.count.get_lock(),
            *(p.timer.get_lock() for p in watched.pool)]
    for lock in held:  # as a process killed holding them would leave them
        lock.acquire()
    answer: list[str] = []
    reader = threading.Thread(target=lambda: answer.append(watched.stalled()), daemon=True)
    reader.start()
    reader.join(5)
    for lock in held:
        lock.release()
    assert answer and "1 messages wait" in answer[0]


def test_a_stall_is_given_up_only_after_the_stall_time(settings, monkeypatch):
    settings.GENESIS_STALL_SECONDS = 0.3
    watched = sentinel(cluster.IDLE, messages=1)
    watched.stop_event, watched.start_event = threading.Event(), threading.Event()
    watched.start_event.set()
    given_up: list[float] = []
    monkeypatch.setattr(cluster.Sentinel, "_give_up", lambda self, why, stalled: given_up.append(stalled))
    started = time.monotonic()
    watcher = threading.Thread(target=watched._watch, daemon=True)
    watcher.start()
    watcher.join(5)
    assert given_up and given_up[0] >= 0.3 and time.monotonic() - started >= 0.3


def test_the_sweep_asks_the_broker_configured_with_a_redis_dict(monkeypatch):
    """django-q2 accepts Redis settings as a dict: the broker the sweep asks is still found (one per process)."""
    from django_q.conf import Conf

    from tasks import queue

    class Broker:
        def queue_size(self):
            return 3

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "REDIS", {"host": "127.0.0.1", "port": 6379})
    monkeypatch.setattr("django_q.brokers.get_broker", lambda: Broker())
    monkeypatch.setattr(queue, "_brokers", {})
    assert queue.messages_waiting() == 3
    assert queue.messages_waiting() == 3 and len(queue._brokers) == 1


def test_a_worker_still_starting_is_not_idle():
    """A fresh cluster whose workers have not reached the queue yet, with messages already waiting (a restart behind a
    backlog), is starting, not stalled."""
    assert sentinel(cluster.STARTING, cluster.IDLE, messages=2).stalled() == ""
    assert sentinel(cluster.STARTING, cluster.STARTING, messages=2).stalled() == ""


def test_a_spawned_worker_reads_as_starting_until_it_says_it_reads_the_queue():
    """A real worker process spawned by the sentinel: its timer says STARTING until django-q2's ``post_spawn``, sent
    in the worker right before it reads the queue, makes it idle."""
    from django_q.signals import post_spawn

    spawner = cluster.Sentinel.__new__(cluster.Sentinel)
    spawner.pool, spawner.timeout = [], None
    spawner.task_queue, spawner.result_queue = Queue(), Queue()
    post_spawn.connect(cluster.worker_ready, dispatch_uid="genesis-worker-ready")
    try:
        spawner.spawn_worker()
    finally:
        post_spawn.disconnect(dispatch_uid="genesis-worker-ready")
    (process,) = spawner.pool
    try:
        assert process.timer.value in {cluster.STARTING, cluster.IDLE}
        deadline = time.monotonic() + 30
        while process.timer.value != cluster.IDLE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.timer.value == cluster.IDLE
    finally:
        spawner.task_queue.put("STOP")
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
    assert process.exitcode == 0


WARMED: list[str] = []


def warm_once() -> None:
    WARMED.append("warmed")


def warm_badly() -> None:
    raise RuntimeError("no template today")


def test_preload_imports_the_modules_and_logs_those_it_cannot(caplog, settings):
    import sys

    settings.GENESIS_WORKER_PRELOAD = ["colorsys", "no_such_module_here"]
    settings.GENESIS_WORKER_WARMUP = []
    sys.modules.pop("colorsys", None)
    with caplog.at_level("INFO", logger="genesis.cluster"):
        seconds = cluster.preload()
    assert list(seconds) == ["colorsys"] and "colorsys" in sys.modules
    assert "preloading no_such_module_here failed: No module named 'no_such_module_here'" in caplog.text
    assert cluster.preload([]) == {}


def test_preload_calls_the_warm_ups_after_the_imports_and_logs_those_that_fail(caplog, settings):
    settings.GENESIS_WORKER_WARMUP = [f"{__name__}.warm_badly", f"{__name__}.warm_once", "no_such_module.warm"]
    WARMED.clear()
    with caplog.at_level("INFO", logger="genesis.cluster"):
        seconds = cluster.preload(["colorsys"])
    assert list(seconds) == ["colorsys", f"{__name__}.warm_once"] and WARMED == ["warmed"]
    assert f"warming up with {__name__}.warm_badly failed: no template today" in caplog.text
    assert "warming up with no_such_module.warm failed" in caplog.text

