"""Cockpit render time: the median of N renders of a 500-task mission's cockpit (full page, as its Mission Owner),
and its query count, on a throw-away test database (SQLite by default; PostgreSQL with DATABASE_URL).

    python -m bench.cockpit [--tasks 500] [--runs 30] [--write]

``--write`` replaces the "Cockpit render" section of docs/benchmarks.md with the figures. Goal: median <= 300 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SECTION_START = "<!-- bench.cockpit: start -->"
SECTION_END = "<!-- bench.cockpit: end -->"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genesis.settings_test")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    load = os.getloadavg()[0]
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        figures = _measure(args.tasks, args.runs, connection)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    figures["database"] = engine
    figures["load"] = load
    report = _report(figures)
    print(report)
    if args.write:
        _write(report)
    return 0 if figures["median_ms"] <= 300 else 1


def _measure(tasks: int, runs: int, connection) -> dict:
    from django.test import Client
    from django.urls import reverse

    from agents.models import Agent
    from history.services import history_record
    from missions.services import membership_set, mission_create
    from tasks.models import Dependency, Phase, Task
    from tests.factories import UserFactory

    lead = UserFactory(username="bench-lead")
    viewer = UserFactory(username="bench-viewer")
    agent = Agent.objects.create(name="BenchAgent", kind="noop")
    mission = mission_create(name="Bench mission", owner=lead,
                             objective="A 500-task mission renders its cockpit fast enough to watch live.")
    membership_set(mission=mission, user=viewer, role="stakeholder", actor=lead)
    phases = Phase.objects.bulk_create([Phase(mission=mission, order=i + 1, name=f"Phase {i + 1}") for i in range(5)])
    statuses = ["done", "done", "running", "ready", "pending", "waiting_approval", "failed", "pending"]
    rows = [Task(mission=mission, key=f"t{i:04d}", title=f"Task number {i}", position=i, owner_agent=agent,
                 phase=phases[i * 5 // tasks], status=statuses[i % len(statuses)]) for i in range(tasks)]
    created = Task.objects.bulk_create(rows)
    Dependency.objects.bulk_create([Dependency(task=created[i], depends_on=created[i // 2]) for i in range(1, tasks)])
    # Every task that has started has a run (the graph shows run times and the critical path from them).
    from datetime import timedelta

    from django.utils import timezone

    from tasks.models import Run

    began = timezone.now() - timedelta(hours=6)
    run_status = {"done": "succeeded", "running": "running", "waiting_approval": "waiting", "failed": "failed"}
    Run.objects.bulk_create([
        Run(task=t, attempt=1, status=run_status[t.status], started_at=began + timedelta(seconds=20 * i),
            finished_at=None if t.status == "running" else began + timedelta(seconds=20 * i + 5 + i % 13),
            log="line\n" * 40 if t.status == "running" else "")
        for i, t in enumerate(created) if t.status in run_status])
    for i in range(60):
        history_record(mission=mission, event="note.added", actor=lead, message=f"note {i}")

    import gc

    # As genesis/wsgi.py does once the application is loaded: start-up objects leave the collector's sight.
    gc.collect()
    gc.freeze()
    results = {}
    for who, user in (("Mission Owner", lead), ("stakeholder", viewer)):
        client = Client()
        client.force_login(user)
        url = reverse("missions:cockpit", args=[mission.pk])
        client.get(url)  # warm up (template loading)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        queries: list[str] = []

        def count(execute, sql, *rest, seen=queries):
            seen.append(sql)
            return execute(sql, *rest)

        with connection.execute_wrapper(count):
            client.get(url)
        board = []
        for _ in range(runs):
            start = time.perf_counter()
            client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="board")
            board.append((time.perf_counter() - start) * 1000)
        results[who] = {"median": statistics.median(times), "p90": sorted(times)[int(len(times) * 0.9) - 1],
                        "queries": len(queries), "board": statistics.median(board)}
    owner = results["Mission Owner"]
    return {"tasks": tasks, "runs": runs, "median_ms": owner["median"], "results": results}


def _report(figures: dict) -> str:
    lines = [
        "## Cockpit render (`python -m bench.cockpit`)",
        "",
        f"A mission of {figures['tasks']} tasks (5 phases, {figures['tasks'] - 1} dependencies, mixed statuses, "
        "a run for every task that started), its "
        f"cockpit rendered {figures['runs']} times through Django's test client on {figures['database']}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average {figures['load']:.1f} when it "
        "started (other work on the machine slows it). Goal: median ≤ 300 ms.",
        "",
        "| viewer | full page median | full page p90 | queries | board fragment median |",
        "|---|---|---|---|---|",
    ]
    for who, r in figures["results"].items():
        lines.append(f"| {who} | {r['median']:.0f} ms | {r['p90']:.0f} ms | {r['queries']} | {r['board']:.0f} ms |")
    return "\n".join(lines)


def _write(report: str) -> None:
    path = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{SECTION_START}\n{report}\n{SECTION_END}"
    if SECTION_START in text and SECTION_END in text:
        before, rest = text.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"Wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
