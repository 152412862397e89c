"""Ingest benchmark: ``python -m bench.ingest`` loads a generated CSV of 1M rows into a SQLite file with
``files_ingest`` (the ``ingest`` command's and agent's code) and measures, in the same run, the reference: DuckDB
alone reading the file into Python rows, plus SQLite alone inserting those same rows (one ``executemany`` in one
transaction, into a new file). Runs alternate (reference, first load, re-load) so that the machine's load weighs on
each alike; medians of several runs and their ratios are printed and written to docs/benchmarks.md.

The reference's rows are the ones ingest sends: DuckDB's values with dates and timestamps as ISO text (``landing``),
so that both sides hand SQLite the same Python objects. The re-load replaces the table loaded just before (staging
table, drop of the old one, rename, in one transaction).

Options: ``--rows 1000000``, ``--runs 5``, ``--no-write`` (print only).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench.ingest: start -->", "<!-- bench.ingest: end -->"
GOAL = 1.5


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A claims-like CSV: integers, a date, text, a decimal amount and a boolean."""
    rng = random.Random(seed)
    day0 = date(2020, 1, 1)
    kinds, statuses = ["INPATIENT", "OUTPATIENT", "PHARMACY"], ["PAID", "DENIED", "PENDING"]
    with path.open("w") as out:
        out.write("claim_id,patient_id,provider_id,service_date,claim_type,status,amount,paid\n")
        for i in range(1, rows + 1):
            out.write(f"{i},{rng.randint(1, 50_000)},{rng.randint(1, 2_000)},{day0 + timedelta(days=i % 1500)},"
                      f"{rng.choice(kinds)},{rng.choice(statuses)},{rng.randint(100, 999_999) / 100},"
                      f"{'true' if rng.random() < 0.7 else 'false'}\n")


def reference(csv: Path, database: Path) -> dict[str, float]:
    """DuckDB alone reading the file into Python rows; SQLite alone inserting them in one transaction."""
    import duckdb

    from pipeline.ingest.landing import landing_for
    from pipeline.ingest.reading import quote

    started = time.perf_counter()
    with duckdb.connect() as db:
        columns = db.execute("DESCRIBE SELECT * FROM read_csv(?)", [str(csv)]).fetchall()
        landings = [(name, landing_for(kind, "sqlite")) for name, kind, *_ in columns]
        select = ", ".join(landing.expression.format(quote(name)) for name, landing in landings)
        rows = db.execute(f"SELECT {select} FROM read_csv(?)", [str(csv)]).fetchall()  # noqa: S608
    read = time.perf_counter() - started
    started = time.perf_counter()
    target = sqlite3.connect(database, isolation_level=None)
    body = ", ".join(f"{quote(name)} {landing.declared}" for name, landing in landings)
    target.execute(f"CREATE TABLE claims ({body})")
    target.execute("BEGIN")
    target.executemany(f"INSERT INTO claims VALUES ({', '.join('?' * len(landings))})", rows)  # noqa: S608
    target.execute("COMMIT")
    target.close()
    insert = time.perf_counter() - started
    assert len(rows) > 0
    return {"read_s": read, "insert_s": insert, "total_s": read + insert}


