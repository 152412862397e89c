"""The worker cluster: django-q2's, supervised for the faults its own guard cannot see (``manage.py qcluster``).

django-q2's sentinel hands messages to its workers through one ``multiprocessing.Queue``. A worker waiting for work
holds that queue's read lock while it blocks on the pipe; killed there (SIGKILL, the OOM killer), it never releases
the lock, and every other worker, and each one the guard spawns in the dead one's place, waits on it forever: the
cluster looks alive and runs nothing. The same holds for the pusher killed while writing to that queue, and for the
monitor killed while reading its result queue. No broker changes this (the lock is inside the cluster, between the
pusher and the workers), and a lock orphaned in another process cannot be released safely.

So the sentinel here watches for the one state such a lock leads to: messages wait in the task queue while every
worker is idle (or results wait while the monitor does not take them), for ``GENESIS_STALL_SECONDS`` on end. A
healthy cluster never stays there longer than it takes an idle worker to read a message. Then it kills its workers,
pusher and monitor and exits, and the command starts a fresh cluster with fresh queues. The messages the old
queues held are not lost work: their runs are still ``queued`` and the sweep hands them on (``tasks.recovery``).

A worker just spawned is not idle yet: django-q2 gives it an idle timer at once, while it has still to start (on a
loaded machine that can take a while). A fresh cluster started while messages already wait (a restart after any
fault, a deploy behind a backlog) could then look stalled until its workers reach the queue, and be restarted again,
losing its messages each time. So a worker's timer says ``STARTING`` until the worker itself says it is about to
read the queue (django-q2's ``post_spawn`` signal, sent in the worker).

Every process of the cluster also dies with its parent (``PR_SET_PDEATHSIG``): a killed sentinel takes its
workers with it and the command starts a new cluster (also when the sentinel dies before it is fully up, which
django-q2 would let end the command), and a killed command takes the whole cluster with it (its process manager
starts a new one), so no orphaned half-cluster keeps taking messages nobody supervises.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import logging
import multiprocessing
import multiprocessing.queues
import os
import signal
import threading
import time
from multiprocessing import util

from django.conf import settings
from django.utils.module_loading import import_string
from django_q import cluster as q_cluster
from django_q.conf import Conf
from django_q.signals import post_spawn

logger = logging.getLogger("genesis.cluster")

STALLED_EXIT = 75  # the sentinel's exit code when it gave up a stalled cluster
_PR_SET_PDEATHSIG = 1
IDLE = -1  # a django-q2 worker's timer while it waits for work
STARTING = -3  # this cluster's worker until it reaches the queue (django-q2 uses 0, -1, -2 and seconds left)


def stall_seconds() -> float:
    return max(float(settings.GENESIS_STALL_SECONDS), 0.0)


def _die_with_parent(_=None) -> None:
    """In a freshly forked cluster process: be killed when the process that started it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: a dead sentinel's workers then linger until they are stopped
        return
    parent = multiprocessing.current_process()._parent_pid
    if parent is not None and os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _waiting(queue) -> int:
    """Messages put on a ``multiprocessing.Queue`` and not yet taken, read from its semaphore without a lock
    (django-q2's own ``qsize`` takes a shared counter's lock, which a killed process may hold)."""
    return multiprocessing.queues.Queue.qsize(queue)


def worker_ready(sender=None, proc_name=None, **kwargs) -> None:
    """django-q2's ``post_spawn`` receiver, in a worker about to read the task queue: from now on it is idle."""
    timer = getattr(multiprocessing.current_process(), "timer", None)
    if timer is not None and timer.value == STARTING:
        timer.value = IDLE


class Cluster(q_cluster.Cluster):
    """django-q2's cluster; remembers that it was told to stop, so a sentinel dying then is not restarted."""

    stopping = False

    def sig_handler(self, signum, frame):
        Cluster.stopping = True
        super().sig_handler(signum, frame)


