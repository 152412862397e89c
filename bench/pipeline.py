"""The Healthcare Data Pipeline mission end to end, headless, at several sizes and on SQLite, DuckDB or PostgreSQL:
per size and target, the mission against `dbt build` of the same generated project alone on the same target, in one
run; the SQL the steps run (measured separately) and the platform's overhead beyond it; the worker's peak RSS.

    python -m bench.pipeline                                   # 20k claims on SQLite, then writes docs/benchmarks.md
    python -m bench.pipeline --claims 100000 1000000 --target duckdb
    python -m bench.pipeline --claims 1000000 --target sqlite duckdb postgres
    python -m bench.pipeline --claims 100000 --repeat 3 --no-write  # three runs per size: medians and each run

The mission runs as a person would run it: `manage.py load_demo --engine E --launch` (in its own process, so that
the generator's rows are not counted in the worker's memory), then `run_mission --auto-approve --wait` in the
measuring process, which is the worker: it has started as `manage.py qcluster` starts one, with dbt and its adapters
imported before any run (``GENESIS_WORKER_PRELOAD``) and its warm-up done (``GENESIS_WORKER_WARMUP``: each adapter's
dbt template parsed, a small project built); the seconds are reported, not counted in the mission. On
PostgreSQL a CHECKPOINT before the mission and before `dbt build` alone writes out what the previous phase left
dirty, so neither pays for the other's writes. What is measured:
- SQL: the time inside the connectors' one execution point (every query of profiling, mapping dry runs, checks,
  validation, verification) plus each node's execute interval as dbt reports it (its ``timing`` named "execute", for
  every node it runs: build, tests, backfill), counted in this process by wrapping those two functions; nothing in
  the platform is changed for the bench.
- Platform overhead: the mission's wall time minus the wall time during which some of that SQL ran (the engine, the
  agents' Python, dbt's own work beyond its nodes' execution, the platform's database, artifacts).
- dbt overhead beyond nodes, per invocation: the dbt command's wall time minus the wall time during which some node
  was executing (the union of the nodes' execute intervals: dbt's threads run nodes side by side, so their summed
  seconds can exceed the wall time).
- Peak RSS: the measuring process's ``ru_maxrss`` (it ran migrate and the whole mission, dbt included: dbt runs in
  process).
- `dbt build` alone: the project the mission generated, built again from the command line, cold (`dbt build`), on
  the same target.

Each size and target runs in its own process with its own scratch var directory and platform database (SQLite); on
PostgreSQL the demo goes into a database created for the run (``--pg-server``) and dropped after it. With
``--repeat N`` each size and target is measured N times that way (a fresh process and a freshly loaded demo each
time); the report gives every run and the medians (mission, dbt build alone, their ratio as the median of the runs'
ratios, overhead and its share), the highest peak RSS, and the step table of the median run (the run whose ratio is
the median; the lower of the two middle ones when N is even).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
TARGETS = {"sqlite": "sqlite", "duckdb": "duckdb", "postgres": "postgresql"}
DEFAULT_PG_SERVER = "postgres://postgres@127.0.0.1:5432"


def markers(target: str) -> tuple[str, str]:
    return f"<!-- pipeline-bench:{target}:start -->", f"<!-- pipeline-bench:{target}:end -->"


def span_union(spans) -> float:
    """Seconds covered by at least one of the (start, end) intervals: overlapping ones count once."""
    total, reach = 0.0, float("-inf")
    for began, ended in sorted(spans):
        if ended > reach:
            total += ended - max(began, reach)
            reach = ended
    return total


def clip(spans, start: float, end: float) -> list[tuple[float, float]]:
    """The intervals cut to [start, end]; those wholly outside dropped."""
    return [(max(began, start), min(ended, end)) for began, ended in spans if ended >= start and began <= end]


def dbt_node_spans(invocation) -> list[tuple[float, float]]:
    """When the invocation's nodes executed (Unix time), cut to the dbt command's own wall time."""
    spans = [n.execute_span for n in invocation.nodes if n.execute_span is not None]
    if invocation.dbt_started_at is None or invocation.dbt_completed_at is None:
        return spans
    return clip(spans, invocation.dbt_started_at, invocation.dbt_completed_at)


class SqlMeter:
    """Time spent in SQL, per call, with when it ran (wall clock): the connectors' ``_execute`` and each dbt node's
    execute interval. Installed by wrapping, in the measuring process only."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, str]] = []  # (start, seconds, kind)
        self.queries: list[tuple[float, str]] = []  # (seconds, the connector query's text)
        self.dbt_invocations: list[dict] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        from agents.connectors.duckdb import DuckDBAdapter
        from agents.connectors.postgresql import PostgreSQLAdapter
        from agents.connectors.sqlite import SQLiteAdapter
        from pipeline.dbt import runner

        meter = self
        for cls in (SQLiteAdapter, PostgreSQLAdapter, DuckDBAdapter):
            original = cls._execute

            def timed(self, sql, *, limit, timeout, _original=original):
                started, clock = time.time(), time.monotonic()
                try:
                    return _original(self, sql, limit=limit, timeout=timeout)
                finally:
                    seconds = time.monotonic() - clock
                    meter._add(started, seconds, "query")
                    with meter._lock:
                        meter.queries.append((seconds, sql))

            cls._execute = timed

        original_invoke = runner.invoke

        def invoke(*args, **kwargs):
            clock = time.monotonic()
            invocation = original_invoke(*args, **kwargs)
            meter.record_dbt(invocation, wall_s=time.monotonic() - clock)
            return invocation

        runner.invoke = invoke

    def record_dbt(self, invocation, *, wall_s: float) -> None:
        """One dbt invocation: each node's execute interval as an SQL call, and the invocation's time beyond the
        wall time during which some node was executing."""
        spans = dbt_node_spans(invocation)
        for began, ended in spans:
            self._add(began, ended - began, "dbt")
        busy = span_union(spans)
        # The spans are cut to the command's wall-clock window, so measured on that window the time beyond them
        # cannot come out negative (dbt_elapsed, on the monotonic clock, is the same length to the microsecond).
        if invocation.dbt_started_at is not None and invocation.dbt_completed_at is not None:
            window = invocation.dbt_completed_at - invocation.dbt_started_at
        else:
            window = invocation.dbt_elapsed
        with self._lock:
            self.dbt_invocations.append({
                "command": invocation.command, "wall_s": wall_s,
                "parse_s": invocation.parse_elapsed, "dbt_s": invocation.dbt_elapsed,
                "sql_s": sum(ended - began for began, ended in spans), "nodes_busy_s": busy,
                "node_execution_s": sum(n.execution_time or 0.0 for n in invocation.nodes),
                "beyond_nodes_s": window - busy})

    def _add(self, started: float, seconds: float, kind: str) -> None:
        with self._lock:
            self.calls.append((started, seconds, kind))

    def slowest(self, count: int = 8) -> list[dict]:
        """The slowest connector queries, one line each (whitespace folded, cut at 160 characters)."""
        with self._lock:
            top = sorted(self.queries, key=lambda q: q[0], reverse=True)[:count]
        return [{"seconds": round(seconds, 3), "sql": " ".join(sql.split())[:160]} for seconds, sql in top]

    def within(self, start: float, end: float) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for began, seconds, kind in self.calls:
            if start <= began <= end:
                totals[kind] += seconds
        return totals

    def covered(self, start: float, end: float) -> float:
        """Wall seconds between ``start`` and ``end`` during which some SQL ran: the union of the calls' intervals,
        so SQL run side by side (two threads, dbt's threads) counts once and cannot shrink the overhead."""
        with self._lock:
            calls = list(self.calls)
        return span_union((began, began + seconds) for began, seconds, _ in calls if start <= began <= end)


