"""What mapping and reconciliation add to a mission on about 1M source rows: the healthcare demo launched as
build-marts with its spec file, run headless to the end, then, in the same process and on the same data, the
reconciliation of every built target with the source timed again (median of ``--repeat`` runs), and the
verification a reusing mission makes (the approved mapping's SQL reconciled on the source) likewise.

    python -m bench.marts                       # about 1M source rows (CLAIMS + CLAIM_DETAILS + ...)
    python -m bench.marts --claims 100000 --repeat 5 --write

The goal: mapping and reconciliation add at most 10% to the mission. Printed: the mission's wall time, the
mapping tasks' time (their span, first start to last end, and their sum), the reconciliation's median, and the
ratio (mapping span + reconciliation) / (mission - mapping span - reconciliation). The mission runs once (minutes
at this size); the reconciliation medians come from the same run, so the machine's load is the same for both.

Runs in its own process with its own scratch var directory and SQLite database (settings read the environment at
start).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- marts-bench:start -->", "<!-- marts-bench:end -->"


def _timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _one(claims: int, seed: int, repeat: int) -> dict:
    """Runs inside the child process (GENESIS_VAR_DIR already set)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genesis.settings")
    django.setup()
    from django.core.management import call_command

    from agents.access import adapter_for
    from missions.models import Mission
    from pipeline.dbt.spec import approved_targets
    from pipeline.quality.reconcile import reconcile, reconcile_mapping
    from tasks.models import Run

    call_command("migrate", verbosity=0)
    call_command("load_demo", claims=claims, seed=seed, launch=True, verbosity=0)
    mission = Mission.objects.order_by("-id").first()
    with adapter_for(mission.source_connection, mission=mission) as source:
        rows = {t.name: t.row_count for t in source.introspect()}
    load_before = os.getloadavg()[0]
    ran_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    started = time.monotonic()
    try:
        call_command("run_mission", str(mission.pk), auto_approve=True, wait=True, timeout=7200, verbosity=0)
        error = ""
    except Exception as exc:  # noqa: BLE001 - report, not crash
        error = str(exc)
    mission_s = time.monotonic() - started
    mission.refresh_from_db()
    runs = list(Run.objects.filter(task__mission=mission, task__key__startswith="map_").exclude(finished_at=None))
    mapping_sum = sum((r.finished_at - r.started_at).total_seconds() for r in runs)
    mapping_span = ((max(r.finished_at for r in runs) - min(r.started_at for r in runs)).total_seconds()
                    if runs else 0.0)
    targets = approved_targets(mission)
    with adapter_for(mission.target_connection, mission=mission) as target_adapter, \
            adapter_for(mission.source_connection, mission=mission) as source_adapter:
        reconcile_s, results = _timed(lambda: [r for t in targets for r in reconcile(target_adapter, source_adapter,
                                                                                      t)], repeat)
        verify_s, _ = _timed(lambda: [r for t in targets for r in reconcile_mapping(source_adapter, t)], repeat)
    added = mapping_span + reconcile_s
    rest = mission_s - added
    # The mapping tasks may overlap (several workers); their summed time is what they would add run one by one.
    added_serial = mapping_sum + reconcile_s
    rest_serial = mission_s - added_serial
    return {
        "claims": claims, "seed": seed, "status": mission.status, "error": error, "source_rows": rows,
        "ran_at": ran_at,
        "mission_s": round(mission_s, 3), "mapping_span_s": round(mapping_span, 3),
        "mapping_sum_s": round(mapping_sum, 3), "mapping_tasks": len(runs),
        "reconcile_median_s": round(reconcile_s, 3), "reconcile_checks": len(results),
        "reconcile_passed": sum(1 for r in results if r.passed),
        "reuse_verify_median_s": round(verify_s, 3), "repeat": repeat,
        "added_over_rest": round(added / rest, 4) if rest > 0 else None,
        "added_serial_over_rest": round(added_serial / rest_serial, 4) if rest_serial > 0 else None,
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def run(claims: int, seed: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"genesis-marts-{claims}-") as var:
        env = {**os.environ, "GENESIS_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "genesis.settings",
               "DATABASE_URL": f"sqlite:///{var}/genesis.sqlite3", "LOG_LEVEL": "WARNING", "DO_NOT_TRACK": "1"}
        done = subprocess.run([sys.executable, "-m", "bench.marts", "--one", str(claims), "--seed", str(seed),
                               "--repeat", str(repeat)], cwd=ROOT, env=env, capture_output=True, text=True,
                              check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            return {"claims": claims, "seed": seed, "status": "crashed", "error": done.stderr[-2000:]}
        return json.loads(lines[-1])


def markdown(r: dict) -> str:
    total = sum(r.get("source_rows", {}).values())
    lines = [START, "## Mapping and reconciliation against the mission (`python -m bench.marts`)", ""]
    if "mission_s" not in r:
        return "\n".join([*lines, f"Crashed: `{r.get('error', '')[:300]}`", END]) + "\n"
    rows = ", ".join(f"{t} {n:,}" for t, n in r["source_rows"].items())
    lines += [
        f"Healthcare demo as build-marts + its spec, {r['claims']:,} claims (seed {r['seed']}): {total:,} source "
        f"rows ({rows}); SQLite source and target; run at {r.get('ran_at', '?')}, "
        f"{os.cpu_count()} cores, 1-minute load average {r['loadavg_1m'][0]} at the start, {r['loadavg_1m'][1]} at "
        f"the end (the cores are shared: every figure is slowed alike). Mission {r['status']}.", "",
        f"- mission (launch → {r['status']}, headless): **{r['mission_s']} s**",
        f"- mapping ({r['mapping_tasks']} tasks): span {r['mapping_span_s']} s (first start to last end), sum "
        f"{r['mapping_sum_s']} s",
        f"- reconciliation of the built targets with the source ({r['reconcile_checks']} measure totals, "
        f"{r['reconcile_passed']} equal): median **{r['reconcile_median_s']} s** of {r['repeat']}",
        f"- a reusing mission's verification (the approved SQL's totals on the source): median "
        f"{r['reuse_verify_median_s']} s of {r['repeat']}",
        f"- (mapping span + reconciliation) / (the rest of the mission) = **{r['added_over_rest']:.1%}** "
        f"(goal ≤ 10%)" if r.get("added_over_rest") is not None else "- ratio: not measurable",
        f"- with the mapping tasks' summed time instead of their span (as if run one by one): "
        f"{r['added_serial_over_rest']:.1%}" if r.get("added_serial_over_rest") is not None else "",
        "", END]
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
    parser.add_argument("--claims", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="Also write the figures into docs/benchmarks.md.")
    parser.add_argument("--from-json", help=argparse.SUPPRESS)  # re-render a saved result
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.seed, args.repeat)))  # noqa: T201
        return
    result = json.loads(Path(args.from_json).read_text()) if args.from_json else run(args.claims, args.seed,
                                                                                       args.repeat)
    print(json.dumps(result, indent=2))  # noqa: T201
    text = markdown(result)
    print(text)  # noqa: T201
    if args.write:
        write_doc(text)


if __name__ == "__main__":
    main()
