"""The DuckDB connector: the same contract as SQLite's and PostgreSQL's (introspection, one guarded read, a row limit
and a timeout, the allowed tables), and DuckDB's own ways out of a database refused twice: by the SQL guard and by the
session DuckDB is opened with (no file or URL access, no extension installed or loaded, a locked configuration)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from django.core.exceptions import ValidationError

from agents.access import adapter_for
from agents.connectors import ConnectorError, QueryRefused, QueryTimeout, dialect_for
from agents.models import Connection
from pipeline.demo.generator import generate, write_duckdb, write_sqlite
from tests.agents.test_connectors import NOT_A_READ, _check_regex_match
from tests.pipeline.conftest import ALLOWED


@pytest.fixture(scope="session")
def duck(tmp_path_factory) -> Path:
    """The demo's 2,000 claims (seed 7) in a DuckDB file."""
    return write_duckdb(tmp_path_factory.mktemp("duck") / "small.duckdb", generate(claims=2_000, seed=7))


def duck_connection(path, name="DUCK") -> Connection:
    return Connection(name=name, engine="duckdb", location=str(path), purpose="source")


def test_duckdb_adapter_introspects_and_queries(duck):
    with adapter_for(duck_connection(duck), mission=None, allowed_tables=ALLOWED) as adapter:
        assert adapter.dialect == "duckdb" == dialect_for("duckdb")
        assert set(adapter.list_tables()) == {"PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS"}
        tables = {t.name: t for t in adapter.introspect()}
        claims = tables["CLAIMS"]
        assert [c.name for c in claims.columns] == [
            "CLAIM_ID", "PATIENT_ID", "PROVIDER_ID", "SERVICE_DATE", "CLAIM_TYPE", "STATUS", "DIAGNOSIS_CODE"]
        assert claims.column("service_date").declared_type == "VARCHAR"
        assert claims.column("CLAIM_ID").declared_type == "INTEGER"
        assert not claims.column("CLAIM_ID").nullable and claims.column("DIAGNOSIS_CODE").nullable
        assert tables["CLAIM_DETAILS"].column("CHARGE_AMOUNT").declared_type == "DECIMAL(12,2)"
        assert claims.row_count == 2000 == adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"')
        result = adapter.query('SELECT "CLAIM_ID" FROM "CLAIMS" ORDER BY 1', limit=5)
        assert [r[0] for r in result.rows] == [1, 2, 3, 4, 5]
        assert result.truncated and result.columns == ["CLAIM_ID"]
        assert adapter.scalar('WITH c AS (SELECT * FROM "CLAIMS") SELECT COUNT(*) FROM c') == 2000
        # DuckDB's own spelling (FROM first) is a plain read too.
        assert adapter.scalar('FROM "CLAIMS" SELECT COUNT(*)') == 2000


def test_a_read_outside_the_allowed_tables_is_refused_and_reported(duck):
    seen = []
    with adapter_for(duck_connection(duck), mission=None, allowed_tables=["CLAIMS"],
                     on_refused=seen.append) as adapter:
        with pytest.raises(QueryRefused, match="not among the mission's allowed source tables") as caught:
            adapter.query('SELECT * FROM "CLAIMS" JOIN "PATIENTS" USING ("PATIENT_ID")')
        assert [t.name for t in adapter.introspect()] == ["CLAIMS"]
    assert seen == [caught.value] and caught.value.tables == ["PATIENTS"]


# DuckDB's own escapes: other databases, files, URLs, extensions, settings and the engine's catalog.
DUCKDB_ESCAPES = [
    "ATTACH '{path}' AS stolen",
    "ATTACH '{path}' AS stolen (TYPE sqlite)",
    "DETACH main",
    "COPY \"CLAIMS\" TO '{path}'",
    "COPY (SELECT * FROM \"CLAIMS\") TO '{path}' (FORMAT parquet)",
    "EXPORT DATABASE '{path}'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL sqlite_scanner",
    "SET enable_external_access = true",
    "SET autoinstall_known_extensions = true",
    "RESET lock_configuration",
    "PRAGMA database_list",
    "CALL pragma_version()",
    "SELECT * FROM pragma_database_list()",
    "SUMMARIZE \"CLAIMS\"",
    "DESCRIBE \"CLAIMS\"",
    "USE stolen",
    "CHECKPOINT",
    "CREATE TABLE x AS SELECT * FROM \"CLAIMS\"",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "SELECT * FROM read_json('/tmp/x.json')",
    "SELECT * FROM read_ndjson_objects('/tmp/x.json')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM parquet_metadata('/tmp/x.parquet')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'data.csv'",
    "SELECT * FROM 'https://example.com/x.parquet'",
    "SELECT * FROM 's3://bucket/x.parquet'",
    "SELECT * FROM sqlite_scan('/tmp/x.db', 'authtoken_token')",
    "SELECT * FROM postgres_scan('dbname=x', 'public', 'authtoken_token')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_tables",
    "SELECT getenv('HOME')",
    "SELECT current_setting('threads')",
    "SELECT * FROM query('SELECT * FROM x')",
    "SELECT * FROM query_table('CLAIMS')",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM stolen.main.secrets",
]


