"""Cockpit render time: the median of N renders of a mission's cockpit (full page, as its Mission Owner and as a
stakeholder) and of the live poller's full answer, with their query counts, on a throw-away test database (SQLite by
default; PostgreSQL with DATABASE_URL).

    python -m bench.cockpit [--tasks 500] [--runs 30] [--demo] [--profile] [--write]

The mission is a synthetic one of ``--tasks`` tasks, or with ``--demo`` the healthcare demo's mission (2,000 claims)
run headless until it waits for its three mapping approvals. Each figure is taken twice in the same process,
alternating: with the cockpit's panel cache on (renders after the first are served from it while the mission does
not change) and off (every render builds every panel), so the ratio between them does not depend on the machine's
load. ``--profile`` prints where an uncached render spends its time (cProfile, cumulative). ``--write`` replaces the
"Cockpit render" section of docs/benchmarks.md with the figures. Goal: median <= 300 ms for a 500-task mission.
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
    parser.add_argument("--demo", action="store_true", help="the healthcare demo's mission instead of a synthetic one")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of uncached renders")
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
        mission, people = _demo_mission() if args.demo else _synthetic_mission(args.tasks)
        if args.profile:
            _profile(mission, people)
            return 0
        figures = _measure(mission, people, args.runs, connection)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    figures.update(database=engine, load=load, load_after=os.getloadavg()[0], demo=args.demo)
    report = _report(figures)
    print(report)
    if args.write:
        _write(report)
    return 0 if figures["median_ms"] <= 300 else 1


def _synthetic_mission(tasks: int):
    from datetime import timedelta

    from django.utils import timezone

    from agents.models import Agent
    from history.services import history_record
    from missions.services import membership_set, mission_create
    from tasks.models import Dependency, Phase, Run, Task
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
    began = timezone.now() - timedelta(hours=6)
    run_status = {"done": "succeeded", "running": "running", "waiting_approval": "waiting", "failed": "failed"}
    Run.objects.bulk_create([
        Run(task=t, attempt=1, status=run_status[t.status], started_at=began + timedelta(seconds=20 * i),
            finished_at=None if t.status == "running" else began + timedelta(seconds=20 * i + 5 + i % 13),
            log="line\n" * 40 if t.status == "running" else "")
        for i, t in enumerate(created) if t.status in run_status])
    for i in range(60):
        history_record(mission=mission, event="note.added", actor=lead, message=f"note {i}")
    return mission, {"Mission Owner": lead, "stakeholder": viewer}


def _demo_mission():
    """The healthcare demo's mission (2,000 claims), run headless until it waits for people."""
    import io
    import tempfile

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from missions.models import Mission

    folder = tempfile.mkdtemp(prefix="bench-cockpit-demo-")
    call_command("load_demo", claims=2000, dir=folder, launch=True, stdout=io.StringIO())
    mission = Mission.objects.get(name="Healthcare Data Pipeline (demo)")
    call_command("run_mission", str(mission.pk), wait=True, timeout=600, stdout=io.StringIO())
    mission.refresh_from_db()
    users = get_user_model().objects
    return mission, {"Mission Owner": users.get(username="demo_owner"),
                     "stakeholder": users.get(username="demo_stakeholder")}


def _timed(client, url, runs: int, **headers) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, **headers)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return times


