"""The healthcare demo's bronze data: deterministic for a seed, realistic enough to map and validate.

The bronze schema is a contract other code and datasets rely on (its meaning: docs/spec-file.md)::

    PATIENTS(PATIENT_ID, FIRST_NAME, LAST_NAME, BIRTH_DATE 'YYYY-MM-DD', GENDER, ZIP_CODE, INSURANCE_TYPE)
    PROVIDERS(PROVIDER_ID, PROVIDER_NAME, SPECIALTY, NPI, STATE)
    CLAIMS(CLAIM_ID, PATIENT_ID, PROVIDER_ID, SERVICE_DATE 'YYYY-MM-DD', CLAIM_TYPE, STATUS, DIAGNOSIS_CODE)
    CLAIM_DETAILS(LINE_ID, CLAIM_ID, LINE_NUMBER, PROCEDURE_CODE, CHARGE_AMOUNT, PAID_AMOUNT, UNITS)

Three years of claims (2022-2024); denied (and pending) claims are paid 0; some claims have no lines; optional
fields (zip code, insurance type, specialty, NPI, state, diagnosis code, units) are sometimes null.
``rename`` produces variants with renamed columns, e.g. ``{"CLAIMS.SERVICE_DATE": "SVC_DT"}``.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb

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


@dataclass
class DemoData:
    """Generated rows per bronze table, in the schema's column order."""

    tables: dict[str, list[tuple]]
    seed: int
    claims: int

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def generate(*, claims: int = 20_000, seed: int = 42) -> DemoData:
    """The demo's rows for ``claims`` claims; the same seed and size always give the same rows."""
    if claims < 1:
        raise ValueError("claims must be at least 1")
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not security
    n_patients = max(20, claims // 8)
    n_providers = max(10, claims // 150)

    patients = []
    for pid in range(1, n_patients + 1):
        # Ages 0-95 on the first day of the data, so every age group occurs.
        birth = FIRST_DAY - timedelta(days=rng.randint(0, 95 * 365))
        patients.append((
            pid, rng.choice(_FIRST), rng.choice(_LAST), birth.isoformat(), rng.choice(["F", "M", "M", "F", "U"]),
            None if rng.random() < 0.04 else f"{rng.randint(1000, 99950):05d}",
            None if rng.random() < 0.03 else _weighted(rng, _INSURANCE),
        ))

    providers = []
    for prid in range(1, n_providers + 1):
        specialty = rng.choice(_SPECIALTIES)
        name = (f"Dr. {rng.choice(_FIRST)} {rng.choice(_LAST)}" if rng.random() < 0.7
                else f"{rng.choice(_LAST)} {specialty} Clinic")
        providers.append((
            prid, name, None if rng.random() < 0.05 else specialty,
            None if rng.random() < 0.05 else str(1_000_000_000 + rng.randint(0, 899_999_999)),
            None if rng.random() < 0.03 else rng.choice(_STATES),
        ))

    span = (LAST_DAY - FIRST_DAY).days
    claim_rows, line_rows = [], []
    line_id = 0
    for cid in range(1, claims + 1):
        status = _weighted(rng, _STATUSES)
        claim_rows.append((
            cid, rng.randint(1, n_patients), rng.randint(1, n_providers),
            (FIRST_DAY + timedelta(days=rng.randint(0, span))).isoformat(), _weighted(rng, _CLAIM_TYPES), status,
            None if rng.random() < 0.05 else rng.choice(_DIAGNOSES),
        ))
        n_lines = 0 if rng.random() < 0.04 else rng.choices([1, 2, 3, 4, 5], weights=[35, 30, 18, 10, 7])[0]
        for number in range(1, n_lines + 1):
            line_id += 1
            charge = round(rng.uniform(15, 2500), 2)
            paid = round(charge * rng.uniform(0.45, 0.95), 2) if status == "PAID" else 0.0
            line_rows.append((
                line_id, cid, number, rng.choice(_PROCEDURES), charge, paid,
                None if rng.random() < 0.05 else rng.choices([1, 2, 3, 4], weights=[70, 15, 10, 5])[0],
            ))
    return DemoData(
        tables={"PATIENTS": patients, "PROVIDERS": providers, "CLAIMS": claim_rows, "CLAIM_DETAILS": line_rows},
        seed=seed, claims=claims,
    )


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


def index_statements(rename: dict[str, str] | None = None, *, quote: str = "") -> list[str]:
    """CREATE INDEX for ``INDEXES``, run after the rows are in (faster than keeping them up to date row by row)."""
    statements = []
    for table, column in INDEXES:
        name = dict(zip((c for c, _ in SCHEMA[table]), column_names(table, rename), strict=True))[column]
        statements.append(f"CREATE INDEX {quote}{table.lower()}_{column.lower()}_idx{quote} "
                          f"ON {quote}{table}{quote} ({quote}{name}{quote})")
    return statements


def write_sqlite(path: Path | str, data: DemoData, *, rename: dict[str, str] | None = None) -> Path:
    """Write the bronze tables into a new SQLite file (an existing file is replaced)."""
    _check_rename(rename)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        with db:
            for statement in create_statements(rename):
                db.execute(statement)
            for table, rows in data.tables.items():
                marks = ", ".join("?" * len(SCHEMA[table]))
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608 - fixed names
            for statement in index_statements(rename):
                db.execute(statement)
            db.execute("ANALYZE")
    finally:
        db.close()
    tmp.replace(path)
    return path


def write_postgresql(connection, data: DemoData, *, rename: dict[str, str] | None = None) -> None:
    """Write the bronze tables through an open psycopg connection (into its current schema), quoted upper-case
    names so they read the same as on SQLite."""
    _check_rename(rename)
    with connection.cursor() as cursor:
        for statement in create_statements(rename, quote='"'):
            cursor.execute(statement.replace("DECIMAL(12,2)", "NUMERIC(12,2)"))
        for table, rows in data.tables.items():
            names = ", ".join(f'"{n}"' for n in column_names(table, rename))
            with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        for statement in index_statements(rename, quote='"'):
            cursor.execute(statement)
        for table in data.tables:
            cursor.execute(f'ANALYZE "{table}"')
    connection.commit()


def write_duckdb(path: Path | str, data: DemoData, *, rename: dict[str, str] | None = None) -> Path:
    """Write the bronze tables into a new DuckDB file (an existing file is replaced), with the same declared types as
    on SQLite. The rows go through a scratch CSV file and DuckDB's built-in CSV reader (no extension, no download):
    inserting millions of rows one by one from Python would take minutes."""
    _check_rename(rename)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = duckdb.connect(str(tmp), config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        for statement in create_statements(rename, quote='"'):
            db.execute(statement)
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            for table, rows in data.tables.items():
                csv_path = Path(scratch) / f"{table}.csv"
                with csv_path.open("w", newline="") as handle:
                    writer = csv.writer(handle)
                    writer.writerows(tuple(r"\N" if v is None else v for v in row) for row in rows)
                db.execute(f"COPY \"{table}\" FROM '{csv_path}' (FORMAT csv, HEADER false, NULLSTR '\\N')")  # noqa: S608
        db.execute("CHECKPOINT")
    finally:
        db.close()
    tmp.replace(path)
    return path
