"""Profiling a large table on a sample, on every engine: the sample is spread over the whole table, the report says
what was sampled and how, row and null counts, min and max stay exact, a column unique in the sample is a key only if
the full table says so, and foreign-key containment counts the orphans the sample never saw."""

from __future__ import annotations

import sqlite3
import uuid

import duckdb
import psycopg
import pytest

from agents.access import adapter_for
from agents.base import Succeeded
from agents.models import Connection
from pipeline.profiler import profile_markdown, profile_source
from tasks.models import Artifact
from tests.pipeline.conftest import PG_SERVER, SPEC_PATH, pg_connection, sqlite_connection

CUSTOMERS = 2000
ORDERS = 3000
# Orders pointing at customers that do not exist, at three places of the table.
ORPHANS = {1500: 5001, 2200: 5002, 2900: 5003}
# One nickname is used twice, by two customers next to each other: unique in any sample that does not hold both.
DUPLICATE_AT = 1200


def _customers() -> list[tuple]:
    rows = []
    for i in range(1, CUSTOMERS + 1):
        nick = f"k{DUPLICATE_AT}" if i == DUPLICATE_AT + 1 else f"k{i}"
        rows.append((i, f"segment{i % 5}", nick, None if i % 7 == 0 else f"note {i}"))
    return rows


def _orders() -> list[tuple]:
    return [(i, ORPHANS.get(i, 1 + i % CUSTOMERS), round(10 + (i * 37) % 1000 / 10, 2)) for i in range(ORDERS)]


# Quoted names: upper case on PostgreSQL too.
CREATE = ['CREATE TABLE "CUSTOMERS" ("CUSTOMER_ID" INTEGER NOT NULL, "SEGMENT" TEXT, "NICK" TEXT, "NOTE" TEXT)',
          'CREATE TABLE "ORDERS" ("ORDER_ID" INTEGER NOT NULL, "CUSTOMER_ID" INTEGER, "AMOUNT" REAL)']


def _write(execute, executemany) -> None:
    for statement in CREATE:
        execute(statement)
    executemany('INSERT INTO "CUSTOMERS" VALUES (?, ?, ?, ?)', _customers())
    executemany('INSERT INTO "ORDERS" VALUES (?, ?, ?)', _orders())


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def source(request, tmp_path):
    """The two tables on one engine, as a source connection."""
    if request.param == "sqlite":
        path = tmp_path / "shop.sqlite3"
        with sqlite3.connect(path) as db:
            _write(db.execute, db.executemany)
        yield sqlite_connection(path)
    elif request.param == "duckdb":
        path = tmp_path / "shop.duckdb"
        db = duckdb.connect(str(path))
        _write(db.execute, lambda sql, rows: db.execute(sql.split(" VALUES ")[0] + " VALUES " + ", ".join(
            "(" + ", ".join("NULL" if v is None else f"'{v}'" if isinstance(v, str) else str(v) for v in row) + ")"
            for row in rows)))  # one statement: DuckDB's executemany takes a second per hundred rows
        db.close()
        yield Connection(name="DUCK", engine="duckdb", location=str(path), purpose="source")
    else:
        # The adapter checks that the server is not the platform's own database, which may be PostgreSQL too.
        request.getfixturevalue("db")
        try:
            admin = psycopg.connect(PG_SERVER, connect_timeout=3, autocommit=True)
        except psycopg.OperationalError:
            pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
        schema = f"genesis_sample_{uuid.uuid4().hex[:10]}"
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            with psycopg.connect(PG_SERVER, options=f"-c search_path={schema}") as conn, conn.cursor() as cursor:
                _write(cursor.execute,
                       lambda sql, rows: cursor.executemany(sql.replace("?", "%s"), rows))
            yield pg_connection(schema)
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            admin.close()


def _profile(connection, **sampling):
    with adapter_for(connection, mission=None) as adapter:
        return profile_source(adapter, **sampling)


