"""Division means the same on every engine: SQLite and PostgreSQL divide two integers as integers (7 / 2 = 3),
DuckDB as decimals (3.5). The same spec, mapped on a SQLite, a DuckDB and a PostgreSQL copy of one source, gives the
same numbers on the three, equal to a computation written here; a fraction headed for an integer column is refused
unless the spec says how to make a whole number of it."""

from __future__ import annotations

import copy
import sqlite3
import uuid
from collections import defaultdict
from decimal import Decimal
from urllib.parse import quote

import duckdb
import psycopg
import pytest

from agents.access import adapter_for
from agents.models import Connection
from pipeline.expressions import ExpressionError, explicit_division, parse_expression
from pipeline.mapping import Catalog, TargetMapper
from pipeline.profiler import profile_source
from tests.pipeline import sources
from tests.pipeline.conftest import PG_SERVER

TYPES = {
    "Member": {"MemberId": "INTEGER", "FullName": "TEXT", "JoinedOn": "TEXT"},
    "Loan": {"LoanId": "INTEGER", "MemberId": "INTEGER", "BorrowedOn": "TEXT", "DueOn": "TEXT"},
    "Fine": {"FineId": "INTEGER", "LoanId": "INTEGER", "Kind": "TEXT", "AmountCents": "INTEGER"},
}
FINES = {
    "name": "MEMBER_FINES", "grain": {"entity": "member"},
    "columns": [
        {"name": "MEMBER_ID", "type": "INTEGER", "description": "The member."},
        # integer / integer, and a member without fines divides by zero
        {"name": "AVERAGE_FINE", "type": "DECIMAL(12,4)",
         "expression": "SUM(Fine.AmountCents) / COUNT(Fine.FineId)"},
        # integer / integer literal
        {"name": "FINE_PER_WEEK", "type": "DECIMAL(12,4)", "expression": "SUM(Fine.AmountCents) / 7"},
        {"name": "ROUNDED_AVERAGE", "type": "INTEGER",
         "expression": "ROUND(SUM(Fine.AmountCents) / COUNT(Fine.FineId))"},
        {"name": "LOANS_PER_FINE", "type": "DECIMAL(12,4)", "expression": "COUNT(Loan.LoanId) / COUNT(Fine.FineId)"},
    ],
}
ANSWERS = {"MEMBER_ID": "Member.MemberId"}


def _rows(source, table):
    return [tuple(row[c] for c in TYPES[table]) for row in source.tables[table]]


@pytest.fixture
def library_everywhere(tmp_path):
    """The library source in SQLite, in a DuckDB file and in a scratch PostgreSQL schema (dropped afterwards)."""
    source = sources.library(tmp_path)
    duck_path = tmp_path / "library.duckdb"
    db = duckdb.connect(str(duck_path))
    for table, columns in TYPES.items():
        db.execute(f'CREATE TABLE "{table}" ({", ".join(f"{c} {t}" for c, t in columns.items())})')
        db.executemany(f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(columns))})',  # noqa: S608
                       _rows(source, table))
    db.close()
    connections = {
        "sqlite": Connection(name="LIB_SQLITE", engine="sqlite", location=str(source.path), purpose="source"),
        "duckdb": Connection(name="LIB_DUCK", engine="duckdb", location=str(duck_path), purpose="source"),
    }
    try:
        admin = psycopg.connect(PG_SERVER, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        admin = None
    schema = f"genesis_div_{uuid.uuid4().hex[:10]}"
    if admin is not None:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        with psycopg.connect(PG_SERVER, options=f"-c search_path={schema}") as conn:
            for table, columns in TYPES.items():
                body = ", ".join(f'"{c}" {t}' for c, t in columns.items())
                conn.execute(f'CREATE TABLE "{table}" ({body})')
                with conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy_in:
                    for row in _rows(source, table):
                        copy_in.write_row(row)
        connections["postgresql"] = Connection(
            name="LIB_PG", engine="postgresql", purpose="source",
            location=f"{PG_SERVER}?options={quote(f'-c search_path={schema}')}")
    try:
        yield source, connections
    finally:
        if admin is not None:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            admin.close()


def _plan(connection, target):
    with adapter_for(connection, mission=None) as adapter:
        catalog = Catalog(profile_source(adapter))
        content = TargetMapper(target=target, catalog=catalog, dialect=adapter.dialect, answers=ANSWERS).plan()
        result = adapter.query(content["sql"], limit=10_000)
    return content, {row[0]: [float(v) if isinstance(v, Decimal) else v for v in row[1:]] for row in result.rows}


def _close(a, b):
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-9 * max(1, abs(b)))


