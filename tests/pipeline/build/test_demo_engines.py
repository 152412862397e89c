"""The demo on a warehouse: ``load_demo --engine duckdb`` (a DuckDB file) and ``--engine postgresql`` (schemas of a
PostgreSQL database) register the demo there, and the Healthcare Data Pipeline mission runs to completion headless
(``run_mission --auto-approve``) with its three targets equal to the independent computation."""

from __future__ import annotations

import uuid
from io import StringIO

import duckdb
import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from psycopg.rows import dict_row

from agents.models import Connection
from missions.choices import MissionStatus
from missions.models import Mission
from pipeline.demo.generator import generate, write_sqlite
from pipeline.management.commands.load_demo import PG_TARGET_SCHEMA, with_search_path
from tests.pipeline.build.healthcare import assert_target_matches, expected_targets, read_bronze

# Transactional: the lease thread of a long run (its own connection) must see the run rows as committed.
pytestmark = pytest.mark.django_db(transaction=True)
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
CLAIMS, SEED = 300, 13


@pytest.fixture(params=["duckdb", "postgresql"])
def demo_engine(request, tmp_path):
    """The engine and what ``load_demo`` needs for it: nothing for DuckDB; for PostgreSQL, a database of its own
    (the demo's schemas have fixed names), dropped afterwards."""
    if request.param == "duckdb":
        yield "duckdb", None, lambda table: _duckdb_rows(tmp_path / "hcls_demo_1_target.duckdb", table)
        return
    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"genesis_demo_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    location = f"{PG_SERVER}/{name}"

    def rows(table):
        with psycopg.connect(with_search_path(location, PG_TARGET_SCHEMA), row_factory=dict_row) as conn:
            return conn.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608 - a fixed target name

    try:
        yield "postgresql", location, rows
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _duckdb_rows(path, table):
    db = duckdb.connect(str(path), read_only=True)
    try:
        cursor = db.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - a fixed target name
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        db.close()


def test_the_demo_mission_runs_on_a_warehouse(demo_engine, tmp_path, dbt_dir, monkeypatch):
    engine, location, target_rows = demo_engine
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where DuckDB would put a downloaded extension
    out = StringIO()
    call_command("load_demo", claims=CLAIMS, seed=SEED, dir=str(tmp_path), engine=engine, location=location,
                 launch=True, stdout=out)
    names = ("HCLS_DEMO_1_SOURCES", "HCLS_DEMO_1_TARGET", "HCLS_DEMO_1_VALIDATION")
    assert {c.name: c.engine for c in Connection.objects.filter(name__in=names)} == dict.fromkeys(names, engine)
    mission = Mission.objects.get()

    out = StringIO()
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "600", "--auto-approve", stdout=out)
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED, out.getvalue()
    # The same seed gives the same rows: written to SQLite here for the independent computation.
    bronze = read_bronze(write_sqlite(tmp_path / "same-bronze.sqlite3", generate(claims=CLAIMS, seed=SEED)))
    for name, want in expected_targets(bronze).items():
        assert_target_matches(name, target_rows(name), want)
    assert not (tmp_path / "home" / ".duckdb").exists()


def test_load_demo_refuses_a_location_for_a_file_engine_and_needs_one_for_postgresql(tmp_path):
    with pytest.raises(CommandError, match="--location: only --engine postgresql takes one"):
        call_command("load_demo", claims=10, dir=str(tmp_path), engine="duckdb", location="x", stdout=StringIO())
    with pytest.raises(CommandError, match="--location: --engine postgresql needs the database"):
        call_command("load_demo", claims=10, dir=str(tmp_path), engine="postgresql", stdout=StringIO())
    assert not Connection.objects.exists()