def ingest(csv: Path, database: Path) -> dict[str, float]:
    from agents.models import Connection
    from pipeline.ingest.services import files_ingest

    connection = Connection(name="BENCH", engine="sqlite", location=str(database), purpose="source")
    started = time.perf_counter()
    report = files_ingest(connection=connection, paths=[csv], mission=None)
    total = time.perf_counter() - started
    table = report.tables[0]
    return {"total_s": total, "read_s": table.read_ms / 1000, "write_s": table.write_ms / 1000, "rows": table.rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genesis.settings")
    import django

    django.setup()
    import duckdb

    with tempfile.TemporaryDirectory(prefix="genesis-bench-ingest-") as tmp:
        work = Path(tmp)
        csv = work / "claims.csv"
        started = time.perf_counter()
        generate(csv, args.rows)
        print(f"generated {args.rows:,} rows, {csv.stat().st_size / 1e6:.1f} MB in "
              f"{time.perf_counter() - started:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
        loads = [os.getloadavg()[0]]
        results: dict[str, list[dict]] = {"reference": [], "first": [], "again": []}
        for run in range(args.runs):
            for name in ("reference.sqlite3", "ingest.sqlite3"):
                (work / name).unlink(missing_ok=True)
            results["reference"].append(reference(csv, work / "reference.sqlite3"))
            results["first"].append(ingest(csv, work / "ingest.sqlite3"))
            results["again"].append(ingest(csv, work / "ingest.sqlite3"))
            assert results["again"][-1]["rows"] == args.rows
            count = sqlite3.connect(work / "ingest.sqlite3").execute("SELECT count(*) FROM claims").fetchone()[0]
            assert count == args.rows, count
            print(f"run {run + 1}: reference {results['reference'][-1]['total_s']:.2f} s, ingest "
                  f"{results['first'][-1]['total_s']:.2f} s, re-load {results['again'][-1]['total_s']:.2f} s",
                  flush=True)
        loads.append(os.getloadavg()[0])
        size_mb = csv.stat().st_size / 1e6

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    summary = {
        "rows": args.rows, "runs": args.runs, "size_mb": size_mb, "loads": loads, "duckdb": duckdb.__version__,
        "reference": {k: median("reference", k) for k in ("read_s", "insert_s", "total_s")},
        "first": {k: median("first", k) for k in ("read_s", "write_s", "total_s")},
        "again": {k: median("again", k) for k in ("read_s", "write_s", "total_s")},
    }
    summary["ratio_first"] = summary["first"]["total_s"] / summary["reference"]["total_s"]
    summary["ratio_again"] = summary["again"]["total_s"] / summary["reference"]["total_s"]
    print(f"medians of {args.runs}: reference {summary['reference']['total_s']:.2f} s (DuckDB read "
          f"{summary['reference']['read_s']:.2f} + SQLite insert {summary['reference']['insert_s']:.2f}); ingest "
          f"{summary['first']['total_s']:.2f} s ({summary['ratio_first']:.2f}x); re-load "
          f"{summary['again']['total_s']:.2f} s ({summary['ratio_again']:.2f}x); goal <= {GOAL}x")
    if not args.no_write:
        write_report(summary)


def write_report(s: dict) -> None:
    ref, first, again = s["reference"], s["first"], s["again"]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "met" if max(s["ratio_first"], s["ratio_again"]) <= GOAL else "not met"
    lines = [
        START, "## Ingest: 1M CSV rows into SQLite (`python -m bench.ingest`)", "",
        f"Measured {now} on this machine ({os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, DuckDB {s['duckdb']}), load average {s['loads'][0]:.2f} at the start "
        f"and {s['loads'][1]:.2f} at the end. A generated claims CSV of {s['rows']:,} rows ({s['size_mb']:.0f} MB; "
        "integers, a date, text, a decimal, a boolean) loaded into a SQLite file by `files_ingest`, the code of "
        "`manage.py ingest` and of the `ingest` agent. The reference, measured in the same run, alternating with "
        "it: DuckDB alone reading the file into Python rows (`fetchall`, the same values ingest sends: dates as ISO "
        "text) plus SQLite alone inserting those rows into a new file (one `executemany`, one transaction). "
        f"Medians of {s['runs']} runs, seconds.", "",
        "| | total | DuckDB read | SQLite write | against the reference |",
        "|---|---:|---:|---:|---:|",
        f"| reference (DuckDB alone + SQLite alone) | {ref['total_s']:.2f} | {ref['read_s']:.2f} | "
        f"{ref['insert_s']:.2f} | 1.00× |",
        f"| ingest, first load (new file) | {first['total_s']:.2f} | {first['read_s']:.2f} | {first['write_s']:.2f} "
        f"| {s['ratio_first']:.2f}× |",
        f"| ingest, re-load (replaces the table) | {again['total_s']:.2f} | {again['read_s']:.2f} | "
        f"{again['write_s']:.2f} | {s['ratio_again']:.2f}× |",
        "",
        f"Goal: ingest ≤ {GOAL}× the reference: **{verdict}**. The columns split differently: the reference's read "
        "includes making the Python rows; ingest's read is DuckDB reading the whole file into its own table (types "
        "inferred, every line checked, before the target is touched), and its write includes making the Python "
        "rows from that table, 10,000 at a time, as it inserts them into a staging table that it then swaps in. "
        "The re-load also drops the old table in the same transaction. Ingest's total also counts the sniffer's "
        "check for skipped lines, the SHA-256 of the file and opening both databases.",
        END,
    ]
    block = "\n".join(lines)
    existing = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in existing and END in existing:
        existing = existing[:existing.index(START)] + block + existing[existing.index(END) + len(END):]
    else:
        existing = existing.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(existing)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
