"""The cross-engine reference check on the values whose SQL literals are written differently by type: floats,
decimals, integers stored as text, text that reads as a number, quotes, booleans and nulls, with the target on one
engine and the source on another (SQLite, DuckDB, PostgreSQL). Each case is checked on data: which target values are
reported missing, how many rows fail, which rows are sampled, the same whether the target's values are read a page
of two at a time (keyset bounds written as literals) or all at once, and the values reported missing are those whose
literal the source database, asked directly, finds in no row. The tests at the end are a float alone in a PostgreSQL
real column, looked up and sampled."""

import sqlite3
import struct
from contextlib import ExitStack
from decimal import Decimal
from urllib.parse import quote

import duckdb
import psycopg
import pytest

from agents.access import adapter_for
from agents.connectors.base import ConnectorError
from agents.models import Connection
from pipeline.dbt.spec import target_from_dict
from pipeline.quality import checks
from pipeline.quality.checks import check_reference
from tests.pipeline.conftest import PG_SERVER, pg_scratch_schema
from tests.pipeline.test_quality_checks import write_sqlite

# The column type on each engine, by a short name.
TYPES = {
    "float": {"sqlite": "REAL", "duckdb": "DOUBLE", "postgresql": "double precision"},
    "decimal": {"sqlite": "NUMERIC(10,2)", "duckdb": "DECIMAL(10,2)", "postgresql": "numeric(10,2)"},
    "text": {"sqlite": "TEXT", "duckdb": "VARCHAR", "postgresql": "text"},
    "integer": {"sqlite": "INTEGER", "duckdb": "INTEGER", "postgresql": "integer"},
    "boolean": {"sqlite": "BOOLEAN", "duckdb": "BOOLEAN", "postgresql": "boolean"},
    "real": {"sqlite": "REAL", "duckdb": "FLOAT", "postgresql": "real"},
    "blob": {"sqlite": "BLOB", "duckdb": "BLOB", "postgresql": "bytea"},
}

