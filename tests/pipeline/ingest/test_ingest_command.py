"""``manage.py ingest``: what it prints and its exit status."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import ManagementUtility, call_command

from tests.pipeline.ingest.conftest import (
    MEMBERS,
    claims_csv,
    duckdb_target,
    numbered_csv,
    sqlite_target,
    write_ndjson,
)

pytestmark = pytest.mark.django_db


def run(*argv: str) -> tuple[int, str, str]:
    """Run ``manage.py ingest ...`` as the shell would: its exit status, standard output and standard error."""
    out, err = StringIO(), StringIO()
    from contextlib import redirect_stderr, redirect_stdout
    from unittest import mock

    # run_from_argv closes every database connection when the command ends, as a process about to exit may; here
    # that would close the test's own connection inside its transaction (on PostgreSQL the next query then fails).
    with redirect_stdout(out), redirect_stderr(err), \
            mock.patch("django.core.management.base.connections.close_all"):
        try:
            ManagementUtility(["manage.py", "ingest", *argv]).execute()
            status = 0
        except SystemExit as stop:
            status = stop.code
    return status, out.getvalue(), err.getvalue()


def test_the_command_loads_files_and_says_what_each_became(tmp_path):
    target = sqlite_target(tmp_path / "mine.sqlite3", name="MINE")
    claims = claims_csv(tmp_path / "claims.csv")
    events = write_ndjson(tmp_path / "events.ndjson", MEMBERS)

    status, out, err = run("--connection", "MINE", str(claims), str(events))

    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"Created the SQLite file {tmp_path / 'mine.sqlite3'}."
    assert lines[1].startswith(f"{claims} -> claims: 4 rows, 5 columns (claim_id BIGINT, member VARCHAR, amount "
                               "DOUBLE, service_date DATE, paid BOOLEAN) in ")
    assert lines[2].startswith(f"{events} -> events: 3 rows, 6 columns (member_id BIGINT, ")
    assert lines[3].startswith(f"Loaded 2 file(s), 7 rows, into MINE (sqlite, {tmp_path / 'mine.sqlite3'}) in ")
    assert target.tables() == ["claims", "events"]


def test_the_command_loads_into_a_duckdb_file_that_the_pipeline_then_reads(tmp_path):
    """Created by the first load, loaded again without a duplicate row, then read by the DuckDB connector the
    profiling and mapping agents use (read-only)."""
    from agents.access import adapter_for

    target = duckdb_target(tmp_path / "warehouse.duckdb", name="DUCK")
    claims = claims_csv(tmp_path / "claims.csv")

    status, out, err = run("--connection", "DUCK", str(claims))
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == f"Created the DuckDB file {tmp_path / 'warehouse.duckdb'}."
    where = tmp_path / "warehouse.duckdb"
    assert out.splitlines()[-1].startswith(f"Loaded 1 file(s), 4 rows, into DUCK (duckdb, {where})")
    status, out, _err = run("--connection", "DUCK", str(claims))
    assert status == 0 and not out.startswith("Created")
    assert target.tables() == ["claims"]
    with adapter_for(target.connection, mission=None) as adapter:
        assert adapter.list_tables() == ["claims"]
        (count, total), = adapter.query('SELECT count(*), sum(amount) FROM "claims"', limit=1).rows
    assert count == 4 and total == pytest.approx(2200.49)


def test_the_command_refuses_a_malformed_file_with_status_1_and_the_reason(tmp_path):
    target = sqlite_target(tmp_path / "mine.sqlite3", name="MINE")
    path = numbered_csv(tmp_path / "scores.csv", 30_000, bad_line=29_000, bad="oops")

    status, out, err = run("--connection", "MINE", str(path))

    assert (status, out) == (1, "")
    assert err == (f"CommandError: {path}, line 29000: Expected Number of Columns: 3 Found: 1 (the line reads: "
                   "'oops'). Nothing was loaded.\n")
    assert target.tables() == []


def test_the_command_names_an_unknown_connection(tmp_path):
    status, _out, err = run("--connection", "NOPE", str(claims_csv(tmp_path / "claims.csv")))

    assert status == 1
    assert err == "CommandError: --connection: no connection is named 'NOPE' (add one with manage.py connection_add).\n"


def test_the_command_passes_csv_options_and_can_print_json(tmp_path):
    sqlite_target(tmp_path / "mine.sqlite3", name="MINE")
    path = tmp_path / "legacy.csv"
    path.write_bytes("Export\n1;Zoë\n2;José\n".encode("latin-1"))
    out = StringIO()

    call_command("ingest", str(path), connection="MINE", delimiter=";", header="false", encoding="latin-1", skip=1,
                 json=True, stdout=out)

    report = json.loads(out.getvalue())
    assert report["options"] == {"delimiter": ";", "header": False, "encoding": "latin-1", "skip": 1}
    assert [(t["table"], t["rows"]) for t in report["tables"]] == [("legacy", 2)]