class Sentinel(q_cluster.Sentinel):
    """django-q2's sentinel with a watchdog thread for a cluster whose queues are locked by a dead process."""

    def spawn_worker(self):
        self.spawn_process(q_cluster.worker, self.task_queue, self.result_queue, multiprocessing.Value("f", STARTING),
                           self.timeout)

    def guard(self):
        # Without a timeout a busy worker's timer reads as idle (-1) too: the watchdog could not tell them apart.
        if stall_seconds() > 0 and Conf.TIMEOUT is not None:
            threading.Thread(target=self._watch, name="genesis-stall-watch", daemon=True).start()
        super().guard()

    def stalled(self) -> str:
        """Why the cluster cannot make progress right now, or ``""``. Only a cluster whose every worker is idle can
        be stalled, so giving it up never stops work in progress. Reads take none of the cluster's locks (any of them
        may be the one a dead process holds): a queue's size is its semaphore's value, a timer its raw value."""
        timers = [getattr(p, "timer", None) for p in list(self.pool)]
        if not timers or not all(t is not None and t.get_obj().value == IDLE for t in timers):
            return ""
        waiting = _waiting(self.task_queue)
        if waiting > 0:
            return f"{waiting} messages wait while all {len(timers)} workers are idle"
        results = _waiting(self.result_queue)
        if results > 0:
            return f"{results} results wait for the monitor while all {len(timers)} workers are idle"
        return ""

    def _watch(self) -> None:
        since = None
        cycle = min(float(Conf.GUARD_CYCLE), max(stall_seconds() / 4, 0.05))
        while not self.stop_event.wait(cycle):
            try:
                why = self.stalled()
            except Exception:
                logger.exception("the stall watchdog could not read the cluster's queues")
                continue
            if not why or (self.start_event is not None and not self.start_event.is_set()):
                since = None
                continue
            since = since if since is not None else time.monotonic()
            if time.monotonic() - since >= stall_seconds():
                self._give_up(why=why, stalled=time.monotonic() - since)
                return

    def _give_up(self, *, why: str, stalled: float) -> None:
        """Kill every process of this cluster and exit: ``manage.py qcluster`` starts a fresh one."""
        if self.stop_event.is_set():
            return  # stopping anyway
        logger.critical("cluster stalled for %.1f s (%s): a dead process holds one of its queue locks; "
                        "restarting the cluster", stalled, why)
        for process in [*list(self.pool), self.pusher, self.monitor]:
            if process is not None and process.pid:
                try:
                    os.kill(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        logging.shutdown()
        os._exit(STALLED_EXIT)


def _call(path: str) -> None:
    import_string(path)()


def preload(modules: list[str] | None = None, warmups: list[str] | None = None) -> dict[str, float]:
    """Import the modules a run would otherwise import on first use (``GENESIS_WORKER_PRELOAD``), then call the
    warm-ups (``GENESIS_WORKER_WARMUP``, dotted paths of functions: work every run would otherwise repeat, such as
    parsing dbt's templates), in the command's process, before the cluster forks: its sentinel and every worker, the
    ones the guard spawns later included, start with them. Seconds per module and warm-up; one that fails is logged
    and left to the runs that need it, which report it (the initialize step names a missing dbt adapter)."""
    modules = settings.GENESIS_WORKER_PRELOAD if modules is None else modules
    warmups = settings.GENESIS_WORKER_WARMUP if warmups is None else warmups
    steps = [(name, "preloading", functools.partial(importlib.import_module, name)) for name in modules]
    steps += [(name, "warming up with", functools.partial(_call, name)) for name in warmups]
    seconds = {}
    for name, doing, step in steps:
        started = time.monotonic()
        try:
            step()
        except Exception as error:  # noqa: BLE001 - a worker without dbt (or its warm-up) still runs everything else
            logger.warning("%s %s failed: %s", doing, name, error)
            continue
        seconds[name] = time.monotonic() - started
    if seconds:
        logger.info("preloaded %s in %.1f s", ", ".join(seconds), sum(seconds.values()))
    return seconds


def run(*, run_once: bool = False) -> None:
    """Run a supervised cluster until it is told to stop (SIGTERM, SIGINT); start a fresh one whenever its sentinel
    dies on its own (a stall it gave up, or a kill)."""
    preload()
    util.register_after_fork(_die_with_parent, _die_with_parent)
    post_spawn.connect(worker_ready, dispatch_uid="genesis-worker-ready")
    q_cluster.Sentinel = Sentinel  # django-q2's Cluster starts the sentinel class named in its module
    restarts = 0
    while True:
        if Cluster.stopping:
            return
        cluster = Cluster()
        try:
            cluster.start()
        except RuntimeError as error:
            # django-q2's start raises when the sentinel dies before it is up (killed while starting, on a loaded
            # machine a window of a second or more): that is one more dead sentinel to replace, not the command's end.
            if Cluster.stopping:
                return
            restarts += 1
            logger.critical("%s; starting a fresh cluster (restart %d)", error, restarts)
            time.sleep(min(0.5 * restarts, 5.0))
            continue
        if run_once:
            cluster.stop()
            return
        sentinel = cluster.sentinel
        while sentinel.is_alive():
            sentinel.join(1.0)
        if Cluster.stopping or sentinel.exitcode == 0:
            return
        restarts += 1
        logger.critical("the cluster's sentinel exited with %s; starting a fresh cluster (restart %d)",
                        sentinel.exitcode, restarts)
        time.sleep(min(0.5 * restarts, 5.0))