def _one(claims: int, seed: int, target: str, location: str | None) -> dict:
    """Runs inside the child process (GENESIS_VAR_DIR and the platform database already set)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genesis.settings")
    django.setup()
    from django.core.management import call_command

    from missions.models import Mission
    from tasks.models import Artifact, Run

    call_command("migrate", verbosity=0)
    load_before = os.getloadavg()
    command = [sys.executable, "manage.py", "load_demo", "--claims", str(claims), "--seed", str(seed), "--engine",
               TARGETS[target], "--launch"] + (["--location", location] if location else [])
    started = time.monotonic()
    loaded = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    load_s = time.monotonic() - started
    if loaded.returncode:
        return {"claims": claims, "seed": seed, "target": target, "status": "load failed",
                "error": (loaded.stderr or loaded.stdout)[-1500:]}
    mission = Mission.objects.order_by("-id").first()
    # The worker's start, as `manage.py qcluster` starts one: dbt and its adapters imported before any run.
    from django_q.brokers import get_broker

    from tasks.cluster import preload

    started = time.monotonic()
    preload()
    get_broker()  # a cluster opens its broker as it starts (django-q2's Cluster), before any run
    preload_s = time.monotonic() - started
    _checkpoint(target, location)
    meter = SqlMeter()
    meter.install()
    mission_started_wall = time.time()
    started = time.monotonic()
    try:
        call_command("run_mission", str(mission.pk), auto_approve=True, wait=True, timeout=7200, verbosity=0)
        error = ""
    except Exception as exc:  # noqa: BLE001 - report, not crash
        error = str(exc)
    mission_s = time.monotonic() - started
    mission_ended_wall = time.time()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mission.refresh_from_db()
    steps = []
    for run in Run.objects.filter(task__mission=mission).select_related("task").order_by("task__position", "id"):
        if not (run.finished_at and run.started_at):
            steps.append({"task": run.task.key, "status": run.status, "seconds": None})
            continue
        seconds = (run.finished_at - run.started_at).total_seconds()
        sql = meter.within(run.started_at.timestamp(), run.finished_at.timestamp())
        steps.append({"task": run.task.key, "status": run.status, "seconds": round(seconds, 3),
                      "start_s": round(run.started_at.timestamp() - mission_started_wall, 3),
                      "query_s": round(sql.get("query", 0.0), 3), "dbt_sql_s": round(sql.get("dbt", 0.0), 3)})
    totals = meter.within(mission_started_wall, mission_ended_wall)
    sql_s = meter.covered(mission_started_wall, mission_ended_wall)
    report = Artifact.objects.filter(mission=mission, name="backfill_report.json").order_by("-id").first()
    backfill = json.loads(report.file.read()) if report is not None else {}
    overheads = sorted(i["beyond_nodes_s"] * 1000 for i in meter.dbt_invocations if i["dbt_s"])
    # The same generated project with `dbt build` alone, from the command line (cold, as a person would run it).
    project_dirs = sorted((Path(os.environ["GENESIS_VAR_DIR"]) / "dbt" / f"mission-{mission.pk}").glob("*/_profiles"))
    dbt_cli_s = None
    if project_dirs:
        project = project_dirs[-1].parent
        dbt = Path(sys.executable).with_name("dbt")
        _checkpoint(target, location)
        started = time.monotonic()
        done = subprocess.run([str(dbt), "build", "--project-dir", str(project), "--profiles-dir",
                               str(project / "_profiles"), "--target-path", str(project / "target-cli"),
                               "--no-send-anonymous-usage-stats", "--quiet"], capture_output=True, text=True,
                              env={**os.environ, "DO_NOT_TRACK": "1"}, check=False)
        dbt_cli_s = round(time.monotonic() - started, 3)
        if done.returncode:
            error = error or f"dbt build alone failed: {(done.stdout + done.stderr)[-500:]}"
    return {
        "claims": claims, "seed": seed, "target": target, "status": mission.status, "error": error,
        "load_demo_s": round(load_s, 3), "worker_preload_s": round(preload_s, 3), "mission_s": round(mission_s, 3),
        "steps": steps,
        "sql_s": round(sql_s, 3), "query_s": round(totals.get("query", 0.0), 3),
        "dbt_sql_s": round(totals.get("dbt", 0.0), 3), "overhead_s": round(mission_s - sql_s, 3),
        "sql_summed_s": round(totals.get("query", 0.0) + totals.get("dbt", 0.0), 3),
        "query_calls": sum(1 for c in meter.calls if c[2] == "query"),
        "backfill_months": len(backfill.get("months", [])),
        "dbt_overhead_ms_p50": round(statistics.median(overheads), 1) if overheads else None,
        "dbt_overhead_ms_min": round(overheads[0], 1) if overheads else None,
        "dbt_nodes_busy_s": round(sum(i["nodes_busy_s"] for i in meter.dbt_invocations), 3),
        "dbt_node_execution_summed_s": round(sum(i["node_execution_s"] for i in meter.dbt_invocations), 3),
        "dbt_invocations": len(meter.dbt_invocations), "dbt_build_cli_s": dbt_cli_s,
        "peak_rss_mb": round(peak_rss_mb, 1), "slowest_queries": meter.slowest(),
        "steps_s": round(sum(s["seconds"] or 0.0 for s in steps), 3),
        "loadavg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def _checkpoint(target: str, location: str | None) -> None:
    """On PostgreSQL, write out what the previous phase left dirty (the demo's load, the mission's build) before the
    next timed phase, so that neither pays for the other's checkpoint."""
    if target == "postgres" and location:
        import psycopg

        with psycopg.connect(location, connect_timeout=5, autocommit=True) as server:
            server.execute("CHECKPOINT")