def test_above_the_threshold_a_table_is_profiled_on_a_sample_and_the_report_says_so(source):
    profile = _profile(source, sample_above=1000, sample_rows=200)
    customers, orders = profile["tables"]["CUSTOMERS"], profile["tables"]["ORDERS"]
    sampling = customers["sampling"]
    assert 100 <= sampling["rows"] <= 400 and sampling["of_rows"] == CUSTOMERS
    assert sampling["method"]
    assert sampling["sampled"] == ["distinct", "top_values"]
    assert sampling["exact"] == ["row_count", "nulls", "min", "max", "candidate_keys"]
    assert "sampling" in orders
    # Exact: rows, nulls, min and max over the full table, whatever the sample holds.
    assert customers["row_count"] == CUSTOMERS and orders["row_count"] == ORDERS
    assert customers["columns"]["NOTE"]["nulls"] == CUSTOMERS // 7
    assert customers["columns"]["SEGMENT"]["nulls"] == 0
    assert (customers["columns"]["CUSTOMER_ID"]["min"], customers["columns"]["CUSTOMER_ID"]["max"]) == (1, CUSTOMERS)
    assert (orders["columns"]["CUSTOMER_ID"]["min"], orders["columns"]["CUSTOMER_ID"]["max"]) == (1, 5003)
    # Sampled: distinct counts and frequent values, counted in the sample.
    assert customers["columns"]["NOTE"]["distinct"] <= sampling["rows"]
    segments = customers["columns"]["SEGMENT"]["top_values"]
    assert {v for v, _ in segments} == {f"segment{i}" for i in range(5)}
    assert sum(n for _, n in segments) == sampling["rows"]
    report = profile_markdown(profile)
    assert (f"Sampled: distinct counts and frequent values come from {sampling['rows']:,} of the 2,000 rows "
            f"({sampling['method']})") in report


def test_a_column_unique_in_the_sample_but_not_in_the_table_is_no_key(source):
    profile = _profile(source, sample_above=1000, sample_rows=200)
    customers = profile["tables"]["CUSTOMERS"]
    # Both NICK and CUSTOMER_ID were unique in the sample: both were counted over the full table.
    assert customers["sampling"]["keys_checked"] == {"CUSTOMER_ID": CUSTOMERS, "NICK": CUSTOMERS - 1}
    assert customers["candidate_keys"] == ["CUSTOMER_ID"]
    assert customers["columns"]["NICK"]["distinct"] == CUSTOMERS - 1
    assert profile["tables"]["ORDERS"]["candidate_keys"] == ["ORDER_ID"]
    report = profile_markdown(profile)
    assert ("Columns unique in the sample, counted over the full table unless the database keeps them unique: "
            "CUSTOMER_ID (a key), "
            "NICK (not a key: 1,999 distinct values).") in report
    # Unsampled, the same keys.
    exact = _profile(source)
    assert "sampling" not in exact["tables"]["CUSTOMERS"]
    assert exact["tables"]["CUSTOMERS"]["candidate_keys"] == ["CUSTOMER_ID"]


def test_foreign_key_containment_counts_the_orphans_outside_the_sample(source):
    profile = _profile(source, sample_above=1000, sample_rows=200)
    values = {v for _, v, _ in _orders()}
    fks = [fk for fk in profile["foreign_keys"] if (fk["table"], fk["column"]) == ("ORDERS", "CUSTOMER_ID")]
    assert len(fks) == 1, profile["foreign_keys"]
    fk = fks[0]
    assert (fk["ref_table"], fk["ref_column"], fk["orphan_values"]) == ("CUSTOMERS", "CUSTOMER_ID", len(ORPHANS))
    assert fk["containment"] == round(1 - len(ORPHANS) / len(values), 4)
    # The evidence cites the distinct values of the full column, not of the sample.
    assert f"of its {len(values):,} distinct values are CUSTOMERS.CUSTOMER_ID" in " ".join(fk["evidence"])
    assert profile["foreign_keys"] == _profile(source)["foreign_keys"]