# (target column type, target values, source column type, source values, family, the values reported missing, or
# by engine: "target>source", the target's, ">source" (the source's), "default"; a text is the lookup's error):
# every target also holds two nulls, which are never reported.
CASES = {
    "floats": ("float", [1.5, 2.25, 0.1, -3.0, 1e20], "float", [1.5, 0.1, -3.0, 1e20], "numeric", ["2.25"]),
    "decimals": ("decimal", [Decimal("1.50"), Decimal("2.25"), Decimal("10.00")], "decimal",
                 [Decimal("1.5"), Decimal("10")], "numeric", ["2.25"]),
    # The source finds 0.10 and returns it as it holds it (0.1 as a float, or as a decimal); the check compares the
    # two by their decimal value, which Python's == does not for a Decimal and a float that is not exactly it.
    "decimals in a float column": ("decimal", [Decimal("1.50"), Decimal("0.10"), Decimal("2.25")], "float",
                                   [1.5, 0.1], "numeric", ["2.25"]),
    "floats in a decimal column": ("float", [1.5, 0.1, 2.25], "decimal", [Decimal("1.5"), Decimal("0.1")],
                                   "numeric", ["2.25"]),
    # A text that reads as a number is looked up as that number, and found when the source holds it (12, 007, " 5 ",
    # 1e1 and 12.0 alike); one that does not read as a number is not looked up.
    "integers stored as text": ("text", ["12", "007", " 5 ", "1e1", "x1", "12.0"], "integer", [12, 7, 5, 10],
                                "integer", ["x1"]),
    "a number looked up in text": ("integer", [12, 7, 100], "text", ["12", "07", "100.0"], "text", ["100", "7"]),
    "a float looked up in text": ("float", [1.5, 2.0], "text", ["1.5", "2"], "text", ["2.0"]),
    "quotes in text": ("text", ["O'Hara", 'say "hi"', "back\\slash", "it''s", "');--"], "text",
                       ["O'Hara", 'say "hi"', "back\\slash", "');--"], "text", ["it''s"]),
    # SQLite's booleans are 1 and 0, looked up in PostgreSQL's as TRUE and FALSE.
    "booleans": ("boolean", [True, False], "boolean", [True], "boolean", {"sqlite": ["0"], "default": ["False"]}),
    # A number looked up in booleans: 1 is true, 0 false, and no boolean is 2.
    "integers looked up in booleans": ("integer", [1, 0, 2], "boolean", [True], "boolean", ["0", "2"]),
    # A boolean never equals a number; SQLite has no booleans (it stores 1 and 0), which do.
    "booleans looked up in integers": ("boolean", [True, False], "integer", [1, 0], "integer",
                                       {"sqlite": [], "default": ["False", "True"]}),
    # A boolean looked up in text is its Python name.
    "booleans looked up in text": ("boolean", [True, False], "text", ["True", "false"], "text",
                                   {"sqlite": ["0", "1"], "default": ["False"]}),
    # DuckDB reads a FLOAT's 1.1 as 1.100000023841858, which SQLite's REAL (a double holding 1.1) lacks, while
    # PostgreSQL's real reads that literal as its own 1.1; a DuckDB FLOAT holds another engine's 1.1 too.
    "floats in a real column": ("real", [1.1, 2.5], "real", [1.1], "numeric",
                                {"duckdb>sqlite": ["1.100000023841858", "2.5"], "default": ["2.5"]}),
    # A float written with an exponent types DuckDB's whole list DOUBLE, where a FLOAT's 1e20 is not 1e+20, nor its
    # 1.1 the literal 1.1: such floats are looked up apart from the others, and 1.1 is found as when alone.
    "floats of both notations in a real column": ("real", [1.1, 1e20, 2.5], "real", [1.1, 1e20], "numeric",
                                                  {"duckdb>sqlite": ["1.0000000200408773e+20", "1.100000023841858",
                                                                     "2.5"],
                                                   ">duckdb": ["1e+20", "2.5"], "default": ["2.5"]}),
    # NaN and the infinities are never written bare (SQL would read a column's name): an infinity is found where the
    # source holds it (SQLite writes it 9e999, PostgreSQL quoted as its column's type); a NaN (SQLite holds none:
    # it stores NULL) and, on DuckDB, any of them are reported missing, never silently found.
    "infinities and NaN": ("float", [1.5, float("inf"), float("-inf"), float("nan")], "float",
                           [1.5, float("inf")], "numeric",
                           {"sqlite>sqlite": ["-inf"], "sqlite>postgresql": ["-inf"], "sqlite": ["-inf", "inf"],
                            ">sqlite": ["-inf", "nan"], ">postgresql": ["-inf", "nan"],
                            "default": ["-inf", "inf", "nan"]}),
    # A blob is looked up (and sampled) as each engine writes binary data; the detail names it as Python writes it.
    "blobs": ("blob", [b"\x00", b"ab"], "blob", [b"ab"], "unknown", ["b'\\x00'"]),
}

# A PostgreSQL connection is compared with the platform's own database when it opens.
PG = (pytest.mark.postgres, pytest.mark.django_db)
PAIRS = [("sqlite", "duckdb"), ("duckdb", "sqlite"),
         pytest.param("postgresql", "sqlite", marks=PG),
         pytest.param("sqlite", "postgresql", marks=PG),
         pytest.param("postgresql", "duckdb", marks=PG),
         pytest.param("duckdb", "postgresql", marks=PG)]