def _pg_database(server: str, name: str, *, create: bool) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", connect_timeout=5, autocommit=True) as admin:
        if create:
            admin.execute(f'CREATE DATABASE "{name}"')
        else:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_size(claims: int, seed: int, target: str, pg_server: str) -> dict:
    location = None
    database = f"genesis_bench_{uuid.uuid4().hex[:8]}"
    if target == "postgres":
        _pg_database(pg_server, database, create=True)
        location = f"{pg_server}/{database}"
    try:
        with tempfile.TemporaryDirectory(prefix=f"genesis-bench-{target}-{claims}-") as var:
            env = {**os.environ, "GENESIS_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "genesis.settings",
                   "DATABASE_URL": f"sqlite:///{var}/genesis.sqlite3", "LOG_LEVEL": "WARNING", "DO_NOT_TRACK": "1"}
            command = [sys.executable, "-m", "bench.pipeline", "--one", str(claims), "--seed", str(seed),
                       "--target", target] + (["--location", location] if location else [])
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if not lines:
                return {"claims": claims, "seed": seed, "target": target, "status": "crashed",
                        "error": done.stderr[-2000:]}
            return json.loads(lines[-1])
    finally:
        if target == "postgres":
            _pg_database(pg_server, database, create=False)


def ratio_of(run: dict) -> float | None:
    """The mission's seconds over dbt build alone's, when both were measured."""
    if not run.get("mission_s") or not run.get("dbt_build_cli_s"):
        return None
    return run["mission_s"] / run["dbt_build_cli_s"]