def _measure(mission, people: dict, runs: int, connection) -> dict:
    import gc

    from django.test import Client, override_settings
    from django.urls import reverse

    from tasks.models import Task

    # As genesis/wsgi.py does once the application is loaded: start-up objects leave the collector's sight.
    gc.collect()
    gc.freeze()
    results = {}
    url = reverse("missions:cockpit", args=[mission.pk])
    live = reverse("missions:live", args=[mission.pk]) + "?since="
    for who, user in people.items():
        client = Client()
        client.force_login(user)
        client.get(url)  # warm up (template loading)
        figures: dict[str, dict] = {"on": {}, "off": {}}
        for mode in ("off", "on", "off", "on"):  # alternating, so load drifts affect both alike
            seconds = 60 if mode == "on" else 0
            with override_settings(GENESIS_COCKPIT_CACHE_SECONDS=seconds):
                for name, target, headers in (("page", url, {}), ("live", live, {"HTTP_HX_REQUEST": "true"}),
                                              ("board", url, {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "board"})):
                    figures[mode].setdefault(name, []).extend(_timed(client, target, runs // 2, **headers))
        for mode in ("off", "on"):
            queries: list[str] = []

            def count(execute, sql, *rest, seen=queries):
                seen.append(sql)
                return execute(sql, *rest)

            with override_settings(GENESIS_COCKPIT_CACHE_SECONDS=60 if mode == "on" else 0):
                client.get(url)
                with connection.execute_wrapper(count):
                    size = len(client.get(url).content)
            figures[mode]["queries"] = len(queries)
            figures[mode]["size"] = size
        # After a change: a history entry is written before every render, so each render with the cache on finds
        # its panels out of date (the worst case: a mission that changes faster than people look).
        from history.services import history_record

        task = Task.objects.filter(mission=mission).order_by("id").first()
        changed = []
        with override_settings(GENESIS_COCKPIT_CACHE_SECONDS=60):
            for i in range(max(runs // 3, 3)):
                history_record(mission=mission, task=task, event="note.added", actor=user, message=f"bench {i}")
                changed += _timed(client, url, 1)
        results[who] = {
            mode: {name: statistics.median(figures[mode][name]) for name in ("page", "live", "board")}
            | {"p90": sorted(figures[mode]["page"])[int(len(figures[mode]["page"]) * 0.9) - 1],
               "queries": figures[mode]["queries"], "size": figures[mode]["size"]}
            for mode in ("off", "on")
        }
        results[who]["changed"] = statistics.median(changed)
    owner = results["Mission Owner"]
    return {"tasks": Task.objects.filter(mission=mission).count(), "runs": runs, "median_ms": owner["on"]["page"],
            "results": results}


def _profile(mission, people: dict) -> None:
    import cProfile
    import pstats

    from django.test import Client, override_settings
    from django.urls import reverse

    url = reverse("missions:cockpit", args=[mission.pk])
    for who, user in people.items():
        client = Client()
        client.force_login(user)
        client.get(url)
        with override_settings(GENESIS_COCKPIT_CACHE_SECONDS=0):
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(10):
                client.get(url)
            profiler.disable()
        print(f"=== {who}: 10 uncached renders of {url}")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def _report(figures: dict) -> str:
    what = ("the healthcare demo's mission (2,000 claims, run headless until it waits for its three mapping "
            f"approvals: {figures['tasks']} tasks)" if figures["demo"] else
            f"a mission of {figures['tasks']} tasks (5 phases, {figures['tasks'] - 1} dependencies, mixed statuses, "
            "a run for every task that started)")
    lines = [
        "## Cockpit render (`python -m bench.cockpit`)" + (" — demo mission (`--demo`)" if figures["demo"] else ""),
        "",
        f"{what[0].upper()}{what[1:]}, rendered through Django's test client on {figures['database']}, "
        f"{figures['runs']} times per figure, cache off and on alternating in one process; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {figures['load']:.1f} at the start and "
        f"{figures['load_after']:.1f} at the end (other work on the machine slows every figure alike). "
        "Goal: median ≤ 300 ms.",
        "",
        "| viewer | panel cache | full page median | full page p90 | live poller (every panel) | board fragment "
        "| queries (page) | HTML |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for who, r in figures["results"].items():
        for mode, label in (("off", "off (every panel built)"), ("on", "on, nothing changed")):
            f = r[mode]
            lines.append(f"| {who} | {label} | {f['page']:.0f} ms | {f['p90']:.0f} ms | {f['live']:.0f} ms | "
                         f"{f['board']:.0f} ms | {f['queries']} | {f['size'] / 1024:.0f} KB |")
        lines.append(f"| {who} | on, a history entry before each render | {r['changed']:.0f} ms | | | | | |")
    ratios = ", ".join(f"{who} {r['off']['page'] / r['on']['page']:.1f}×" for who, r in figures["results"].items())
    lines += ["", f"Full page, cache off ÷ cache on (same run): {ratios}."]
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
