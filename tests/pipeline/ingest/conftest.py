"""Ingest fixtures: files written by the tests themselves (CSV, Parquet by DuckDB, JSON, NDJSON) and a target
connection on each engine (a SQLite file, a DuckDB file, a scratch schema on the local PostgreSQL server, skipped
when it is down), with a reader that shows what landed."""

from __future__ import annotations

import csv
import json
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import psycopg
import pytest

from agents.models import Connection

PG_SERVER = "postgres://postgres@127.0.0.1:5432/test"

# A CSV with a header and mixed types: integers, text with a comma and quotes, decimals, dates, booleans, blanks.
CLAIMS_HEADER = ["claim_id", "member", "amount", "service_date", "paid"]
CLAIMS_ROWS = [
    [1, "Ada Lovelace", "120.50", "2024-01-05", "true"],
    [2, 'Grace "Amazing" Hopper, Jr.', "80.00", "2024-02-29", "false"],
    [3, "", "", "2024-03-31", ""],
    [4, "Édith Piaf", "1999.99", "2024-12-01", "true"],
]


def write_csv(path: Path, header: list[str], rows: list[list[Any]], *, delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def claims_csv(path: Path) -> Path:
    return write_csv(path, CLAIMS_HEADER, CLAIMS_ROWS)


def numbered_csv(path: Path, rows: int, *, bad_line: int | None = None, bad: str = "") -> Path:
    """``id,label,score``, ``rows`` rows; the physical line ``bad_line`` (the header is line 1) replaced by ``bad``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id,label,score\n")
        for i in range(1, rows + 1):
            handle.write(f"{bad}\n" if i + 1 == bad_line else f"{i},row {i},{i * 0.5}\n")
    return path


def write_parquet(path: Path, select_sql: str) -> Path:
    """A Parquet file written by DuckDB from ``select_sql``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as db:
        db.execute(f"COPY ({select_sql}) TO '{path}' (FORMAT parquet)")
    return path


MEMBERS = [
    {"member_id": 1, "name": "Ada", "score": 9.5, "tags": ["vip", "new"], "address": {"zip": "02139"},
     "joined": "2024-01-05T10:00:00"},
    {"member_id": 2, "name": "Grace", "score": None, "tags": [], "address": {"zip": "10001"},
     "joined": "2024-02-01T08:30:00"},
    {"member_id": 3, "name": "Alan", "score": 7.25, "tags": ["new"], "address": None,
     "joined": "2024-03-15T23:59:59"},
]


def write_json_array(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


def write_ndjson(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@dataclass
class Target:
    """A connection to load into and a way to look at what is there."""

    engine: str
    connection: Connection
    location: str
    schema: str = ""

    def _pg(self):
        return psycopg.connect(PG_SERVER, options=f"-c search_path={self.schema}")

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        if self.engine == "sqlite":
            with sqlite3.connect(self.location) as db:
                return db.execute(sql, params or []).fetchall()
        if self.engine == "duckdb":
            with duckdb.connect(self.location) as db:
                return db.execute(sql.replace("%s", "?"), params or []).fetchall()
        with self._pg() as db:
            return db.execute(sql, params or []).fetchall()

    def execute(self, sql: str) -> None:
        if self.engine == "sqlite":
            with sqlite3.connect(self.location) as db:
                db.execute(sql)
        elif self.engine == "duckdb":
            with duckdb.connect(self.location) as db:
                db.execute(sql)
        else:
            with self._pg() as db:
                db.execute(sql)

    def tables(self) -> list[str]:
        if self.engine == "sqlite":
            if not Path(self.location).exists():
                return []
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            return [r[0] for r in self.query(sql)]
        if self.engine == "duckdb":
            if not Path(self.location).exists():
                return []
            return [r[0] for r in self.query("SELECT table_name FROM information_schema.tables WHERE table_type = "
                                             "'BASE TABLE' ORDER BY table_name")]
        return [r[0] for r in self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                                         "AND table_type = 'BASE TABLE' ORDER BY table_name", [self.schema])]

    def rows(self, table: str, order_by: str = "1") -> list[tuple]:
        return self.query(f'SELECT * FROM "{table}" ORDER BY {order_by}')  # noqa: S608 - test helper

    def declared(self, table: str) -> dict[str, str]:
        if self.engine == "sqlite":
            return {r[1]: r[2] for r in self.query(f'PRAGMA table_info("{table}")')}
        if self.engine == "duckdb":
            return dict(self.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                                   "ORDER BY ordinal_position", [table]))
        return dict(self.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                               "AND table_name = %s ORDER BY ordinal_position", [self.schema, table]))


def sqlite_target(path: Path, name: str = "MY_FILES") -> Target:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = Connection.objects.create(name=name, engine="sqlite", location=str(path), purpose="source")
    return Target(engine="sqlite", connection=connection, location=str(path))


def duckdb_target(path: Path, name: str = "MY_FILES") -> Target:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = Connection.objects.create(name=name, engine="duckdb", location=str(path), purpose="source")
    return Target(engine="duckdb", connection=connection, location=str(path))


@pytest.fixture
def pg_scratch():
    """An empty scratch schema on the local PostgreSQL server; dropped afterwards. Skips when the server is down."""
    try:
        admin = psycopg.connect(PG_SERVER, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    schema = f"genesis_ingest_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def postgresql_target(schema: str, name: str = "MY_FILES") -> Target:
    location = f"{PG_SERVER}?options={quote(f'-c search_path={schema}')}"
    connection = Connection.objects.create(name=name, engine="postgresql", location=location, purpose="source")
    return Target(engine="postgresql", connection=connection, location=location, schema=schema)


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request, db, tmp_path) -> Target:
    """A source connection to load into, on SQLite, on DuckDB and on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_target(tmp_path / "target" / "mine.sqlite3")
    if request.param == "duckdb":
        return duckdb_target(tmp_path / "target" / "mine.duckdb")
    return postgresql_target(request.getfixturevalue("pg_scratch"))


@pytest.fixture
def pg_target(db, pg_scratch) -> Target:
    return postgresql_target(pg_scratch)
