"""The healthcare demo's bronze data: deterministic for a seed, realistic enough to map and validate.

The bronze schema is a contract other code and datasets rely on (its meaning: docs/spec-file.md)::

    PATIENTS(PATIENT_ID, FIRST_NAME, LAST_NAME, BIRTH_DATE 'YYYY-MM-DD', GENDER, ZIP_CODE, INSURANCE_TYPE)
    PROVIDERS(PROVIDER_ID, PROVIDER_NAME, SPECIALTY, NPI, STATE)
    CLAIMS(CLAIM_ID, PATIENT_ID, PROVIDER_ID, SERVICE_DATE 'YYYY-MM-DD', CLAIM_TYPE, STATUS, DIAGNOSIS_CODE)
    CLAIM_DETAILS(LINE_ID, CLAIM_ID, LINE_NUMBER, PROCEDURE_CODE, CHARGE_AMOUNT, PAID_AMOUNT, UNITS)

Three years of claims (2022-2024); denied (and pending) claims are paid 0; some claims have no lines; optional
fields (zip code, insurance type, specialty, NPI, state, diagnosis code, units) are sometimes null.
``rename`` produces variants with renamed columns, e.g. ``{"CLAIMS.SERVICE_DATE": "SVC_DT"}``.
``stream`` yields the rows in bounded chunks and the writers take them as they come, so millions of claims are
written without holding them in memory; ``generate`` gathers the same rows for tests and small demos.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import tempfile
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import duckdb

from agents.connectors.duckdb import duckdb_config

SCHEMA: dict[str, list[tuple[str, str]]] = {
    "PATIENTS": [
        ("PATIENT_ID", "INTEGER PRIMARY KEY"), ("FIRST_NAME", "TEXT NOT NULL"), ("LAST_NAME", "TEXT NOT NULL"),
        ("BIRTH_DATE", "TEXT NOT NULL"), ("GENDER", "TEXT"), ("ZIP_CODE", "TEXT"), ("INSURANCE_TYPE", "TEXT"),
    ],
    "PROVIDERS": [
        ("PROVIDER_ID", "INTEGER PRIMARY KEY"), ("PROVIDER_NAME", "TEXT NOT NULL"), ("SPECIALTY", "TEXT"),
        ("NPI", "TEXT"), ("STATE", "TEXT"),
    ],
    "CLAIMS": [
        ("CLAIM_ID", "INTEGER PRIMARY KEY"), ("PATIENT_ID", "INTEGER NOT NULL"), ("PROVIDER_ID", "INTEGER NOT NULL"),
        ("SERVICE_DATE", "TEXT NOT NULL"), ("CLAIM_TYPE", "TEXT NOT NULL"), ("STATUS", "TEXT NOT NULL"),
        ("DIAGNOSIS_CODE", "TEXT"),
    ],
    "CLAIM_DETAILS": [
        ("LINE_ID", "INTEGER PRIMARY KEY"), ("CLAIM_ID", "INTEGER NOT NULL"), ("LINE_NUMBER", "INTEGER NOT NULL"),
        ("PROCEDURE_CODE", "TEXT NOT NULL"), ("CHARGE_AMOUNT", "DECIMAL(12,2) NOT NULL"),
        ("PAID_AMOUNT", "DECIMAL(12,2) NOT NULL"), ("UNITS", "INTEGER"),
    ],
}
# Indexes a source system keeps: the claim lines' foreign key and the claims' service date (a month's backfill
# reads that month's claims and their lines through them).
INDEXES: list[tuple[str, str]] = [("CLAIM_DETAILS", "CLAIM_ID"), ("CLAIMS", "SERVICE_DATE")]
FIRST_DAY = date(2022, 1, 1)
LAST_DAY = date(2024, 12, 31)

_FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
          "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
          "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sofia", "Mark", "Ashley", "Wei", "Aisha", "Kevin",
          "Emily", "Jose", "Olivia", "Noah", "Emma", "Liam", "Ava", "Mateo", "Mia"]
_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
         "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
         "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
         "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Flores", "Green"]
_SPECIALTIES = ["Family Medicine", "Internal Medicine", "Pediatrics", "Cardiology", "Orthopedics", "Dermatology",
                "Neurology", "Oncology", "Radiology", "Emergency Medicine", "Psychiatry", "Obstetrics"]
_STATES = ["CA", "TX", "NY", "FL", "IL", "PA", "OH", "GA", "NC", "MI", "WA", "AZ"]
_INSURANCE = [("Commercial", 45), ("Medicare", 25), ("Medicaid", 20), ("Self-Pay", 5), ("Tricare", 5)]
_CLAIM_TYPES = [("PROFESSIONAL", 55), ("INSTITUTIONAL", 25), ("PHARMACY", 12), ("DENTAL", 8)]
_STATUSES = [("PAID", 80), ("DENIED", 12), ("PENDING", 8)]
_DIAGNOSES = ["E11.9", "I10", "J06.9", "M54.5", "Z00.00", "K21.9", "F41.1", "J45.909", "N39.0", "R51.9",
              "E78.5", "M17.11", "G43.909", "L40.0", "C50.911", "O80", "S93.401A", "H10.9"]
_PROCEDURES = ["99213", "99214", "99203", "93000", "80053", "85025", "71046", "97110", "90471", "36415",
               "99284", "20610", "11042", "96372", "81001", "70450", "J1100", "G0439"]
_GENDERS = ["F", "M", "M", "F", "U"]
_LINE_COUNTS = [(1, 35), (2, 30), (3, 18), (4, 10), (5, 7)]
_UNITS = [(1, 70), (2, 15), (3, 10), (4, 5)]


# Rows per chunk the generator yields: memory stays bounded whatever the number of claims.
CHUNK_ROWS = 50_000

Chunk = tuple[str, list[tuple]]


@dataclass
class DemoData:
    """Generated rows per bronze table, in the schema's column order (all in memory: for tests and small demos;
    ``stream`` gives the same rows chunk by chunk)."""

    tables: dict[str, list[tuple]]
    seed: int
    claims: int

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator[Chunk]:
        for table, rows in self.tables.items():
            for start in range(0, len(rows), size):
                yield table, rows[start:start + size]


def _picker(pairs: list[tuple[Any, int]]) -> Callable[[float], Any]:
    """``pick(rng.random())`` is ``rng.choices(values, weights=weights)[0]`` (the same draw, the same value: what
    ``Random.choices`` does for one value), without rebuilding the cumulative weights on every call."""
    values = [value for value, _ in pairs]
    cumulative = list(accumulate(weight for _, weight in pairs))
    total, hi = cumulative[-1] + 0.0, len(values) - 1
    return lambda draw: values[bisect(cumulative, draw * total, 0, hi)]


def generate(*, claims: int = 20_000, seed: int = 42) -> DemoData:
    """The demo's rows for ``claims`` claims, all in memory; the same seed and size always give the same rows."""
    tables: dict[str, list[tuple]] = {table: [] for table in SCHEMA}
    for table, rows in stream(claims=claims, seed=seed):
        tables[table].extend(rows)
    return DemoData(tables=tables, seed=seed, claims=claims)