class Place:
    """Where each engine's tables of one test go: a SQLite file, a DuckDB file, a PostgreSQL scratch schema."""

    def __init__(self, tmp_path, stack: ExitStack):
        self.tmp_path, self.stack, self.schema = tmp_path, stack, None

    def table(self, engine: str, role: str, name: str, columns: list[tuple[str, str]], rows: list[tuple]):
        names = ", ".join(f'"{n}" {t}' for n, t in columns)
        marks = ", ".join("?" for _ in columns)
        if engine == "sqlite":
            path = self.tmp_path / f"{role}.sqlite3"
            write_sqlite(path, [f'CREATE TABLE "{name}" ({names})'])
            db = sqlite3.connect(path)
            with db:
                db.executemany(f'INSERT INTO "{name}" VALUES ({marks})',  # noqa: S608 - a test's own table
                               [tuple(str(v) if isinstance(v, Decimal) else v for v in row) for row in rows])
            db.close()
            return Connection(name=role, engine="sqlite", location=str(path))
        if engine == "duckdb":
            path = self.tmp_path / f"{role}.duckdb"
            db = duckdb.connect(str(path))
            db.execute(f'CREATE TABLE "{name}" ({names})')
            db.executemany(f'INSERT INTO "{name}" VALUES ({marks})', rows)  # noqa: S608 - a test's own table
            db.close()
            return Connection(name=role, engine="duckdb", location=str(path))
        if self.schema is None:
            self.admin, self.schema = self.stack.enter_context(pg_scratch_schema("genesis_literals"))
        self.admin.execute(f'CREATE TABLE "{self.schema}"."{name}" ({names})')
        with self.admin.cursor() as cursor:
            cursor.executemany(f'INSERT INTO "{self.schema}"."{name}" VALUES ({marks.replace("?", "%s")})',  # noqa: S608
                               rows)
        return Connection(name=role, engine="postgresql",
                          location=f"{PG_SERVER}?options={quote(f'-c search_path={self.schema}')}")


def source_finds(connection: Connection, literal: str) -> bool:
    """Whether the source database, asked directly through its own driver, holds a row whose key equals
    ``literal``."""
    sql = f'SELECT COUNT(*) FROM "src" WHERE "key" = {literal}'  # noqa: S608 - a test's own table and literal
    if connection.engine == "sqlite":
        db = sqlite3.connect(connection.location)
        try:
            return db.execute(sql).fetchone()[0] > 0
        finally:
            db.close()
    if connection.engine == "duckdb":
        with duckdb.connect(connection.location, read_only=True) as db:
            return db.execute(sql).fetchone()[0] > 0
    with psycopg.connect(connection.location, autocommit=True) as db:
        return db.execute(sql).fetchone()[0] > 0


def missing_as_asked(target_connection, source_connection, family: str) -> list[str]:
    """The target's values (as its engine reads them) whose literal, written by the source adapter for the source
    column's family, the source database finds in no row when asked directly: what the check must report."""
    with adapter_for(target_connection, mission=None) as target, \
            adapter_for(source_connection, mission=None) as source:
        values = [row[0] for row in target.query('SELECT DISTINCT "V" FROM "T" WHERE "V" IS NOT NULL').rows]
        literals = {str(v): source.lookup_literal(v, family) for v in values}
    return sorted(text for text, literal in literals.items()
                  if literal is None or not source_finds(source_connection, literal))


def reference_check(tmp_path, monkeypatch, target_engine, source_engine, case):
    """The check's results, read with pages of two values and with one page: (failing rows, missing values as
    text, the sampled rows' ids) each; the check's missing values are first compared with the source's own answer
    for each value (``missing_as_asked``)."""
    target_type, values, source_type, known, family, _ = CASES[case]
    spec_type = {"float": "DOUBLE", "decimal": "DECIMAL(10,2)"}.get(target_type, target_type.upper())
    spec = target_from_dict({"name": "T", "sql": "SELECT 1", "grain": ["ID"], "columns": [
        {"name": "ID", "type": "INTEGER", "description": "The row."},
        {"name": "V", "type": spec_type, "description": "A value of the source's."}]})
    rows = [(i, v) for i, v in enumerate([*values, None, *values, None])]
    results = []
    with ExitStack() as stack:
        place = Place(tmp_path, stack)
        target_connection = place.table(target_engine, "T", "T", [("ID", "integer"),
                                                                 ("V", TYPES[target_type][target_engine])], rows)
        source_connection = place.table(source_engine, "S", "src",
                                        [("key", TYPES[source_type][source_engine])], [(k,) for k in known])
        for page in (2, 10_000):
            monkeypatch.setattr(checks, "PAGE", page)
            monkeypatch.setattr(checks, "CHUNK", page)
            with adapter_for(target_connection, mission=None) as target, \
                    adapter_for(source_connection, mission=None) as source:
                result = check_reference(target, source, spec, "V", "src", "key", family=family)
            missing = result.detail.split("values: ", 1)[1].split(", ") if not result.passed else []
            results.append((result.failing_rows, sorted(missing), sorted(result.sample_keys)))
        assert results[0][1] == missing_as_asked(target_connection, source_connection, family)
    assert results[0] == results[1]  # the keyset's pages find what one page finds
    return results[0], rows


