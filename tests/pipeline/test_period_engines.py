"""A grain's period (day, week from Monday, month, year) gives the same first days on every engine the mapping
writes SQL for: SQLite, PostgreSQL and DuckDB, over hires dated around two New Years (a week that starts in one year
and ends in the next, New Year's Eve on a Sunday and New Year's Day on a Monday, a leap day). Each engine's rows are
held against a computation written here, and against each other."""

import uuid
from collections import Counter
from datetime import date, timedelta
from urllib.parse import quote

import duckdb
import psycopg
import pytest

from agents.access import adapter_for
from agents.models import Connection
from pipeline.mapping import Catalog, TargetMapper
from pipeline.profiler import profile_source
from pipeline.specfile import validate_spec
from tests.pipeline import sources
from tests.pipeline.conftest import PG_SERVER, sqlite_connection

UNITS = ["day_of", "week_of", "month_of", "year_of"]


def first_day(unit: str, day: date) -> date:
    if unit == "week_of":
        return day - timedelta(days=day.weekday())
    if unit == "month_of":
        return day.replace(day=1)
    if unit == "year_of":
        return day.replace(month=1, day=1)
    return day


def target(unit: str) -> dict:
    return {"name": "HIRES_BY_PERIOD", "grain": {"entity": "dock", "period": {unit: "hire day"}},
            "columns": [{"name": "DOCK_CODE", "type": "TEXT", "description": "The dock the bike was hired at."},
                        {"name": "PERIOD_START", "type": "DATE", "rule": {"period_start": "period"}},
                        {"name": "HIRES", "type": "INTEGER", "rule": {"count": "hires"}}]}


def expected(source, unit: str) -> Counter:
    return Counter((h["dock_code"], first_day(unit, date.fromisoformat(h["hired_on"])).isoformat())
                   for h in source.tables["hires"])


# The answer key: "hire day" is hires.hired_on (the words differ, so the mapping asks; a person answers).
ANSWERS = {"PERIOD": "hires.hired_on"}


def rows_on(connection, unit: str) -> Counter:
    spec_target = target(unit)
    validate_spec({"version": 1, "name": "Bikes", "sources": {"connection": "BIKES",
                                                               "allowed_tables": ["docks", "hires"]},
                   "targets": {"tables": [spec_target]}})
    with adapter_for(connection, mission=None) as adapter:
        content = TargetMapper(target=spec_target, catalog=Catalog(profile_source(adapter)),
                               dialect=adapter.dialect, answers=ANSWERS).plan()
        result = adapter.query(content["sql"], limit=10_000)
    assert result.columns == ["DOCK_CODE", "PERIOD_START", "HIRES"]
    # A DATE comes back as a date from PostgreSQL and DuckDB, as ISO text from SQLite.
    return Counter({(code, start.isoformat() if isinstance(start, date) else str(start)[:10]): n
                    for code, start, n in result.rows})


@pytest.fixture
def bikes(tmp_path):
    return sources.bike_hire(tmp_path)