@pytest.mark.parametrize("sql", NOT_A_READ + DUCKDB_ESCAPES)
def test_the_guard_refuses_everything_but_one_plain_read_on_duckdb(duck, tmp_path, sql):
    target = tmp_path / "created-by-the-query"
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        with pytest.raises(QueryRefused):
            adapter.query(sql.format(path=target))
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 2000
    assert not target.exists()


@pytest.mark.parametrize("sql", [
    "ATTACH '{path}' AS stolen",
    "COPY \"CLAIMS\" TO '{path}'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_text('/etc/hostname')",
])
def test_duckdb_itself_refuses_files_attach_and_extensions_the_parser_might_miss(duck, tmp_path, sql):
    """The session's configuration holds even for a statement that reached DuckDB without the guard."""
    target = tmp_path / "created-by-the-query"
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        with pytest.raises(ConnectorError, match="Refused on DUCK|Table with name /etc/passwd does not exist"):
            adapter.run_internal(sql.format(path=target))
        assert adapter.run_internal('SELECT COUNT(*) FROM "CLAIMS"').rows == [(2000,)]
    assert not target.exists()


def test_the_session_configuration_is_locked_and_read_only(duck, settings):
    settings.GENESIS_DUCKDB_MEMORY_LIMIT = "300MB"
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        for sql in ("SET enable_external_access = true", "SET autoload_known_extensions = true",
                    "SET autoinstall_known_extensions = true", "SET memory_limit = '20GB'"):
            with pytest.raises(ConnectorError, match="locked"):
                adapter.run_internal(sql)
        with pytest.raises(ConnectorError, match="read-only"):
            adapter.run_internal('DELETE FROM "CLAIMS"')
        values = dict(adapter.raw.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
            "'autoinstall_known_extensions', 'autoload_known_extensions', 'memory_limit')").fetchall())
    memory = values.pop("memory_limit")
    assert values == {"enable_external_access": "false", "autoinstall_known_extensions": "false",
                        "autoload_known_extensions": "false"}
    assert memory in {"286.1 MiB", "300.0 MB"}  # the worker's bound, not 80% of the machine