def summarize(runs: list[dict]) -> dict:
    """One size and target over its runs: each run's headline figures, and the medians over the runs that completed
    with both times measured (ratio: the median of the runs' ratios); ``median_run`` is the index of the run whose
    ratio is the median (the lower of the two middle ones when their number is even)."""
    rows = []
    for index, run in enumerate(runs):
        ratio = ratio_of(run)
        share = round(100.0 * run["overhead_s"] / run["mission_s"], 1) if run.get("mission_s") else None
        rows.append({"run": index + 1, "status": run.get("status"), "mission_s": run.get("mission_s"),
                     "dbt_build_cli_s": run.get("dbt_build_cli_s"), "ratio": round(ratio, 3) if ratio else None,
                     "overhead_s": run.get("overhead_s"), "overhead_pct": share,
                     "peak_rss_mb": run.get("peak_rss_mb"), "loadavg_1m": run.get("loadavg_1m"),
                     "error": (run.get("error") or "")[:300]})
    counted = [i for i, (run, row) in enumerate(zip(runs, rows, strict=True))
               if run.get("status") == "completed" and not run.get("error") and row["ratio"] is not None]
    summary = {"claims": runs[0]["claims"], "seed": runs[0]["seed"], "target": runs[0]["target"],
               "repeat": len(runs), "counted": len(counted), "runs": rows, "median": None, "median_run": None}
    if counted:
        by_ratio = sorted(counted, key=lambda i: rows[i]["ratio"])
        summary["median_run"] = by_ratio[(len(by_ratio) - 1) // 2]

        def median(key: str) -> float:
            return round(statistics.median(rows[i][key] for i in counted), 3)

        summary["median"] = {"mission_s": median("mission_s"), "dbt_build_cli_s": median("dbt_build_cli_s"),
                             "ratio": median("ratio"), "overhead_s": median("overhead_s"),
                             "overhead_pct": round(statistics.median(rows[i]["overhead_pct"] for i in counted), 1),
                             "peak_rss_mb": max(rows[i]["peak_rss_mb"] for i in counted)}
    elif runs:
        summary["median_run"] = 0  # nothing to take a median of: the details of the first run say what happened
    return summary


def _run_details(r: dict) -> list[str]:
    """One run's figures and step table in markdown."""
    if r.get("error"):
        lines = [f"Error: `{r['error'][:300]}`", ""]
    else:
        lines = []
    if "steps" not in r:
        return lines
    ratio = f"{r['mission_s'] / r['dbt_build_cli_s']:.2f}×" if r.get("dbt_build_cli_s") else "not measured"
    share = 100.0 * r["overhead_s"] / r["mission_s"] if r["mission_s"] else 0.0
    lines += [f"Load average (1 min) at start / end: {r['loadavg_1m'][0]} / {r['loadavg_1m'][1]} on "
              f"{os.cpu_count()} cores.", "",
              f"- demo load {r['load_demo_s']} s; worker start: dbt and its adapters imported and dbt's templates "
              f"parsed in {r.get('worker_preload_s', 0)} s (GENESIS_WORKER_PRELOAD and GENESIS_WORKER_WARMUP, as "
              "`manage.py qcluster` does before its workers fork; not in the mission); mission (launch → completed, "
              f"headless) **{r['mission_s']} s**",
              f"- same generated project with `dbt build` alone (CLI, cold): **{r['dbt_build_cli_s']} s**; "
              f"mission / dbt build alone = **{ratio}**",
              f"- SQL running {r['sql_s']} s of the mission's wall time (summed over calls that overlap: "
              f"connector queries {r['query_s']} s in {r['query_calls']:,} calls, dbt nodes executing "
              f"{r['dbt_sql_s']} s); **platform overhead {r['overhead_s']} s = {share:.1f}% of the mission**",
              f"- worker peak RSS **{r['peak_rss_mb']:.0f} MB**; dbt invocations {r['dbt_invocations']} "
              f"(overhead beyond the time some node was executing p50 {r['dbt_overhead_ms_p50']} ms); backfill "
              f"months {r['backfill_months']}", "",
              "| step | status | started at s | wall s | connector SQL s | dbt node SQL s |",
              "|---|---|---:|---:|---:|---:|"]
    for s in r["steps"]:
        lines.append(f"| {s['task']} | {s['status']} | {s.get('start_s', '')} | {s['seconds']} | "
                     f"{s.get('query_s', '')} | {s.get('dbt_sql_s', '')} |")
    lines += ["", f"Steps summed {r.get('steps_s')} s against the mission's {r['mission_s']} s: a step's wall "
              "time runs from its run's start to its end, so steps overlap where a task waits for approval "
              "while the next one runs, and the engine's work between runs (launch, dispatch, claims, the "
              "driver's polling) is in no step.", ""]
    if r.get("slowest_queries"):
        lines += ["Slowest connector queries:", "", "| s | query |", "|---:|---|"]
        lines += [f"| {q['seconds']} | `{q['sql'].replace('|', '/')}` |" for q in r["slowest_queries"]]
    return lines


def _cell(value, suffix: str = "") -> str:
    return "" if value is None else f"{value}{suffix}"


def _repeated(summary: dict, runs: list[dict]) -> list[str]:
    """Several runs of one size: the medians, a table of the runs, then the median run in detail."""
    lines = [f"### {summary['claims']:,} claims (seed {summary['seed']}): {summary['repeat']} runs, "
             f"{summary['counted']} completed", ""]
    m = summary["median"]
    if m:
        lines += [f"Medians over the {summary['counted']} completed runs:", "",
                  f"- mission (launch → completed, headless) **{m['mission_s']} s**; same generated project with "
                  f"`dbt build` alone (CLI, cold) **{m['dbt_build_cli_s']} s**; mission / dbt build alone "
                  f"**{m['ratio']:.2f}×** (the median of the runs' ratios)",
                  f"- **platform overhead {m['overhead_s']} s = {m['overhead_pct']}% of the mission**; worker peak "
                  f"RSS (highest of the runs) **{m['peak_rss_mb']:.0f} MB**", ""]
    lines += ["| run | status | mission s | dbt build alone s | ratio | overhead s | overhead % | peak RSS MB | "
              "load 1m start / end |", "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in summary["runs"]:
        load = " / ".join(str(x) for x in row["loadavg_1m"]) if row["loadavg_1m"] else ""
        ratio = f"{row['ratio']:.2f}×" if row["ratio"] else ""
        lines.append(f"| {row['run']} | {row['status']} | {_cell(row['mission_s'])} | "
                     f"{_cell(row['dbt_build_cli_s'])} | {ratio} | {_cell(row['overhead_s'])} | "
                     f"{_cell(row['overhead_pct'])} | {_cell(row['peak_rss_mb'])} | {load} |")
    lines.append("")
    if summary["median_run"] is not None:
        index = summary["median_run"]
        which = "the median run" if m else "the first run (none completed)"
        lines += [f"#### Run {index + 1}, {which}", ""] + _run_details(runs[index])
    return lines


def markdown(target: str, sizes: list[list[dict]]) -> str:
    """The section for one target: per size, its runs (one run: as it always was; several: see ``_repeated``)."""
    start, end = markers(target)
    engine = {"sqlite": "SQLite", "duckdb": "DuckDB", "postgres": "PostgreSQL"}[target]
    repeat = max((len(runs) for runs in sizes), default=1)
    lines = [start, f"## Pipeline on {engine}: the mission against `dbt build` alone", "",
             f"`python -m bench.pipeline --target {target}{f' --repeat {repeat}' if repeat > 1 else ''}`, "
             f"{os.cpu_count()} cores "
             f"({platform.processor() or platform.machine()}), Python {platform.python_version()}, source and "
             f"target on {engine}, run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The 1-minute load "
             "average at the start and end of each size is shown: other work on the two cores slows every step, "
             "so these figures are under that load. Times in seconds; SQL is the wall time during which some SQL ran "
             "(the connectors' queries, and each dbt node's execute interval as dbt reports it; calls side by side "
             "count once); overhead is the mission minus that SQL.", ""]
    for runs in sizes:
        if len(runs) > 1:
            lines += _repeated(summarize(runs), runs)
        else:
            r = runs[0]
            lines += [f"### {r['claims']:,} claims (seed {r['seed']}): mission {r['status']}", ""]
            lines += _run_details(r)
        lines.append("")
    lines.append(end)
    return "\n".join(lines) + "\n"


def write_doc(target: str, text: str) -> None:
    start, end = markers(target)
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start in current and end in current:
        current = re.sub(re.escape(start) + ".*?" + re.escape(end) + "\n?", lambda _: text, current, flags=re.S)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    DOC.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, nargs="+", default=[20_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--target", nargs="+", choices=sorted(TARGETS), default=["sqlite"],
                        help="Where the source and the models live (several: one after the other).")
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER,
                        help="PostgreSQL server for --target postgres (a database is created per run and dropped).")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--location", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1,
                        help="Runs per size and target, each in its own process with a freshly loaded demo; the "
                             "report gives each run and the medians.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.one:
        print(json.dumps(_one(args.one, args.seed, args.target[0], args.location)))  # noqa: T201
        return
    for target in args.target:
        sizes = []
        for claims in args.claims:
            runs = []
            for _ in range(args.repeat):
                result = run_size(claims, args.seed, target, args.pg_server)
                print(json.dumps(result, indent=2))  # noqa: T201
                runs.append(result)
            if args.repeat > 1:
                summary = summarize(runs)
                print(json.dumps(summary, indent=2))  # noqa: T201
            sizes.append(runs)
        text = markdown(target, sizes)
        print(text)  # noqa: T201
        if not args.no_write:
            write_doc(target, text)

if __name__ == "__main__":
    main()
