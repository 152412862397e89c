"""Fixtures for blueprint tests: the shipped blueprints loaded, the healthcare spec file, and real SQLite databases
behind connections."""

import sqlite3
from pathlib import Path

import pytest

from agents.models import Connection
from blueprints.services import blueprint_import
from pipeline.specfile import load_spec_text
from tests.conftest import leads_connection

FILES = Path(__file__).resolve().parents[2] / "blueprints" / "files"
HEALTHCARE_SPEC = Path(__file__).resolve().parents[2] / "pipeline" / "demo" / "project.yml"
# The healthcare pipeline's targets (the spec file's order): one mapping task each.
HEALTHCARE_TARGETS = ["CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"]
HEALTHCARE_TABLES = ["PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS"]


def load_shipped(name: str):
    path = FILES / f"{name}.yaml"
    return blueprint_import(text=path.read_text(), filename=str(path))


def healthcare_spec_text(*, source: str = "BRONZE", target: str = "WAREHOUSE") -> str:
    """The demo's healthcare spec file with its source and target connections renamed to the tests' own."""
    text = HEALTHCARE_SPEC.read_text()
    return (text.replace("connection: HCLS_DEMO_1_SOURCES", f"connection: {source}")
            .replace("connection: HCLS_DEMO_1_TARGET", f"connection: {target}"))


@pytest.fixture
def healthcare(db):
    """The healthcare pipeline's blueprint: the generic build-marts (launched with ``healthcare_spec``)."""
    return load_shipped("build-marts")


@pytest.fixture
def healthcare_spec():
    """The healthcare spec file, validated, naming the BRONZE and WAREHOUSE connections."""
    return load_spec_text(healthcare_spec_text(), source="spec file project.yml")


def make_sqlite(path: Path, statements: list[str]) -> Path:
    db = sqlite3.connect(path)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()
    return path


@pytest.fixture
def bronze(db, tmp_path):
    """A source connection: bronze claims (5 lines of 3 claims), providers and patients."""
    path = make_sqlite(tmp_path / "bronze.sqlite3", [
        "CREATE TABLE claims (claim_id TEXT, line INTEGER, amount REAL)",
        "INSERT INTO claims VALUES ('c1', 1, 10), ('c1', 2, 5), ('c2', 1, 7), ('c3', 1, 1), ('c3', 2, 2)",
        "CREATE TABLE providers (provider_id TEXT)",
        "INSERT INTO providers VALUES ('p1'), ('p2')",
        "CREATE TABLE patients (patient_id TEXT)",
    ])
    return leads_connection(name="BRONZE", engine="sqlite", location=str(path), purpose="source")


@pytest.fixture
def warehouse(db, tmp_path):
    """A target connection holding the three summary tables; CLAIM_SUMMARY has one row per claim (3)."""
    path = make_sqlite(tmp_path / "warehouse.sqlite3", [
        "CREATE TABLE claim_summary (claim_id TEXT, total REAL)",
        "INSERT INTO claim_summary VALUES ('c1', 15), ('c2', 7), ('c3', 3)",
        "CREATE TABLE provider_summary (provider_id TEXT)",
        "CREATE TABLE patient_summary (patient_id TEXT)",
    ])
    return leads_connection(name="WAREHOUSE", engine="sqlite", location=str(path), purpose="target")


@pytest.fixture
def validation_db(db, tmp_path):
    path = make_sqlite(tmp_path / "validation.sqlite3", ["CREATE TABLE ok (x INTEGER)"])
    return leads_connection(name="VALIDATION", engine="sqlite", location=str(path), purpose="validation")


@pytest.fixture
def connections(bronze, warehouse, validation_db):
    return {"source": bronze, "target": warehouse, "validation": validation_db}


@pytest.fixture
def pg_source(db):
    """A PostgreSQL connection ``PG`` on a scratch schema of the local server's ``test`` database (not the
    platform's own), holding the same five claim lines as ``bronze``; dropped afterwards."""
    import uuid
    from urllib.parse import quote

    import psycopg

    server = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        admin = psycopg.connect(server, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    schema = f"genesis_chk_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    admin.execute(f'CREATE TABLE "{schema}".claims (claim_id TEXT, line INTEGER, amount REAL)')
    admin.execute(f"INSERT INTO \"{schema}\".claims VALUES ('c1', 1, 10), ('c1', 2, 5), ('c2', 1, 7), "  # noqa: S608
                  "('c3', 1, 1), ('c3', 2, 2)")
    try:
        connection = Connection.objects.create(
            name="PG", engine="postgresql", purpose="source",
            location=f"{server}?options={quote(f'-c search_path={schema}')}")
        connection.schema = schema
        yield connection
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