def stream(*, claims: int = 20_000, seed: int = 42, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The demo's rows as ``(table, rows)`` chunks of at most ``chunk_rows`` rows: all of PATIENTS, then all of
    PROVIDERS, then CLAIMS and CLAIM_DETAILS chunks interleaved (each table's chunks in key order). Concatenated per
    table they are exactly ``generate``'s rows, whatever the chunk size: one random stream drawn in one order."""
    if claims < 1:
        raise ValueError("claims must be at least 1")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not security
    draw, choice, randint = rng.random, rng.choice, rng.randint
    n_patients = max(20, claims // 8)
    n_providers = max(10, claims // 150)
    insurance, claim_type, status_of = _picker(_INSURANCE), _picker(_CLAIM_TYPES), _picker(_STATUSES)
    line_count, units = _picker(_LINE_COUNTS), _picker(_UNITS)

    patients: list[tuple] = []
    for pid in range(1, n_patients + 1):
        # Ages 0-95 on the first day of the data, so every age group occurs.
        birth = FIRST_DAY - timedelta(days=randint(0, 95 * 365))
        patients.append((
            pid, choice(_FIRST), choice(_LAST), birth.isoformat(), choice(_GENDERS),
            None if draw() < 0.04 else f"{randint(1000, 99950):05d}",
            None if draw() < 0.03 else insurance(draw()),
        ))
        if len(patients) == chunk_rows:
            yield "PATIENTS", patients
            patients = []
    if patients:
        yield "PATIENTS", patients

    providers: list[tuple] = []
    for prid in range(1, n_providers + 1):
        specialty = choice(_SPECIALTIES)
        name = (f"Dr. {choice(_FIRST)} {choice(_LAST)}" if draw() < 0.7
                else f"{choice(_LAST)} {specialty} Clinic")
        providers.append((
            prid, name, None if draw() < 0.05 else specialty,
            None if draw() < 0.05 else str(1_000_000_000 + randint(0, 899_999_999)),
            None if draw() < 0.03 else choice(_STATES),
        ))
        if len(providers) == chunk_rows:
            yield "PROVIDERS", providers
            providers = []
    if providers:
        yield "PROVIDERS", providers

    span = (LAST_DAY - FIRST_DAY).days
    days = [(FIRST_DAY + timedelta(days=offset)).isoformat() for offset in range(span + 1)]
    claim_rows: list[tuple] = []
    line_rows: list[tuple] = []
    line_id = 0
    for cid in range(1, claims + 1):
        status = status_of(draw())
        claim_rows.append((
            cid, randint(1, n_patients), randint(1, n_providers), days[randint(0, span)], claim_type(draw()), status,
            None if draw() < 0.05 else choice(_DIAGNOSES),
        ))
        if len(claim_rows) == chunk_rows:
            yield "CLAIMS", claim_rows
            claim_rows = []
        n_lines = 0 if draw() < 0.04 else line_count(draw())
        for number in range(1, n_lines + 1):
            line_id += 1
            charge = round(rng.uniform(15, 2500), 2)
            paid = round(charge * rng.uniform(0.45, 0.95), 2) if status == "PAID" else 0.0
            line_rows.append((
                line_id, cid, number, choice(_PROCEDURES), charge, paid, None if draw() < 0.05 else units(draw()),
            ))
            if len(line_rows) == chunk_rows:
                yield "CLAIM_DETAILS", line_rows
                line_rows = []
    if claim_rows:
        yield "CLAIMS", claim_rows
    if line_rows:
        yield "CLAIM_DETAILS", line_rows


def column_names(table: str, rename: dict[str, str] | None = None) -> list[str]:
    rename = {k.upper(): v for k, v in (rename or {}).items()}
    return [rename.get(f"{table}.{name}", name) for name, _ in SCHEMA[table]]


def _check_rename(rename: dict[str, str] | None) -> None:
    for key in rename or {}:
        table, _, column = key.upper().partition(".")
        if table not in SCHEMA or column not in {c for c, _ in SCHEMA[table]}:
            raise ValueError(f"rename: {key!r} is not a bronze TABLE.COLUMN")


def create_statements(rename: dict[str, str] | None = None, *, quote: str = "") -> list[str]:
    statements = []
    for table, columns in SCHEMA.items():
        names = column_names(table, rename)
        body = ", ".join(f"{quote}{name}{quote} {ctype}" for name, (_, ctype) in zip(names, columns, strict=True))
        statements.append(f"CREATE TABLE {quote}{table}{quote} ({body})")
    return statements


def _primary_keys(rename: dict[str, str] | None = None) -> dict[str, str]:
    """Each bronze table's primary key column (under its new name when renamed)."""
    return {table: name for table, columns in SCHEMA.items()
            for name, (_, ctype) in zip(column_names(table, rename), columns, strict=True) if "PRIMARY KEY" in ctype}


def index_statements(rename: dict[str, str] | None = None, *, quote: str = "") -> list[str]:
    """CREATE INDEX for ``INDEXES``, run after the rows are in (faster than keeping them up to date row by row)."""
    statements = []
    for table, column in INDEXES:
        name = dict(zip((c for c, _ in SCHEMA[table]), column_names(table, rename), strict=True))[column]
        statements.append(f"CREATE INDEX {quote}{table.lower()}_{column.lower()}_idx{quote} "
                          f"ON {quote}{table}{quote} ({quote}{name}{quote})")
    return statements


Rows = DemoData | Iterable[Chunk]


def _chunks(data: Rows) -> Iterator[Chunk]:
    """The ``(table, rows)`` chunks of ``data``: a ``DemoData`` or chunks as ``stream`` yields them, consumed once."""
    return data.chunks() if isinstance(data, DemoData) else iter(data)


def write_sqlite(path: Path | str, data: Rows, *, rename: dict[str, str] | None = None) -> Path:
    """Write the bronze tables into a new SQLite file (an existing file is replaced), chunk by chunk: one transaction
    per chunk, the indexes made once the rows are in. The file is built aside and moved in place at the end, so the
    bulk-load settings (no rollback journal, no fsync) cannot leave a half-written file behind."""
    _check_rename(rename)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp, isolation_level=None)  # transactions are explicit below
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache, for the index builds
        for statement in create_statements(rename):
            db.execute(statement)
        inserts = {table: f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})"  # noqa: S608 - fixed names
                   for table, columns in SCHEMA.items()}
        for table, rows in _chunks(data):
            db.execute("BEGIN")
            db.executemany(inserts[table], rows)
            db.execute("COMMIT")
        db.execute("BEGIN")
        for statement in index_statements(rename):
            db.execute(statement)
        db.execute("ANALYZE")
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA synchronous = FULL")
    finally:
        db.close()
    tmp.replace(path)
    return path


def write_postgresql(connection, data: Rows, *, rename: dict[str, str] | None = None) -> None:
    """Write the bronze tables through an open psycopg connection (into its current schema), quoted upper-case
    names so they read the same as on SQLite: one ``COPY`` per chunk, one transaction, the indexes made last."""
    _check_rename(rename)
    copies = {table: f'COPY "{table}" ({", ".join(map(_quoted, column_names(table, rename)))}) FROM STDIN'
              for table in SCHEMA}
    with connection.cursor() as cursor:
        for statement in create_statements(rename, quote='"'):
            cursor.execute(statement.replace("DECIMAL(12,2)", "NUMERIC(12,2)"))
        for table, rows in _chunks(data):
            with cursor.copy(copies[table]) as copy:
                for row in rows:
                    copy.write_row(row)
        for statement in index_statements(rename, quote='"'):
            cursor.execute(statement)
        for table in SCHEMA:
            cursor.execute(f'ANALYZE "{table}"')
    connection.commit()


def _quoted(name: str) -> str:
    return f'"{name}"'


# Rows a DuckDB table's scratch CSV file gathers before DuckDB reads it in (one COPY statement per batch).
DUCKDB_BATCH_ROWS = 500_000


def write_duckdb(path: Path | str, data: Rows, *, rename: dict[str, str] | None = None) -> Path:
    """Write the bronze tables into a new DuckDB file (an existing file is replaced), with the same declared types as
    on SQLite. The rows go through scratch CSV files next to it, read by DuckDB's built-in CSV reader (no extension,
    nothing downloaded) in batches of ``DUCKDB_BATCH_ROWS`` rows: inserting millions of rows one by one from Python
    would take minutes. A null is an empty field (no generated text value is empty)."""
    _check_rename(rename)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = duckdb.connect(str(tmp), config=duckdb_config())
    try:
        # The primary keys are added once the rows are in: one index build instead of an insert per row (about 3x
        # faster, and the check that the keys are unique is the same).
        for statement in create_statements(rename, quote='"'):
            db.execute(statement.replace(" PRIMARY KEY", ""))
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            batches = {table: _CsvBatch(Path(scratch) / f"{table}.csv") for table in SCHEMA}
            for table, rows in _chunks(data):
                batch = batches[table]
                batch.add(rows)
                if batch.rows >= DUCKDB_BATCH_ROWS:
                    batch.load_into(db, table)
            for table, batch in batches.items():
                batch.load_into(db, table)
                batch.handle.close()
        for table, key in _primary_keys(rename).items():
            db.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY ("{key}")')
        db.execute("CHECKPOINT")
    finally:
        db.close()
    tmp.replace(path)
    return path


class _CsvBatch:
    """A scratch CSV file of rows waiting to be copied into one DuckDB table."""

    def __init__(self, path: Path) -> None:
        self.path, self.rows = path, 0
        self.handle = path.open("w", newline="")
        self.writer = csv.writer(self.handle)

    def add(self, rows: list[tuple]) -> None:
        self.writer.writerows(rows)
        self.rows += len(rows)

    def load_into(self, db: duckdb.DuckDBPyConnection, table: str) -> None:
        """Copy the gathered rows into ``table`` and start an empty batch."""
        if self.rows:
            self.handle.flush()
            db.execute(f"COPY \"{table}\" FROM '{self.path}' (FORMAT csv, HEADER false, NULLSTR '')")  # noqa: S608
        self.handle.seek(0)
        self.handle.truncate()
        self.rows = 0
