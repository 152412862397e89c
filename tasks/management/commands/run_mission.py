"""Drive a mission headless: ``manage.py run_mission MISSION --wait [--timeout S] [--answers FILE.yml]
[--auto-approve]``.

This process works as one more worker: it launches a draft mission, then claims and runs the mission's queued
runs through ``tasks.runtime.execute_run`` (the same code the cluster workers run; if clusters serve the database
too, the run ledger's claims keep every attempt to one worker) and sweeps for lost leases. It stops when the
mission ends, or waits for a person (unless ``--auto-approve``: it then approves and answers with the proposed
default as the Mission Owner), or at the timeout. It prints tasks, runs and artifacts, and exits non-zero if the
mission failed, was cancelled, or timed out.

``--workers N`` (default: the cluster's worker count, ``Q_CLUSTER["workers"]``; 1 when the queue runs in sync mode)
works on up to N ready runs at once, each in its own thread with its own database connection, as N cluster workers
would: the run ledger's claims and leases are the same, so the mapping tasks of several targets, which do not depend
on one another, run side by side. Called inside an open transaction (a test's), it works on one run at a time: other
connections could not see the transaction's runs.

``--answers FILE.yml`` maps question keys (``TARGET.COLUMN``, or ``CHILD->PARENT`` for a relationship between source
tables; a question about one part of a column, keyed ``TARGET.COLUMN.sum``, takes its own key or the column's) to
answers: ``TABLE.COLUMN``, ``{sql: "..."}``, ``TABLE_A.col = TABLE_B.col`` or ``none``. The file is read
with the strict loader. Questions are answered from it (before any default); a question it has no answer for
stops the command non-zero, printing its key and text.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count

from genesis.documents import DocumentInvalid, load_yaml
from missions.choices import MissionStatus
from missions.models import Mission
from tasks import recovery, runtime
from tasks.models import Artifact, Run, Task
from workflows import driver
from workflows.missions import mission_launch, mission_resume

# With runs in our threads and the mission's history unchanged, the loop still looks at everything this often: a
# run's retry delay passes without a change to the history.
LOOK_AGAIN_S = 0.5
ENDED = {MissionStatus.COMPLETED, MissionStatus.CLOSED, MissionStatus.FAILED, MissionStatus.CANCELLED}


class Command(BaseCommand):
    help = "Run a mission to its end (or to a decision a person must make) and print a summary."

    def add_arguments(self, parser):
        parser.add_argument("mission", help="Mission id or exact name.")
        parser.add_argument("--wait", action="store_true", help="Keep going until the mission ends or waits.")
        parser.add_argument("--timeout", type=float, default=600.0, help="Give up after this many seconds.")
        parser.add_argument("--auto-approve", action="store_true",
                            help="Approve proposals and answer questions with their default, as the Mission Owner.")
        parser.add_argument("--answers", metavar="FILE.yml",
                            help="Answer questions from this file: keys TARGET.COLUMN or CHILD->PARENT; values "
                                 "TABLE.COLUMN, {sql: ...}, TABLE_A.col = TABLE_B.col or none.")
        parser.add_argument("--workers", type=int, default=None,
                            help="Ready runs worked on at once, each in its own thread (default: the cluster's "
                                 "worker count, Q_CLUSTER workers; 1 in sync mode).")

    def handle(self, *args, **options):
        mission = self._mission(options["mission"])
        answers = self._answers(options["answers"]) if options.get("answers") else None
        used: dict[str, int] = {}
        if mission.status == MissionStatus.DRAFT:
            mission_launch(mission=mission, actor=mission.owner)
            self.stdout.write(f"Launched “{mission.name}”.")
        # The cluster's worker count; one in sync mode, where the queue runs each run inline wherever it is sent.
        cluster = settings.Q_CLUSTER
        workers = options.get("workers") or (1 if cluster.get("sync") else int(cluster.get("workers") or 1))
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        pool = (ThreadPoolExecutor(max_workers=workers, thread_name_prefix="run_mission")
                if workers > 1 and not connection.in_atomic_block else None)
        try:
            timed_out = self._drive(mission, options, answers, used, pool, workers)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        self._summary(mission)
        if timed_out:
            raise CommandError(f"Timed out after {options['timeout']:g} s; the mission is {mission.status}.")
        if mission.status in {MissionStatus.FAILED, MissionStatus.CANCELLED}:
            raise CommandError(f"The mission {mission.status}.")

    def _drive(self, mission: Mission, options: dict, answers: dict[str, str] | None, used: dict[str, int],
               pool: ThreadPoolExecutor | None, workers: int) -> bool:
        """Work the mission until it ends, waits for a person or times out (True). With a pool, each ready run is
        handed to a free thread and the loop goes on deciding and sweeping meanwhile; without, runs one by one."""
        deadline = time.monotonic() + options["timeout"]
        running: dict[int, Future] = {}
        mark, looked_at = None, 0.0
        while True:
            finished = False
            for run_id, future in list(running.items()):
                if future.done():
                    del running[run_id]
                    finished = True
                    future.result()  # a run that raised stops the command, as it does without a pool
            # Read before looking, so that a change made while we look shows next time (only while our threads work:
            # the first look after they start is a full one).
            latest = driver.change_mark(mission) if running else None
            if running and not finished and latest == mark and time.monotonic() - looked_at < LOOK_AGAIN_S:
                # Runs in our threads, none finished, the mission's history unchanged: nothing new to start or
                # decide (one query, instead of the four of a look that would find nothing).
                wait(running.values(), timeout=0.05, return_when=FIRST_COMPLETED)
                continue
            mark, looked_at = latest, time.monotonic()
            mission.refresh_from_db()
            if mission.status in ENDED and not running:
                return False
            progressed = mission.status == MissionStatus.ACTIVE and _start_ready(mission, pool, running, workers)
            if answers is not None:
                answered, missing = driver.answer_from(mission, answers, used)
                progressed |= answered > 0
                if missing and not running:
                    self._summary(mission)
                    raise CommandError("No usable answer in the answers file for: " + "; ".join(
                        driver.question_line(q) for q in missing))
            if options["auto_approve"]:
                if mission.status == MissionStatus.PAUSED and not driver.phases_blocked(mission):
                    mission_resume(mission=mission, actor=mission.owner)
                    progressed = True
                progressed |= driver.auto_decide(mission) > 0
            if not progressed:
                if running:
                    # Runs in our threads: wait for one to finish (or a moment, to decide what they asked).
                    wait(running.values(), timeout=0.05, return_when=FIRST_COMPLETED)
                    continue
                recovery.sweep()
                mission.refresh_from_db()
                waiting = mission.status == MissionStatus.PAUSED or driver.waiting_on_people(mission) \
                    or driver.phases_blocked(mission)
                live = Run.objects.filter(task__mission=mission, status__in=["queued", "running"]).exists()
                if not options["wait"] or (waiting and not live and not options["auto_approve"]):
                    return False
                if time.monotonic() > deadline:
                    return True
                time.sleep(0.05)

    def _answers(self, name: str) -> dict[str, str]:
        path = Path(name)
        if not path.is_file():
            raise CommandError(f"--answers: {name} does not exist.")
        try:
            data = load_yaml(path.read_bytes(), filename=path.name)
        except DocumentInvalid as error:
            raise CommandError(str(error)) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise CommandError(f"{path.name}: the answers file must map question keys to answers.")
        answers = {}
        for key, value in data.items():
            try:
                answers[str(key)] = driver.answers_text(value)
            except ValueError as error:
                raise CommandError(f"{path.name}: {key}: {error}") from None
        return answers

    def _mission(self, ref: str) -> Mission:
        qs = Mission.objects.filter(pk=int(ref)) if ref.isdigit() else Mission.objects.filter(name=ref)
        mission = qs.first()
        if mission is None:
            raise CommandError(f"No mission {ref!r} (give its id or exact name).")
        return mission

    def _summary(self, mission: Mission) -> None:
        out = self.stdout
        out.write(f"Mission “{mission.name}”: {mission.status}")
        tasks = Task.objects.filter(mission=mission).annotate(n_runs=Count("runs")).order_by("position", "id")
        out.write(f"{'task':<28} {'status':<18} runs")
        for task in tasks:
            out.write(f"{task.key:<28} {task.status:<18} {task.n_runs}")
        runs = Run.objects.filter(task__mission=mission).values_list("status").annotate(n=Count("id"))
        out.write("Runs: " + (", ".join(f"{n} {status}" for status, n in sorted(runs)) or "none"))
        artifacts = Artifact.objects.filter(mission=mission).select_related("task").order_by("name", "version")
        out.write(f"Artifacts: {artifacts.count()}")
        for artifact in artifacts:
            where = artifact.task.key if artifact.task else "mission"
            out.write(f"  {artifact.name} v{artifact.version} ({artifact.kind}, {artifact.size} bytes) from {where}")
        waiting = Task.objects.filter(mission=mission, status__in=["waiting_approval", "waiting_input"])
        for task in waiting:
            out.write(f"Waiting for a person: {task.key} ({task.status})")


def _start_ready(mission: Mission, pool: ThreadPoolExecutor | None, running: dict[int, Future], workers: int) -> bool:
    """Work on the mission's ready runs: each in turn here without a pool, else each not yet handed to a thread
    while one is free (but not a run a thread's recording kept for that thread to claim next). Whether any was."""
    started = False
    for run_id in driver.pending_runs(mission, kept=pool is None or not running):
        if pool is None:
            runtime.execute_run(run_id)
            started = True
        elif run_id not in running and len(running) < workers:
            running[run_id] = pool.submit(_execute_in_thread, run_id)
            started = True
    return started


def _execute_in_thread(run_id: int) -> str:
    """One run, as a worker runs it, on this thread's own database connection (closed after it)."""
    try:
        return runtime.execute_run(run_id)
    finally:
        connection.close()
