import sqlite3
import uuid
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from agents.models import Connection
from genesis.exceptions import DomainError
from missions import services as mission_services
from missions.choices import MissionStatus
from missions.models import Membership, Mission
from workflows import missions as mission_workflows


def test_load_demo_builds_and_registers_everything(db, tmp_path, monkeypatch):
    monkeypatch.setenv("GENESIS_DEMO_PASSWORD", "demo-pass-123")
    out = StringIO()
    call_command("load_demo", claims=500, seed=9, dir=str(tmp_path), stdout=out)
    source = Connection.objects.get(name="HCLS_DEMO_1_SOURCES")
    assert (source.engine, source.purpose) == ("sqlite", "source")
    assert Connection.objects.get(name="HCLS_DEMO_1_TARGET").purpose == "target"
    assert Connection.objects.get(name="HCLS_DEMO_1_VALIDATION").purpose == "validation"
    db_file = sqlite3.connect(source.location)
    assert db_file.execute("SELECT COUNT(*) FROM CLAIMS").fetchone()[0] == 500
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.get(username="demo_owner")
    assert owner.check_password("demo-pass-123")
    assert get_user_model().objects.filter(username="demo_stakeholder").exists()
    assert (tmp_path / "project.yml").is_file()
    # Deterministic: loading again with the same seed gives the same file contents.
    first = db_file.execute("SELECT * FROM CLAIM_DETAILS ORDER BY LINE_ID").fetchall()
    call_command("load_demo", claims=500, seed=9, dir=str(tmp_path), stdout=StringIO())
    again = sqlite3.connect(source.location).execute("SELECT * FROM CLAIM_DETAILS ORDER BY LINE_ID").fetchall()
    assert first == again and Connection.objects.filter(name__startswith="HCLS_DEMO_1").count() == 3


def test_load_demo_launch_creates_the_mission_with_its_spec_file(db, tmp_path):
    call_command("load_demo", claims=200, seed=1, dir=str(tmp_path), launch=True, stdout=StringIO())
    mission = Mission.objects.get()
    assert mission.owner.username == "demo_owner" and mission.spec_file
    assert mission.source_connection.name == "HCLS_DEMO_1_SOURCES"
    keys = set(mission.tasks.values_list("key", flat=True))
    assert {"initialize", "inventory_sources", "map_claim_summary", "review_mapping_specs"} <= keys
    from pipeline.specfile import load_mission_spec

    assert load_mission_spec(mission)["sources"]["connection"] == "HCLS_DEMO_1_SOURCES"


def test_the_demo_stakeholder_must_sign_off_before_the_owner_can_close(db, tmp_path):
    out = StringIO()
    call_command("load_demo", claims=200, seed=1, dir=str(tmp_path), launch=True, stdout=out)
    assert "demo_stakeholder's sign-off is required before it closes" in out.getvalue()
    mission = Mission.objects.get()
    membership = Membership.objects.get(mission=mission, user__username="demo_stakeholder")
    assert (membership.role, membership.signoff_required) == ("stakeholder", True)
    for status in (MissionStatus.ACTIVE, MissionStatus.COMPLETED):
        mission_services.mission_transition(mission=mission, to=status)
    with pytest.raises(DomainError) as refused:
        mission_workflows.mission_close(mission=mission, actor=mission.owner, note="Delivered.")
    assert refused.value.code == "signoff_missing" and "the sign-off of Demo Stakeholder is required" in (
        refused.value.message)
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED
    mission_workflows.mission_signoff(mission=mission, actor=membership.user, decision="approve")
    mission_workflows.mission_close(mission=mission, actor=mission.owner, note="Delivered.")
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.CLOSED


def _pg_database():
    """A database of its own on the local PostgreSQL (the demo's schemas have fixed names), or a skip."""
    import psycopg

    try:
        admin = psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"genesis_bronze_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return admin, name


@pytest.mark.parametrize("engine", ["sqlite", "duckdb", "postgresql"])
def test_load_demo_writes_the_generated_rows_on_each_engine(db, tmp_path, engine):
    from pipeline.demo.generator import SCHEMA, generate

    admin = location = None
    if engine == "postgresql":
        admin, name = _pg_database()
        location = f"postgres://postgres@127.0.0.1:5432/{name}"
    try:
        out = StringIO()
        call_command("load_demo", claims=2_100, seed=17, dir=str(tmp_path), engine=engine, location=location,
                     stdout=out)
        want = generate(claims=2_100, seed=17).tables
        counts = ", ".join(f"{table} {len(rows):,}" for table, rows in want.items())
        assert f"bronze data ({counts}) written to" in out.getvalue()
        got = _bronze_rows(engine, Connection.objects.get(name="HCLS_DEMO_1_SOURCES").location)
        assert got == {table: [tuple(row) for row in rows] for table, rows in want.items()}
        assert set(got) == set(SCHEMA)
    finally:
        if admin is not None:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


def _bronze_rows(engine, location):
    """Every bronze table's rows in key order, amounts as floats (as the generator gives them)."""
    from pipeline.demo.generator import SCHEMA

    def plain(row):
        return tuple(float(v) if isinstance(v, Decimal) else v for v in row)

    if engine == "sqlite":
        reader = sqlite3.connect(location)
        try:
            return {t: reader.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in SCHEMA}  # noqa: S608
        finally:
            reader.close()
    if engine == "duckdb":
        import duckdb

        reader = duckdb.connect(location, read_only=True)
        try:
            return {t: [plain(r) for r in reader.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall()]  # noqa: S608
                    for t in SCHEMA}
        finally:
            reader.close()
    import psycopg

    with psycopg.connect(location) as reader:
        return {t: [plain(r) for r in reader.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall()]  # noqa: S608
                for t in SCHEMA}