def test_a_query_that_needs_an_extension_fails_clearly_instead_of_downloading_it(duck, tmp_path, monkeypatch):
    """Without the guard (as the platform's own SQL runs), a function of an extension the wheel does not carry fails
    naming the extension; nothing is installed."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        with pytest.raises(ConnectorError, match="sqlite_scanner") as caught:
            adapter.run_internal("SELECT * FROM sqlite_scan('x.db', 't')")
        assert "failed on DUCK" in caught.value.message
        with pytest.raises(ConnectorError, match="spatial"):
            adapter.run_internal("SELECT ST_Point(1, 2)")
        assert adapter.run_internal('SELECT COUNT(*) FROM "CLAIMS"').rows == [(2000,)]
    assert not (home / ".duckdb").exists()


def test_duckdb_timeout_stops_a_long_query(duck):
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        with pytest.raises(QueryTimeout, match="longer than 0.2 s"):
            adapter.query("SELECT COUNT(*) FROM range(100000000000) AS a(i) WHERE i % 7 = 3", timeout=0.2)
        # The connection stays usable after the interrupt.
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 2000


def test_unreachable_and_wrong_duckdb_locations_fail_clearly(tmp_path):
    with pytest.raises(ConnectorError, match="GONE: the DuckDB file .* does not exist"):
        adapter_for(duck_connection(tmp_path / "nope.duckdb", name="GONE"), mission=None).connect()
    sqlite_file = write_sqlite(tmp_path / "really-sqlite.db", generate(claims=5, seed=1))
    with pytest.raises(ConnectorError, match="LITE: cannot open .* as a DuckDB database"):
        adapter_for(duck_connection(sqlite_file, name="LITE"), mission=None).connect()
    for location in (":memory:", "md:my_db", "s3://bucket/warehouse.duckdb", "https://example.com/x.duckdb"):
        with pytest.raises(ConnectorError, match="REMOTE: .*(in-memory|only a local DuckDB file)"):
            adapter_for(duck_connection(location, name="REMOTE"), mission=None).connect()


@pytest.mark.django_db
def test_a_duckdb_connection_validates_its_location_naming_the_field(tmp_path):
    for location in (":memory:", "md:my_db", "s3://bucket/x.duckdb"):
        with pytest.raises(ValidationError) as caught:
            duck_connection(location).clean()
        assert "location" in caught.value.message_dict
    good = duck_connection(tmp_path / "w.duckdb")
    good.clean()
    assert good.location == str(tmp_path / "w.duckdb")


@pytest.mark.django_db
def test_the_platforms_own_database_is_refused_as_a_duckdb_connection(monkeypatch, tmp_path):
    from agents.connectors import platform

    own = write_sqlite(tmp_path / "genesis.sqlite3", generate(claims=5, seed=1))
    monkeypatch.setattr(platform, "platform_database", lambda: {"ENGINE": "django.db.backends.sqlite3",
                                                                "NAME": str(own)})
    with pytest.raises(ValidationError, match="platform's own database"):
        duck_connection(own).clean()
    # And at every open, should the row have been written some other way.
    with pytest.raises(ConnectorError, match="platform's own database") as caught:
        adapter_for(duck_connection(own), mission=None).connect()
    assert caught.value.code == "platform_database"


def test_listing_tables_leaves_the_columns_unread_until_a_column_is_asked_for(duck):
    """A session that only looks for a table reads the names alone; the columns are read once, when first asked
    for, and agree with the names; a new session reads both again."""
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        assert set(adapter.list_tables()) == {"PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS"}
        assert adapter._catalog is None
        assert [c.name for c in adapter._columns("PROVIDERS")][:1] == ["PROVIDER_ID"]
        catalog = adapter._catalog
        assert catalog is not None and sorted(catalog) == sorted(adapter.list_tables())
        assert adapter._columns("NO_SUCH_TABLE") == [] and adapter._catalog is catalog
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        assert adapter._tables is None and adapter._catalog is None


def test_a_second_reader_in_the_same_process_shares_the_locked_session(duck):
    with adapter_for(duck_connection(duck), mission=None) as first, \
            adapter_for(duck_connection(duck), mission=None) as second:
        assert first.scalar('SELECT COUNT(*) FROM "PATIENTS"') == second.scalar('SELECT COUNT(*) FROM "PATIENTS"')
    # Both closed: a writer may open the file again.
    writer = duckdb.connect(str(duck))
    writer.close()


def test_the_demo_profiles_on_duckdb_as_on_sqlite(duck, demo_small):
    from pipeline.profiler import profile_source
    from tests.pipeline.conftest import sqlite_connection

    with adapter_for(duck_connection(duck), mission=None, allowed_tables=ALLOWED) as adapter:
        duck_profile = profile_source(adapter)
    with adapter_for(sqlite_connection(demo_small), mission=None, allowed_tables=ALLOWED) as adapter:
        lite_profile = profile_source(adapter)
    for table, info in lite_profile["tables"].items():
        other = duck_profile["tables"][table]
        assert (other["row_count"], other["candidate_keys"]) == (info["row_count"], info["candidate_keys"])
        for name, column in info["columns"].items():
            theirs = other["columns"][name]
            assert (theirs["nulls"], theirs["distinct"], theirs["observed_type"]) == (
                column["nulls"], column["distinct"], column["observed_type"]), (table, name)
    assert duck_profile["foreign_keys"] == lite_profile["foreign_keys"]
    assert "sampling" not in duck_profile["tables"]["CLAIMS"]


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_a_large_table_is_profiled_on_a_sample_and_the_report_says_so(duck, demo_small, engine):
    """Above the threshold, distinct counts and frequent values come from a sample; row and null counts, min and max
    stay exact, candidate keys found on the sample are confirmed on the full table, and foreign keys are still checked
    on the full columns."""
    from pipeline.profiler import profile_markdown, profile_source
    from tests.pipeline.conftest import sqlite_connection

    connection = duck_connection(duck) if engine == "duckdb" else sqlite_connection(demo_small)
    with adapter_for(connection, mission=None, allowed_tables=ALLOWED) as adapter:
        exact = profile_source(adapter)
        sampled = profile_source(adapter, sample_above=1500, sample_rows=500)
    claims, full = sampled["tables"]["CLAIMS"], exact["tables"]["CLAIMS"]
    size = claims["sampling"]["rows"]
    assert claims["row_count"] == 2000 and 0 < size < 2000
    assert claims["sampling"]["exact"] == ["row_count", "nulls", "min", "max", "candidate_keys"]
    assert ("USING SAMPLE" in claims["sampling"]["method"]) == (engine == "duckdb")
    assert ("rowid" in claims["sampling"]["method"]) == (engine == "sqlite")
    for name, column in claims["columns"].items():
        assert column["nulls"] == full["columns"][name]["nulls"], name
        assert (column["min"], column["max"]) == (full["columns"][name]["min"], full["columns"][name]["max"])
    # The key found on the sample is confirmed, and counted, on the full table.
    assert claims["columns"]["CLAIM_ID"]["distinct"] == 2000 and claims["candidate_keys"] == ["CLAIM_ID"]
    assert claims["columns"]["PATIENT_ID"]["distinct"] <= full["columns"]["PATIENT_ID"]["distinct"]
    assert {v for v, _ in claims["columns"]["STATUS"]["top_values"]} == {"PAID", "DENIED", "PENDING"}
    assert sum(n for _, n in claims["columns"]["STATUS"]["top_values"]) == size
    # The small tables are not sampled; the foreign keys are the same, checked on the full columns.
    assert "sampling" not in sampled["tables"]["PROVIDERS"]
    fks = {(f["table"], f["column"]): (f["ref_table"], f["containment"], f["orphan_values"])
           for f in sampled["foreign_keys"]}
    assert fks[("CLAIMS", "PROVIDER_ID")] == ("PROVIDERS", 1.0, 0)
    assert fks[("CLAIM_DETAILS", "CLAIM_ID")] == ("CLAIMS", 1.0, 0)
    report = profile_markdown(sampled)
    assert f"Sampled: distinct counts and frequent values come from {size:,} of the 2,000 rows" in report


def test_duckdb_unique_columns_are_its_one_column_key_constraints(duck, tmp_path):
    path = tmp_path / "keyed.duckdb"
    db = duckdb.connect(str(path))
    db.execute('CREATE TABLE "KEYED" ("ID" INTEGER PRIMARY KEY, "CODE" VARCHAR UNIQUE, "A" INTEGER, "B" INTEGER, '
               'UNIQUE ("A", "B"))')
    db.close()
    with adapter_for(duck_connection(path), mission=None) as adapter:
        assert adapter.unique_columns("KEYED") == {"ID", "CODE"}
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        assert adapter.unique_columns("CLAIMS") == {"CLAIM_ID"}  # the demo's primary key


def test_duckdb_counts_orphans_against_keys_with_repeats_and_missing_values(duck, tmp_path):
    path = tmp_path / "refs.duckdb"
    db = duckdb.connect(str(path))
    db.execute('CREATE TABLE "CHILD" ("REF" INTEGER)')
    db.execute('INSERT INTO "CHILD" VALUES (1), (1), (2), (3), (4), (NULL), (5)')
    db.execute('CREATE TABLE "WHOLE" ("K" INTEGER PRIMARY KEY)')
    db.execute('INSERT INTO "WHOLE" SELECT range FROM range(1, 6)')
    db.execute('CREATE TABLE "PARTIAL" ("K" INTEGER)')  # repeats a value and holds a missing one
    db.execute('INSERT INTO "PARTIAL" VALUES (1), (1), (3), (NULL)')
    db.execute('CREATE TABLE "EMPTY" ("K" INTEGER)')
    db.close()
    values = '(SELECT DISTINCT "REF" AS v FROM "CHILD" WHERE "REF" IS NOT NULL) AS x'
    refs = [("WHOLE", "K"), ("PARTIAL", "K"), ("EMPTY", "K")]
    with adapter_for(duck_connection(path), mission=None) as adapter:
        row = adapter.query(adapter.containment_sql(values, refs), limit=1).rows[0]
    # Five distinct values; the whole key lacks none, the partial key lacks 2, 4 and 5 (its NULL matches nothing and
    # hides nothing), the empty key lacks all five.
    assert [int(n) for n in row] == [5, 0, 3, 5]
    # The demo's claim lines against their claims and the claims' patients against the patients, as profiling asks.
    with adapter_for(duck_connection(duck), mission=None, allowed_tables=ALLOWED) as adapter:
        lines = {r[0] for r in adapter.query('SELECT "CLAIM_ID" FROM "CLAIM_DETAILS"', limit=100_000).rows}
        claims = {r[0] for r in adapter.query('SELECT "CLAIM_ID" FROM "CLAIMS"', limit=100_000).rows}
        patients = {r[0] for r in adapter.query('SELECT "PATIENT_ID" FROM "CLAIMS"', limit=100_000).rows}
        values = '(SELECT DISTINCT "CLAIM_ID" AS v FROM "CLAIMS" WHERE "CLAIM_ID" IS NOT NULL) AS x'
        row = adapter.query(adapter.containment_sql(values, [("CLAIM_DETAILS", "CLAIM_ID"),
                                                             ("CLAIMS", "PATIENT_ID")]), limit=1).rows[0]
    assert [int(n) for n in row] == [len(claims), len(claims - lines), len(claims - patients)]
    assert 0 < len(claims - patients) < len(claims)


def test_duckdb_matches_a_regular_expression_against_the_whole_text(duck):
    with adapter_for(duck_connection(duck), mission=None) as adapter:
        _check_regex_match(adapter, whole_text=True)
