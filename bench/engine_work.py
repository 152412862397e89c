"""The work of the engine's in-process path, counted rather than timed: ``python bench/engine_work.py OUT.json``.

Timings of one task's path (a few ms) move by tens of percent with the machine's load; the number of Python calls
and the SQL it runs do not. This runs the driver behind ``bench.engine``'s "ms per task in-process" (a chain of
``noop`` tasks on a fresh SQLite database: the launch apart, then ``execute_run`` for each pending run, after a
warm-up chain of 10) and writes per task: the Python calls cProfile counts (C functions included) by function, the
calls in other threads (the lease thread), the queries and their SQL with numbers blanked (recorded on a chain of
their own). Run it from the root of the checkout to measure (it imports that checkout's code), e.g. an old
commit's worktree:

    cd /work/wt/before && .venv/bin/python /path/to/bench/engine_work.py before.json [--tasks 50] [--time 5]

``--time R`` adds R timed chains (wall and CPU ms per task), as secondary evidence.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import pstats
import re
import sys
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--time", type=int, default=0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="genesis-engine-work-"))
    os.environ.update({"DJANGO_SETTINGS_MODULE": "genesis.settings", "GENESIS_VAR_DIR": str(tmp),
                       "LOG_LEVEL": "WARNING", "DB_CONN_MAX_AGE": "600", "DEBUG": "1",
                       "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}"})
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, os.getcwd())
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django_q.conf import Conf

    from agents.models import Agent
    from missions.choices import MissionMode
    from missions.services import mission_create
    from tasks.models import Dependency, Task

    try:
        from tasks import runtime
        from workflows import driver
        from workflows import missions as mission_workflows

        launch, pending_runs, execute_run = mission_workflows.mission_launch, driver.pending_runs, runtime.execute_run
    except ImportError:  # a checkout from before the engine was split
        from tasks import engine

        launch, pending_runs, execute_run = engine.mission_start, engine.pending_runs, engine.execute_run

    call_command("migrate", verbosity=0)
    Conf.SYNC = False
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"email": "bench@example.com"})
    agent, _ = Agent.objects.get_or_create(name="BenchNoop", defaults={"kind": "noop"})
    n = args.tasks

    def make(name: str, size: int):
        mission = mission_create(name=name, objective="benchmark", owner=user, mode=MissionMode.CONTINUOUS)
        tasks = [Task(mission=mission, key=f"t{i}", title=f"t{i}", owner_agent=agent, position=i) for i in range(size)]
        Task.objects.bulk_create(tasks)
        Dependency.objects.bulk_create([Dependency(task=tasks[i + 1], depends_on=tasks[i]) for i in range(size - 1)])
        return mission

    def run_chain(mission, *, around_launch=None, around_runs=None, sqls=None) -> dict[str, float]:
        counted = [0]

        def record(execute, sql, params, many, context):
            counted[0] += 1
            if sqls is not None:
                sqls.append(re.sub(r"\d+", "N", sql))
            return execute(sql, params, many, context)

        started = time.perf_counter()
        if around_launch:
            around_launch.enable()
        launch(mission=mission, actor=user)
        if around_launch:
            around_launch.disable()
        launch_ms = 1000 * (time.perf_counter() - started)
        wall = cpu = 0.0
        while pending := pending_runs(mission):
            with connection.execute_wrapper(record):
                if around_runs:
                    around_runs.enable()
                w, c = time.perf_counter(), time.process_time()
                for run_id in pending:
                    execute_run(run_id)
                wall, cpu = wall + time.perf_counter() - w, cpu + time.process_time() - c
                if around_runs:
                    around_runs.disable()
        return {"launch_ms": launch_ms, "ms_per_task": 1000 * wall / n, "cpu_ms_per_task": 1000 * cpu / n,
                "queries_per_task": counted[0] / n}

    run_chain(make("warm-up", 10))
    launch_profile, runs_profile = cProfile.Profile(), cProfile.Profile()
    counted = run_chain(make("counted", n), around_launch=launch_profile, around_runs=runs_profile)
    sqls: list[str] = []
    run_chain(make("its SQL", n), sqls=sqls)  # apart, so that recording it adds no calls to the count
    result: dict = {"tasks": n, "queries_per_task": counted["queries_per_task"],
                    "sql": dict(collections.Counter(sqls).most_common())}
    for part, profile in (("launch", launch_profile), ("runs", runs_profile)):
        stats = pstats.Stats(profile)
        by_function: collections.Counter[str] = collections.Counter()
        for (file, _line, function), (_cc, calls, *_rest) in stats.stats.items():  # type: ignore[attr-defined]
            where = file.replace(os.getcwd(), ".") if not file.startswith("~") else ""
            by_function[re.sub(r" at 0x[0-9a-f]+", "", f"{where}:{function}")] += calls
        result[part] = {"calls": stats.total_calls, "by_function": dict(by_function.most_common())}  # type: ignore[attr-defined]

    # Calls in every thread (the lease thread's too), counted by a profile hook rather than cProfile.
    events: collections.Counter[str] = collections.Counter()

    def hook(_frame, event, _arg):
        if event == "call":
            events["main" if threading.current_thread() is threading.main_thread() else "other threads"] += 1

    mission = make("threads", n)
    launch(mission=mission, actor=user)
    while pending := pending_runs(mission):
        threading.setprofile(hook)
        sys.setprofile(hook)
        for run_id in pending:
            execute_run(run_id)
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    result["python_calls_per_task_by_thread"] = {k: v / n for k, v in events.items()}
    result["timed"] = [run_chain(make(f"timed {i}", n)) for i in range(args.time)]
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({"queries_per_task": result["queries_per_task"],
                      "calls_per_task": result["runs"]["calls"] / n, "launch_calls": result["launch"]["calls"],
                      "by_thread": result["python_calls_per_task_by_thread"], "timed": result["timed"]}, indent=1))


if __name__ == "__main__":
    main()