@pytest.fixture
def pg_bikes(bikes, db):
    """The same hires in a scratch schema of the local PostgreSQL server, the day a real DATE; dropped after.
    (``db``: the adapter checks the server is not the platform's own, which on PostgreSQL reads the platform's.)"""
    try:
        admin = psycopg.connect(PG_SERVER, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    schema = f"genesis_period_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with psycopg.connect(PG_SERVER, options=f"-c search_path={schema}") as conn:
            conn.execute("CREATE TABLE docks (dock_code TEXT, area TEXT)")
            conn.execute("CREATE TABLE hires (hire_no INTEGER, dock_code TEXT, hired_on DATE, minutes INTEGER, "
                         "fare_cents INTEGER)")
            with conn.cursor() as cursor:
                cursor.executemany("INSERT INTO docks VALUES (%s, %s)",
                                   [(d["dock_code"], d["area"]) for d in bikes.tables["docks"]])
                cursor.executemany("INSERT INTO hires VALUES (%s, %s, %s, %s, %s)",
                                   [(h["hire_no"], h["dock_code"], date.fromisoformat(h["hired_on"]), h["minutes"],
                                     h["fare_cents"]) for h in bikes.tables["hires"]])
        yield Connection(name="PG_BIKES", engine="postgresql", purpose="source",
                         location=f"{PG_SERVER}?options={quote(f'-c search_path={schema}')}")
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def duck_bikes(bikes, tmp_path):
    """The same hires in a DuckDB file, the day a real DATE."""
    path = tmp_path / "bikes.duckdb"
    db = duckdb.connect(str(path))
    db.execute("CREATE TABLE docks (dock_code TEXT, area TEXT)")
    db.execute("CREATE TABLE hires (hire_no INTEGER, dock_code TEXT, hired_on DATE, minutes INTEGER, "
               "fare_cents INTEGER)")
    db.executemany("INSERT INTO docks VALUES (?, ?)", [(d["dock_code"], d["area"]) for d in bikes.tables["docks"]])
    db.executemany("INSERT INTO hires VALUES (?, ?, ?, ?, ?)",
                   [(h["hire_no"], h["dock_code"], date.fromisoformat(h["hired_on"]), h["minutes"], h["fare_cents"])
                    for h in bikes.tables["hires"]])
    db.close()
    return Connection(name="DUCK_BIKES", engine="duckdb", location=str(path), purpose="source")


def test_the_generated_hires_cross_year_boundaries_on_sundays_and_mondays(bikes):
    days = {date.fromisoformat(h["hired_on"]) for h in bikes.tables["hires"]}
    assert {date(2023, 12, 31).weekday(), date(2024, 1, 1).weekday()} == {6, 0}
    assert {date(2023, 12, 31), date(2024, 1, 1), date(2024, 12, 30), date(2025, 1, 1), date(2024, 2, 29)} <= days
    # The week of Monday 2024-12-30 holds days of two years.
    assert {first_day("week_of", d) for d in (date(2024, 12, 31), date(2025, 1, 5))} == {date(2024, 12, 30)}


@pytest.mark.parametrize("unit", UNITS)
def test_sqlite_periods_start_on_their_first_day(bikes, unit):
    assert rows_on(sqlite_connection(bikes.path), unit) == expected(bikes, unit)


@pytest.mark.parametrize("unit", UNITS)
def test_postgresql_periods_equal_sqlite_and_the_computation(bikes, pg_bikes, unit):
    on_postgres = rows_on(pg_bikes, unit)
    assert on_postgres == expected(bikes, unit)
    assert on_postgres == rows_on(sqlite_connection(bikes.path), unit)


@pytest.mark.parametrize("unit", UNITS)
def test_duckdb_periods_equal_sqlite_and_the_computation(bikes, duck_bikes, unit):
    on_duckdb = rows_on(duck_bikes, unit)
    assert on_duckdb == expected(bikes, unit)
    assert on_duckdb == rows_on(sqlite_connection(bikes.path), unit)


def test_week_starts_around_new_year_on_each_engine(bikes, pg_bikes, duck_bikes):
    """The hires of Sunday 2023-12-31 fall in the week of Monday 2023-12-25, those of Monday 2024-01-01 in their
    own; Tuesday 2024-12-31 and Sunday 2025-01-05 in the week of Monday 2024-12-30, on every engine."""
    for connection in (sqlite_connection(bikes.path), pg_bikes, duck_bikes):
        starts = {start for _code, start in rows_on(connection, "week_of")}
        assert {"2023-12-25", "2024-01-01", "2024-12-30", "2025-01-06"} <= starts, connection.engine
        assert not {"2023-12-31", "2025-01-01", "2025-01-05"} & starts, connection.engine
        assert all(date.fromisoformat(s).weekday() == 0 for s in starts), connection.engine