def test_the_sample_is_spread_over_the_whole_table(source):
    with adapter_for(source, mission=None) as adapter:
        sample = adapter.sample_of("ORDERS", 200, total=ORDERS)
        low, high, count = adapter.query(
            f'SELECT MIN("ORDER_ID"), MAX("ORDER_ID"), COUNT(*) FROM {sample.sql}', limit=1).rows[0]  # noqa: S608
        again = adapter.query(f'SELECT SUM("ORDER_ID"), COUNT(*) FROM {sample.sql}', limit=1).rows[0]  # noqa: S608
        first = adapter.query(f'SELECT SUM("ORDER_ID"), COUNT(*) FROM {sample.sql}', limit=1).rows[0]  # noqa: S608
        if source.engine == "postgresql":
            # A large table is sampled by whole pages (SYSTEM), which reads only those pages.
            pages = adapter.sample_of("ORDERS", 200, total=1_000_000)
            assert "TABLESAMPLE SYSTEM" in pages.sql and "SYSTEM" in pages.method
            assert adapter.scalar(f"SELECT COUNT(*) FROM {pages.sql}") <= ORDERS  # noqa: S608
    assert 100 <= count <= 400
    # Not the first rows: the sample reaches both ends of the table.
    assert low < ORDERS // 10 and high > ORDERS - ORDERS // 10
    assert again == first  # repeatable


def test_sqlite_samples_a_table_without_rowid_and_a_view_by_their_first_rows(tmp_path):
    path = tmp_path / "norowid.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE CODES (CODE TEXT PRIMARY KEY, LABEL TEXT) WITHOUT ROWID")
        db.executemany("INSERT INTO CODES VALUES (?, ?)", [(f"c{i:05}", f"label {i % 3}") for i in range(1500)])
        db.execute("CREATE VIEW RECENT_CODES AS SELECT * FROM CODES")
    profile = _profile(sqlite_connection(path), sample_above=1000, sample_rows=300)
    for table in ("CODES", "RECENT_CODES"):
        info = profile["tables"][table]
        assert info["sampling"]["rows"] == 300 and "LIMIT" in info["sampling"]["method"]
        assert info["candidate_keys"] == ["CODE"] and info["columns"]["CODE"]["distinct"] == 1500
        assert info["sampling"]["keys_checked"] == {"CODE": 1500}


def test_the_profiling_agent_samples_above_the_configured_threshold(mission, run_agent, source_for, demo_small,
                                                                      settings):
    import json

    settings.GENESIS_PROFILE_SAMPLE_ABOVE_ROWS = 1500
    settings.GENESIS_PROFILE_SAMPLE_ROWS = 400
    source = source_for(demo_small)
    result = run_agent("profiling", mission=mission, config={"spec_path": SPEC_PATH, "connection": source.name})
    assert isinstance(result.outcome, Succeeded), result.outcome
    with Artifact.objects.get(task=result.task, name="source_profile.json").file.open("rb") as handle:
        profile = json.loads(handle.read())
    claims = profile["tables"]["CLAIMS"]
    assert claims["row_count"] == 2000 and claims["sampling"]["rows"] == 400
    assert claims["candidate_keys"] == ["CLAIM_ID"] and claims["sampling"]["keys_checked"] == {"CLAIM_ID": 2000}
    assert "sampling" not in profile["tables"]["PATIENTS"]
    with Artifact.objects.get(task=result.task, name="source_profile.md").file.open("rb") as handle:
        assert "Sampled: distinct counts and frequent values come from 400 of the 2,000 rows" in handle.read().decode()


