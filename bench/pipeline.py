"""The Healthcare Data Pipeline mission end to end, headless, at several sizes: wall time per step, dbt overhead per
invocation beyond the SQL's own time, and the whole mission against running the same generated dbt project with
`dbt build` alone.

    python -m bench.pipeline                      # 20k claims (the demo), then writes docs/benchmarks.md
    python -m bench.pipeline --claims 20000 100000 1000000

Each size runs in its own process with its own scratch var directory (settings read the environment at start).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- pipeline-bench:start -->", "<!-- pipeline-bench:end -->"


def _one(claims: int, seed: int) -> dict:
    """Runs inside the child process (GENESIS_VAR_DIR already set)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genesis.settings")
    django.setup()
    from django.core.management import call_command

    from missions.models import Mission
    from tasks.models import Artifact, Run

    call_command("migrate", verbosity=0)
    load_before = os.getloadavg()
    started = time.monotonic()
    call_command("load_demo", claims=claims, seed=seed, launch=True, verbosity=0)
    load_s = time.monotonic() - started
    mission = Mission.objects.order_by("-id").first()
    started = time.monotonic()
    try:
        call_command("run_mission", str(mission.pk), auto_approve=True, wait=True, timeout=7200, verbosity=0)
        error = ""
    except Exception as exc:  # noqa: BLE001 - report, not crash
        error = str(exc)
    mission_s = time.monotonic() - started
    mission.refresh_from_db()
    steps = []
    dbt_overheads = []
    for run in Run.objects.filter(task__mission=mission).select_related("task").order_by("task__position", "id"):
        seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None
        step = {"task": run.task.key, "status": run.status, "seconds": round(seconds, 3) if seconds else None}
        dbt = (run.result or {}).get("dbt") if isinstance(run.result, dict) else None
        if dbt:
            sql = sum(n.get("execution_time") or 0 for n in dbt["nodes"])
            step.update(parse_s=dbt["parse_s"], dbt_s=dbt["dbt_s"], sql_s=round(sql, 3),
                        reused_manifest=dbt["reused_manifest"])
            dbt_overheads.append(dbt["dbt_s"] - sql)
        steps.append(step)
    report = Artifact.objects.filter(mission=mission, name="backfill_report.json").order_by("-id").first()
    months = []
    if report is not None:
        months = json.loads(report.file.read())["months"]
        dbt_overheads += [m["dbt_seconds"] - m["sql_seconds"] for m in months if m.get("dbt_seconds")]
    # The same generated project with `dbt build` alone, from the command line (cold, as a person would run it).
    project_dirs = sorted((Path(os.environ["GENESIS_VAR_DIR"]) / "dbt" / f"mission-{mission.pk}").glob("*/_profiles"))
    dbt_cli_s = None
    if project_dirs:
        project = project_dirs[-1].parent
        dbt = Path(sys.executable).with_name("dbt")
        started = time.monotonic()
        done = subprocess.run([str(dbt), "build", "--project-dir", str(project), "--profiles-dir",
                               str(project / "_profiles"), "--target-path", str(project / "target-cli"),
                               "--no-send-anonymous-usage-stats", "--quiet"], capture_output=True, text=True,
                              env={**os.environ, "DO_NOT_TRACK": "1"}, check=False)
        dbt_cli_s = round(time.monotonic() - started, 3)
        if done.returncode:
            error = error or f"dbt build alone failed: {done.stdout[-500:]}"
    overhead_ms = sorted(o * 1000 for o in dbt_overheads)
    return {
        "claims": claims, "seed": seed, "status": mission.status, "error": error, "load_demo_s": round(load_s, 3),
        "mission_s": round(mission_s, 3), "steps": steps, "backfill_months": len(months),
        "backfill_month_p50_s": round(statistics.median(m["seconds"] for m in months), 3) if months else None,
        "dbt_overhead_ms_p50": round(statistics.median(overhead_ms), 1) if overhead_ms else None,
        "dbt_overhead_ms_max": round(max(overhead_ms), 1) if overhead_ms else None,
        "dbt_invocations": len(overhead_ms), "dbt_build_cli_s": dbt_cli_s,
        "loadavg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def run_size(claims: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"genesis-bench-{claims}-") as var:
        env = {**os.environ, "GENESIS_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "genesis.settings",
               "DATABASE_URL": f"sqlite:///{var}/genesis.sqlite3", "LOG_LEVEL": "WARNING", "DO_NOT_TRACK": "1"}
        done = subprocess.run([sys.executable, "-m", "bench.pipeline", "--one", str(claims), "--seed", str(seed)],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            return {"claims": claims, "seed": seed, "status": "crashed", "error": done.stderr[-2000:]}
        return json.loads(lines[-1])


def markdown(results: list[dict]) -> str:
    lines = [START, "## Pipeline: the Healthcare Data Pipeline mission headless", "",
             f"`python -m bench.pipeline`, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
             f"Python {platform.python_version()}, SQLite source and target, run on {time.strftime('%Y-%m-%d')}; "
             "the 1-minute load average at the start and end of each size is shown (other work on the two cores "
             "slows every step). Times in seconds.", ""]
    for r in results:
        lines += [f"### {r['claims']:,} claims (seed {r['seed']}): mission {r['status']}",
                  ""]
        if r.get("error"):
            lines += [f"Error: `{r['error'][:300]}`", ""]
        if "steps" not in r:
            continue
        if r.get("loadavg_1m"):
            lines += [f"Machine load average (1 min) at start / end: {r['loadavg_1m'][0]} / {r['loadavg_1m'][1]} "
                      f"on {os.cpu_count()} cores.", ""]
        lines += [f"- demo load {r['load_demo_s']} s; mission (launch → completed, headless) **{r['mission_s']} s**",
                  f"- same generated project with `dbt build` alone (CLI, cold): **{r['dbt_build_cli_s']} s**; "
                  f"mission / dbt build alone = {r['mission_s'] / r['dbt_build_cli_s']:.1f}×"
                  if r.get("dbt_build_cli_s") else "- dbt build alone: not measured",
                  f"- dbt overhead per invocation beyond the models' SQL (warm manifest; build, test and each "
                  f"backfill month): p50 **{r['dbt_overhead_ms_p50']} ms**, max {r['dbt_overhead_ms_max']} ms over "
                  f"{r['dbt_invocations']} invocations",
                  f"- backfill: {r['backfill_months']} months, p50 {r['backfill_month_p50_s']} s per month", "",
                  "| step | status | wall s | dbt parse s | dbt s | models' SQL s |", "|---|---|---:|---:|---:|---:|"]
        for s in r["steps"]:
            lines.append(f"| {s['task']} | {s['status']} | {s['seconds']} | {s.get('parse_s', '')} | "
                         f"{s.get('dbt_s', '')} | {s.get('sql_s', '')} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_doc(text: str) -> None:
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in current and END in current:
        current = re.sub(re.escape(START) + ".*?" + re.escape(END) + "\n?", lambda _: text, current, flags=re.S)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    DOC.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, nargs="+", default=[20_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.seed)))  # noqa: T201
        return
    results = []
    for claims in args.claims:
        result = run_size(claims, args.seed)
        print(json.dumps(result, indent=2))  # noqa: T201
        results.append(result)
    text = markdown(results)
    print(text)  # noqa: T201
    if not args.no_write:
        write_doc(text)


if __name__ == "__main__":
    main()
