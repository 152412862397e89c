"""The engine bench (``bench.engine``) in two checkouts, alternating, in one time window: before and after a change.

    python -m bench.engine_compare --before /work/wt/before [--after .] [--repeat 2] \
        [--backends sqlite,postgres] [--idle 10] [--out var/engine-compare.json]

Each checkout runs its own ``bench/engine.py`` with its own code (``--before`` is a worktree of the old commit with
its ``.venv`` link), in the order before, after, before, after, ... so that a drift in the machine's load hits both
alike. The figures go to ``--out`` and a table on stdout, never to docs/benchmarks.md: the bench's own report writer
is replaced, and its PostgreSQL database is ``genesis_bench_compare`` rather than the bench's default one, so that
another run of ``python -m bench.engine`` on the machine is not disturbed. Noise is judged from the repeats: a
figure moved by the change only if the two checkouts' ranges do not overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run in the checkout's root as `python -c`: the checkout's own bench.engine, its report written as JSON instead.
RUNNER = """
import json, sys
import bench.engine as engine
engine.BENCH_DB = "genesis_bench_compare"
out = sys.argv[1]
def write_report(results):
    with open(out, "w") as handle:
        json.dump(results, handle)
engine.write_report = write_report
sys.argv = ["bench.engine", "--backends", sys.argv[2], "--idle", sys.argv[3]]
engine.main()
"""

# (label, how to read it from one backend's result, lower is better)
FIGURES = [
    ("hop p50, chain of 50 (ms)", lambda r: r["chain50"]["hop_p50"], True),
    ("hop p99, chain of 50 (ms)", lambda r: r["chain50"]["hop_p99"], True),
    ("chain of 50 end to end (s)", lambda r: r["chain50"]["end_to_end"], True),
    ("hop p50, chain of 200 (ms)", lambda r: r["chain200"]["hop_p50"], True),
    ("hop p99, chain of 200 (ms)", lambda r: r["chain200"]["hop_p99"], True),
    ("launch → first running p50 (ms)", lambda r: r["launch"]["p50"], True),
    ("fan-out/in 1,002 tasks/s", lambda r: r["fan1000"]["tasks_per_s"], False),
    ("bare django-q2 tasks/s (reference)", lambda r: r["bare_1000"]["tasks_per_s"], False),
    ("engine / bare throughput", lambda r: r["fan1000"]["tasks_per_s"] / r["bare_1000"]["tasks_per_s"], False),
    ("idle CPU, cluster (% of a core)", lambda r: r["idle"]["cluster"], True),
    ("idle CPU, database (% of a core)", lambda r: r["idle"]["db"], True),
    ("queries per task, chain of 50", lambda r: r["queries_per_task"]["chain of 50"], True),
    ("queries per task, fan of 1002", lambda r: r["queries_per_task"]["fan of 1002"], True),
    ("ms per task in-process, chain of 50", lambda r: r["ms_per_task"]["chain of 50"], True),
    ("ms per task in-process, fan of 1002", lambda r: r["ms_per_task"]["fan of 1002"], True),
]


def run_once(tree: Path, backends: str, idle: str) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="genesis-engine-compare-") as tmp:
        out = Path(tmp) / "results.json"
        subprocess.run([str(tree / ".venv" / "bin" / "python"), "-c", RUNNER, str(out), backends, idle],
                       cwd=tree, check=True)
        return json.loads(out.read_text())


def table(runs: dict[str, list[dict]]) -> str:
    """One row per figure and backend: every run's value in order, and a verdict from the ranges."""
    lines = ["| broker | figure | before (each run) | after (each run) | verdict |", "|---|---|---|---|---|"]
    backends = [r["backend"] for r in runs["before"][0]["results"]]
    for backend in backends:
        for label, read, lower_is_better in FIGURES:
            values = {}
            for side in ("before", "after"):
                values[side] = []
                for attempt in runs[side]:
                    result = next(r for r in attempt["results"] if r["backend"] == backend)
                    try:
                        values[side].append(read(result))
                    except KeyError:
                        pass
            if not values["before"] or not values["after"]:
                continue
            b, a = values["before"], values["after"]
            if max(a) < min(b):
                verdict = "better" if lower_is_better else "worse"
            elif min(a) > max(b):
                verdict = "worse" if lower_is_better else "better"
            else:
                verdict = "within noise"
            lines.append(f"| {backend} | {label} | {' / '.join(f'{v:.2f}' for v in b)} "
                         f"| {' / '.join(f'{v:.2f}' for v in a)} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, type=Path)
    parser.add_argument("--after", default=Path(__file__).resolve().parent.parent, type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--idle", default="10")
    parser.add_argument("--out", default="var/engine-compare.json", type=Path)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(args.repeat):
        for side, tree in (("before", args.before), ("after", args.after)):
            load = os.getloadavg()[0]
            started = time.strftime("%H:%M:%S", time.gmtime())
            print(f"=== {side} #{attempt + 1} ({tree}) at {started} UTC, load {load:.2f}", flush=True)
            results = run_once(tree.resolve(), args.backends, args.idle)
            runs[side].append({"started": started, "load": load, "results": results})
            args.out.write_text(json.dumps(runs, indent=2))
    print(table(runs))


if __name__ == "__main__":
    sys.exit(main())