def test_containment_is_one_query_per_column_and_skips_keys_only_values_suggest_when_the_name_settles_it(demo_small):
    from pipeline.profiler import _fk_candidates

    queries = []
    with adapter_for(sqlite_connection(demo_small), mission=None) as adapter:
        run = adapter.query

        def recorded(sql, **kwargs):
            queries.append(sql)
            return run(sql, **kwargs)

        adapter.query = recorded
        profile = profile_source(adapter)
    # CLAIMS.PATIENT_ID could also be CLAIM_DETAILS.LINE_ID by its values alone, but its name points at PATIENTS.
    candidates = _fk_candidates(profile["tables"], "CLAIMS", "PATIENT_ID")
    assert ("PATIENTS", "PATIENT_ID", "names PATIENTS") in candidates
    assert any(named is None for _, _, named in candidates)
    lookups = [q for q in queries if 'SELECT DISTINCT "PATIENT_ID" AS v FROM "CLAIMS"' in q]
    assert len(lookups) == 1 and 'FROM "PATIENTS" AS r' in lookups[0] and '"CLAIM_DETAILS"' not in lookups[0]
    # Every column's containment is one query, whatever the number of keys it may refer to.
    distinct_scans = [q.split("SELECT DISTINCT ", 1)[1].split(" WHERE")[0] for q in queries if "NOT EXISTS" in q]
    assert len(distinct_scans) == len(set(distinct_scans))
    line_number = [q for q in queries if 'SELECT DISTINCT "LINE_NUMBER"' in q]
    assert len(line_number) == 1 and line_number[0].count("NOT EXISTS") == 3
    assert {"table": "CLAIM_DETAILS", "column": "LINE_NUMBER",
            "candidates": ["CLAIMS.CLAIM_ID", "PATIENTS.PATIENT_ID", "PROVIDERS.PROVIDER_ID"]} in \
        profile["ambiguous_foreign_keys"]


def test_a_key_the_database_keeps_unique_is_not_counted_again(source, monkeypatch):
    """CUSTOMER_ID made a primary key (a unique index on SQLite): unique in the sample, it is a key without a count
    of its distinct values over the full table; NICK, unique only in the sample and declared nowhere, is still
    counted and is still no key."""
    from agents.connectors.base import Adapter

    with adapter_for(source, mission=None) as adapter:
        if source.engine == "sqlite":
            with sqlite3.connect(adapter.path) as db:
                db.execute('CREATE UNIQUE INDEX "customers_id" ON "CUSTOMERS" ("CUSTOMER_ID")')
        elif source.engine == "duckdb":
            adapter.close()
            db = duckdb.connect(source.location)
            db.execute('ALTER TABLE "CUSTOMERS" ADD PRIMARY KEY ("CUSTOMER_ID")')
            db.close()
        else:
            adapter.raw.read_only = False
            adapter.raw.execute('ALTER TABLE "CUSTOMERS" ADD PRIMARY KEY ("CUSTOMER_ID")')
            adapter.raw.commit()
            adapter.raw.read_only = True
    seen: list[str] = []
    original = Adapter.query

    def query(self, sql, **kwargs):
        seen.append(sql)
        return original(self, sql, **kwargs)

    monkeypatch.setattr(Adapter, "query", query)
    profile = _profile(source, sample_above=1000, sample_rows=200)
    customers = profile["tables"]["CUSTOMERS"]
    assert customers["sampling"]["keys_declared_unique"] == ["CUSTOMER_ID"]
    assert customers["sampling"]["keys_checked"] == {"CUSTOMER_ID": CUSTOMERS, "NICK": CUSTOMERS - 1}
    assert customers["candidate_keys"] == ["CUSTOMER_ID"]
    assert customers["columns"]["CUSTOMER_ID"]["distinct"] == CUSTOMERS
    full_counts = [sql for sql in seen if sql.startswith("SELECT COUNT(DISTINCT") and sql.endswith('FROM "CUSTOMERS"')]
    assert full_counts == ['SELECT COUNT(DISTINCT "NICK") FROM "CUSTOMERS"']
    assert "CUSTOMER_ID (a key, kept unique by the database), NICK (not a key: 1,999 distinct values)" in (
        profile_markdown(profile))
    # ORDERS declares nothing: its key is counted as before.
    assert profile["tables"]["ORDERS"]["sampling"]["keys_declared_unique"] == []
    assert profile["tables"]["ORDERS"]["candidate_keys"] == ["ORDER_ID"]