def test_the_same_spec_gives_the_same_numbers_on_sqlite_duckdb_and_postgresql(library_everywhere):
    source, connections = library_everywhere
    if "postgresql" not in connections:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    loans = {loan["LoanId"]: loan["MemberId"] for loan in source.tables["Loan"]}
    fines, loan_count = defaultdict(list), defaultdict(int)
    for fine in source.tables["Fine"]:
        fines[loans[fine["LoanId"]]].append(fine["AmountCents"])
    for member in loans.values():
        loan_count[member] += 1
    want = {}
    for member in (m["MemberId"] for m in source.tables["Member"]):
        amounts = fines[member]
        total = sum(amounts) if amounts else None
        average = total / len(amounts) if amounts else None
        want[member] = [average, total / 7 if amounts else None,
                        None if average is None else int(Decimal(average).quantize(Decimal(1), "ROUND_HALF_UP")),
                        # the loan count here is per (loan, fine) row of the member's fines: COUNT(Loan.LoanId)
                        # over the grain counts the member's loans; fines counted per member
                        loan_count[member] / len(amounts) if amounts else None]
    # Integer division would have lost these fractions: the source is such that it matters.
    assert any(v[0] is not None and v[0] != int(v[0]) for v in want.values())
    got = {engine: _plan(connection, FINES)[1] for engine, connection in connections.items()}
    for engine, rows in got.items():
        assert set(rows) == set(want), engine
        for member, values in want.items():
            assert all(_close(g, w) for g, w in zip(rows[member], values, strict=True)), (engine, member,
                                                                                          rows[member], values)


@pytest.mark.parametrize("engine", ["sqlite", "duckdb", "postgres"])
def test_a_written_division_of_two_integers_divides_as_decimals_and_by_zero_gives_null(engine):
    texts = ["7 / 2", "-7 / 2", "(7 / 2) / 2", "1 / 0", "7 / 2.0"]
    sql = "SELECT " + ", ".join(parse_expression(t, dialect=engine, path="x").sql(dialect=engine) for t in texts)
    if engine == "sqlite":
        db = sqlite3.connect(":memory:")
        row = db.execute(sql).fetchone()
        db.close()
    elif engine == "duckdb":
        db = duckdb.connect()
        row = db.execute(sql).fetchone()
        db.close()
    else:
        try:
            conn = psycopg.connect(PG_SERVER, connect_timeout=3)
        except psycopg.OperationalError:
            pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
        with conn:
            row = conn.execute(sql).fetchone()
    assert [None if v is None else float(v) for v in row] == [3.5, -3.5, 1.75, None, 3.5]


def test_making_division_explicit_is_idempotent():
    tree = parse_expression("SUM(a) / COUNT(b)", dialect="sqlite", path="x")
    once = tree.sql(dialect="sqlite")
    assert once == "CAST(SUM(a) AS REAL) / NULLIF(COUNT(b), 0)"
    assert explicit_division(tree, dialect="sqlite").sql(dialect="sqlite") == once
    assert parse_expression("a / 100", dialect="postgres", path="x").sql(dialect="postgres") == \
        "CAST(a AS DECIMAL) / 100"


@pytest.mark.parametrize(("column", "path", "hint"), [
    ({"name": "AVERAGE_FINE", "type": "INTEGER", "expression": "SUM(Fine.AmountCents) / COUNT(Fine.FineId)"},
     "targets.MEMBER_FINES.columns.AVERAGE_FINE.expression", "ROUND(...)"),
    ({"name": "AVERAGE_FINE", "type": "BIGINT", "expression": "CAST(SUM(Fine.AmountCents) / 3 AS INTEGER)"},
     "targets.MEMBER_FINES.columns.AVERAGE_FINE.expression", "ROUND(...)"),
    ({"name": "AVERAGE_FINE", "type": "INTEGER", "rule": {"avg": "fine amount cents"}},
     "targets.MEMBER_FINES.columns.AVERAGE_FINE.rule", "round: 0"),
    ({"name": "AVERAGE_FINE", "type": "INTEGER", "rule": {"sum": "fine amount cents", "divide": 100}},
     "targets.MEMBER_FINES.columns.AVERAGE_FINE.rule", "round: 0"),
    ({"name": "AVERAGE_FINE", "type": "INTEGER", "rule": {"sum": "fine amount cents", "divide": 100, "round": 2}},
     "targets.MEMBER_FINES.columns.AVERAGE_FINE.rule", "round: 0"),
])
def test_a_fraction_into_an_integer_column_is_refused_naming_the_spec_path(tmp_path, column, path, hint):
    source = sources.library(tmp_path)
    target = copy.deepcopy(FINES)
    target["columns"] = [target["columns"][0], column]
    connection = Connection(name="LIB", engine="sqlite", location=str(source.path), purpose="source")
    with pytest.raises(ExpressionError) as caught:
        _plan(connection, target)
    assert caught.value.path == path
    assert "SQLite truncates and PostgreSQL and DuckDB round" in caught.value.message and hint in caught.value.message


@pytest.mark.parametrize("column", [
    {"name": "AVERAGE_FINE", "type": "INTEGER", "rule": {"avg": "fine amount cents", "round": 0}},
    {"name": "AVERAGE_FINE", "type": "INTEGER", "rule": {"sum": "fine amount cents", "divide": 100, "round": 0}},
    {"name": "AVERAGE_FINE", "type": "INTEGER", "expression": "FLOOR(SUM(Fine.AmountCents) / 100)"},
    {"name": "AVERAGE_FINE", "type": "INTEGER", "expression": "COUNT(CASE WHEN Fine.AmountCents / 100 > 5 THEN 1 END)"},
])
def test_a_fraction_made_whole_goes_into_an_integer_column(tmp_path, column):
    source = sources.library(tmp_path)
    target = copy.deepcopy(FINES)
    target["columns"] = [target["columns"][0], column]
    connection = Connection(name="LIB", engine="sqlite", location=str(source.path), purpose="source")
    _content, rows = _plan(connection, target)
    assert rows and all(v[0] is None or float(v[0]).is_integer() for v in rows.values())