@pytest.mark.parametrize(("target_engine", "source_engine"), PAIRS)
@pytest.mark.parametrize("case", list(CASES))
def test_a_cross_engine_reference_check_finds_the_values_the_source_lacks(tmp_path, monkeypatch, target_engine,
                                                                          source_engine, case):
    expected = CASES[case][-1]
    if isinstance(expected, dict):  # by both engines ("target>source"), the target's, or the source's (">source")
        expected = next(expected[k] for k in (f"{target_engine}>{source_engine}", target_engine, f">{source_engine}",
                                              "default") if k in expected)
    if isinstance(expected, str):  # the lookup fails with this error
        with pytest.raises(ConnectorError, match=expected):
            reference_check(tmp_path, monkeypatch, target_engine, source_engine, case)
        return
    (failing, missing, sampled), rows = reference_check(tmp_path, monkeypatch, target_engine, source_engine, case)
    assert missing == sorted(expected)
    assert failing == 2 * len(expected)  # each value is in two rows; the nulls are never counted
    shown = {i: str(int(v) if isinstance(v, bool) and target_engine == "sqlite" else v) for i, v in rows}
    if CASES[case][0] == "real" and target_engine == "duckdb":  # as DuckDB reads a FLOAT
        shown = {i: str(struct.unpack("f", struct.pack("f", v))[0]) for i, v in rows if v is not None}
    assert sampled == sorted(i for i, v in rows if v is not None and shown[i] in expected)


def real_check(tmp_path, monkeypatch, target_engine, source_engine, values, known):
    """A reference check of floats in a REAL column against a REAL source column, one value a lookup."""
    spec = target_from_dict({"name": "T", "sql": "SELECT 1", "grain": ["ID"], "columns": [
        {"name": "ID", "type": "INTEGER", "description": "The row."},
        {"name": "V", "type": "REAL", "description": "A value of the source's."}]})
    monkeypatch.setattr(checks, "CHUNK", 1)
    with ExitStack() as stack:
        place = Place(tmp_path, stack)
        target_connection = place.table(target_engine, "T", "T", [("ID", "integer"), ("V", "real")],
                                        list(enumerate(values)))
        source_connection = place.table(source_engine, "S", "src", [("key", "real")], [(k,) for k in known])
        with adapter_for(target_connection, mission=None) as target, \
                adapter_for(source_connection, mission=None) as source:
            return check_reference(target, source, spec, "V", "src", "key", family="numeric")


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_float_looked_up_alone_in_a_postgresql_real_column_is_found(tmp_path, monkeypatch):
    assert real_check(tmp_path, monkeypatch, "sqlite", "postgresql", [1.1], [1.1]).passed


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_rows_of_a_float_missing_from_the_source_are_sampled_from_a_postgresql_real_column(tmp_path,
                                                                                               monkeypatch):
    result = real_check(tmp_path, monkeypatch, "postgresql", "sqlite", [1.1], [2.5])
    assert result.failing_rows == 1 and result.sample_keys == [0]


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_a_decimal_nan_or_infinity_is_written_as_a_float_of_the_same_value_is(engine, tmp_path):
    """PostgreSQL's numeric holds NaN and the infinities (psycopg reads them as Decimal): looked up in another
    engine's number column, each is written as the float of the same value is, and a signalling NaN, which no float
    conversion takes, as a quiet one."""
    adapter = adapter_for(Connection(name="x", engine=engine, location=str(tmp_path / "x.db")), mission=None)
    for family in ("numeric", "integer", "text"):
        for decimal, number in ((Decimal("NaN"), float("nan")), (Decimal("sNaN"), float("nan")),
                                (Decimal("Infinity"), float("inf")), (Decimal("-Infinity"), float("-inf"))):
            written = adapter.lookup_literal(decimal, family)
            if family == "text":
                assert written == adapter.lookup_literal(str(decimal), family)
            else:
                assert written == adapter.lookup_literal(number, family), (family, decimal)
