import contextvars
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from agents.access import adapter_for
from agents.connectors import ConnectorError, QueryRefused, QueryTimeout
from agents.connectors.base import DEFAULT_TIMEOUT_SECONDS, default_timeout, query_timeout
from agents.models import Connection
from tests.pipeline.conftest import ALLOWED, PG_SERVER, pg_connection, sqlite_connection


def _check_adapter(adapter, *, dialect):
    assert adapter.dialect == dialect
    assert {"PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS"} <= set(adapter.list_tables())
    tables = {t.name: t for t in adapter.introspect()}
    claims = tables["CLAIMS"]
    assert [c.name for c in claims.columns] == [
        "CLAIM_ID", "PATIENT_ID", "PROVIDER_ID", "SERVICE_DATE", "CLAIM_TYPE", "STATUS", "DIAGNOSIS_CODE"]
    assert claims.column("service_date").declared_type == "TEXT"
    assert claims.column("CLAIM_ID").declared_type == "INTEGER"
    assert claims.row_count == adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"')
    # A row limit cuts the result and says so.
    result = adapter.query('SELECT "CLAIM_ID" FROM "CLAIMS" ORDER BY 1', limit=5)
    assert [r[0] for r in result.rows] == [1, 2, 3, 4, 5]
    assert result.truncated and result.columns == ["CLAIM_ID"]
    # CTE names are not tables.
    assert adapter.scalar('WITH c AS (SELECT * FROM "CLAIMS") SELECT COUNT(*) FROM c') == claims.row_count


def test_sqlite_adapter_introspects_and_queries(demo_small):
    with adapter_for(sqlite_connection(demo_small), mission=None, allowed_tables=ALLOWED) as adapter:
        _check_adapter(adapter, dialect="sqlite")


@pytest.mark.postgres
@pytest.mark.django_db  # opening a PostgreSQL session compares it with the platform's own database
def test_postgresql_adapter_introspects_and_queries(pg_schema):
    with adapter_for(pg_connection(pg_schema), mission=None, allowed_tables=ALLOWED) as adapter:
        _check_adapter(adapter, dialect="postgres")


@pytest.mark.parametrize("sql", [
    'SELECT * FROM "CLAIMS" JOIN secrets ON 1 = 1',
    "SELECT name FROM sqlite_master",
    'SELECT * FROM "CLAIMS" WHERE CLAIM_ID IN (SELECT id FROM other_table)',
    'SELECT * FROM other."CLAIMS"',
])
def test_a_read_outside_the_allowed_tables_is_refused_and_reported(demo_small, sql):
    seen = []
    with adapter_for(sqlite_connection(demo_small), mission=None, allowed_tables=["CLAIMS"],
                     on_refused=seen.append) as adapter:
        refused = "not among the mission's allowed source tables|names a schema|database's own catalog"
        with pytest.raises(QueryRefused, match=refused) as caught:
            adapter.query(sql)
    assert seen == [caught.value]
    assert "CLAIMS" not in caught.value.tables


def test_introspecting_a_table_outside_the_list_is_refused(demo_small):
    with adapter_for(sqlite_connection(demo_small), mission=None, allowed_tables=["CLAIMS"]) as adapter:
        assert [t.name for t in adapter.introspect()] == ["CLAIMS"]
        with pytest.raises(QueryRefused, match="PATIENTS"):
            adapter.introspect(["PATIENTS"])


@pytest.mark.parametrize("sql", [
    'DELETE FROM "CLAIMS"', 'UPDATE "CLAIMS" SET STATUS = 1', 'DROP TABLE "CLAIMS"',
    'SELECT 1; DELETE FROM "CLAIMS"', "SELECT * FROM pragma_table_info('CLAIMS')",
])
def test_only_single_read_only_selects_are_allowed(demo_small, sql):
    with adapter_for(sqlite_connection(demo_small), mission=None, allowed_tables=ALLOWED) as adapter:
        with pytest.raises(QueryRefused):
            adapter.query(sql)
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 2000


def test_sqlite_file_is_opened_read_only(demo_small):
    with adapter_for(sqlite_connection(demo_small), mission=None) as adapter:
        with pytest.raises(Exception, match="readonly|read-only|not authorized"):
            adapter.raw.execute('DELETE FROM "CLAIMS"')


# Statements that are not a single plain read, each refused by the guard before anything runs, on every engine.
NOT_A_READ = [
    "ATTACH DATABASE '{path}' AS stolen",
    "DETACH DATABASE main",
    "PRAGMA query_only = OFF",
    "PRAGMA writable_schema = ON",
    "SELECT * INTO copy_of_claims FROM \"CLAIMS\"",
    "WITH gone AS (DELETE FROM \"CLAIMS\" RETURNING *) SELECT COUNT(*) FROM gone",
    "SELECT * FROM \"CLAIMS\" FOR UPDATE",
    "COPY \"CLAIMS\" TO '{path}'",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.pg_read_binary_file('/etc/passwd')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT * FROM dblink('dbname=postgres', 'SELECT key FROM authtoken_token') AS t(k text)",
    "SELECT query_to_xml('SELECT * FROM authtoken_token', true, true, '')",
    "SELECT current_setting('data_directory')",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT * FROM pg_authid",
    "SELECT load_extension('/tmp/evil')",
    "SELECT readfile('/etc/passwd')",
    "SELECT writefile('{path}', 'x')",
    "SELECT * FROM sqlite_dbpage",
    "SELECT ((((((((((1",
]


@pytest.mark.parametrize("sql", NOT_A_READ)
def test_the_guard_refuses_everything_but_one_plain_read_on_sqlite(demo_small, tmp_path, sql):
    target = tmp_path / "created-by-the-query.db"
    with adapter_for(sqlite_connection(demo_small), mission=None) as adapter:
        with pytest.raises(QueryRefused):
            adapter.query(sql.format(path=target))
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 2000
    assert not target.exists()


@pytest.mark.postgres
@pytest.mark.django_db  # opening a PostgreSQL session compares it with the platform's own database
@pytest.mark.parametrize("sql", NOT_A_READ)
def test_the_guard_refuses_everything_but_one_plain_read_on_postgresql(pg_schema, tmp_path, sql):
    with adapter_for(pg_connection(pg_schema), mission=None) as adapter:
        with pytest.raises(QueryRefused):
            adapter.query(sql.format(path=tmp_path / "x"))
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 300


def test_sqlite_itself_denies_attach_and_pragmas_the_parser_might_miss(demo_small, tmp_path):
    """The engine-level authorizer holds even for a statement that reached the driver without the guard."""
    target = tmp_path / "attached.db"
    with adapter_for(sqlite_connection(demo_small), mission=None) as adapter:
        for sql in (f"ATTACH DATABASE '{target}' AS x", "PRAGMA query_only = OFF", "SELECT load_extension('x')"):
            with pytest.raises(ConnectorError, match="only reads are allowed"):
                adapter.run_internal(sql)
        assert adapter.run_internal("SELECT COUNT(*) FROM \"CLAIMS\"").rows == [(2000,)]
    assert not target.exists()


SLOW = ('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) '
        'SELECT COUNT(*) FROM n')


def test_sqlite_timeout_stops_a_long_query(demo_small):
    with adapter_for(sqlite_connection(demo_small), mission=None) as adapter:
        with pytest.raises(QueryTimeout, match="longer than 0.2 s"):
            adapter.query(SLOW, timeout=0.2)


@pytest.mark.postgres
@pytest.mark.django_db  # opening a PostgreSQL session compares it with the platform's own database
def test_postgresql_timeout_and_read_only(pg_schema):
    with adapter_for(pg_connection(pg_schema), mission=None) as adapter:
        with pytest.raises(QueryTimeout, match="longer than 0.2 s"):
            adapter.query(SLOW, timeout=0.2)
        with pytest.raises(QueryRefused, match="pg_sleep"):
            adapter.query("SELECT pg_sleep(2)")
        with pytest.raises(ConnectorError, match="read-only"):
            adapter._execute('DELETE FROM "CLAIMS"', limit=1, timeout=5)
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 300


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_reads_only_the_rows_asked_for(pg_schema):
    """A query stops at the row limit on the server: two billion rows are never produced, let alone sent."""
    with adapter_for(pg_connection(pg_schema), mission=None) as adapter:
        result = adapter.query("SELECT generate_series(1, 2000000000) AS g", limit=3, timeout=10)
        assert result.rows == [(1,), (2,), (3,)] and result.truncated and result.columns == ["g"]
        # A query's own timeout lasts for that query only; the session keeps the default.
        with pytest.raises(QueryTimeout):
            adapter.query(SLOW, timeout=0.2)
        assert adapter.raw.execute("SHOW statement_timeout").fetchone() == ("30s",)
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 300


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_bounded_reads_keep_the_statement_as_written(pg_schema):
    """Reads run inside ``SELECT * FROM (...) LIMIT n + 1`` (planned like any query, parallel workers allowed):
    order, repeated and unnamed columns, VALUES, TABLE, a trailing comment or semicolon come through as written; a
    statement the wrapper cannot hold runs on a server-side cursor; errors are the statement's own."""
    with adapter_for(pg_connection(pg_schema), mission=None) as adapter:
        ordered = adapter.query('SELECT "CLAIM_ID" FROM "CLAIMS" ORDER BY "CLAIM_ID" DESC', limit=3)
        assert ordered.rows == [tuple(r) for r in adapter.raw.execute(
            'SELECT "CLAIM_ID" FROM "CLAIMS" ORDER BY "CLAIM_ID" DESC LIMIT 3').fetchall()]
        assert ordered.truncated
        adapter.raw.rollback()
        twice = adapter.query("SELECT 1 AS a, 2 AS a, 3")
        assert twice.columns == ["a", "a", "?column?"] and twice.rows == [(1, 2, 3)] and not twice.truncated
        assert adapter.run_internal("VALUES (1), (2)", limit=1).rows == [(1,)]
        assert adapter.run_internal('TABLE "CLAIMS"', limit=2).truncated
        assert adapter.query('SELECT COUNT(*) FROM "CLAIMS" -- all of them').rows == [(300,)]
        assert adapter.query('SELECT COUNT(*) FROM "CLAIMS";  ').rows == [(300,)]
        # The semicolon stays inside the wrapper here: the statement runs as written on a cursor instead.
        assert adapter.run_internal('SELECT COUNT(*) FROM "CLAIMS"; -- counted').rows == [(300,)]
        with pytest.raises(ConnectorError, match='column "NOPE" does not exist') as raised:
            adapter.query('SELECT "NOPE" FROM "CLAIMS"')
        assert "genesis_query" not in str(raised.value)
        with pytest.raises(ConnectorError, match='syntax error at or near "WHERE"'):
            adapter.run_internal("SELECT FROM WHERE")
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 300


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_introspection_matches_information_schema(pg_schema):
    """Tables and columns read from pg_catalog are what information_schema shows: the same tables and views, the
    same declared types (a domain's base type, ARRAY, USER-DEFINED), nullability, positions and privileges."""
    with psycopg.connect(PG_SERVER, autocommit=True, options=f"-c search_path={pg_schema}") as admin:
        admin.execute("CREATE DOMAIN positive AS integer NOT NULL CHECK (VALUE > 0)")
        admin.execute("CREATE TYPE mood AS ENUM ('calm', 'busy')")
        admin.execute('CREATE TABLE "MIXED" (a int, b varchar(10) NOT NULL, c numeric(12,2), d timestamp, '
                      "e char(3), f positive, g mood, h int[], i jsonb, gone text, j date)")
        admin.execute('ALTER TABLE "MIXED" DROP COLUMN gone')
        admin.execute('CREATE VIEW "MIXED_VIEW" AS SELECT a, j FROM "MIXED"')
        admin.execute('CREATE MATERIALIZED VIEW "NOT_LISTED" AS SELECT 1 AS x')
    info_tables = ("SELECT table_name FROM information_schema.tables WHERE table_schema = ANY (current_schemas(false)) "
                   "AND table_type IN ('BASE TABLE', 'VIEW') ORDER BY table_name")
    info_columns = ("SELECT column_name, upper(data_type), is_nullable = 'YES', ordinal_position FROM "
                    "information_schema.columns WHERE table_schema = ANY (current_schemas(false)) AND table_name = %s "
                    "ORDER BY ordinal_position")
    with adapter_for(pg_connection(pg_schema), mission=None) as adapter:
        tables = adapter.list_tables()
        assert tables == [r[0] for r in adapter.raw.execute(info_tables).fetchall()]
        assert {"MIXED", "MIXED_VIEW", "CLAIMS"} <= set(tables) and "NOT_LISTED" not in tables
        for table in tables:
            declared = [(c.name, c.declared_type, c.nullable, c.position) for c in adapter._columns(table)]
            assert declared == [tuple(r) for r in adapter.raw.execute(info_columns, [table]).fetchall()], table
        mixed = {c.name: c for c in adapter._columns("MIXED")}
        assert [mixed[n].declared_type for n in "abcdefghij"] == [
            "INTEGER", "CHARACTER VARYING", "NUMERIC", "TIMESTAMP WITHOUT TIME ZONE", "CHARACTER", "INTEGER",
            "USER-DEFINED", "ARRAY", "JSONB", "DATE"]
        assert not mixed["b"].nullable and not mixed["f"].nullable and mixed["a"].nullable
        assert mixed["j"].position == 11


def test_unreachable_connections_fail_clearly(tmp_path):
    missing = Connection(name="GONE", engine="sqlite", location=str(tmp_path / "nope.sqlite3"))
    with pytest.raises(ConnectorError, match="GONE: the SQLite file .* does not exist"):
        adapter_for(missing, mission=None).connect()
    down = Connection(name="DOWN", engine="postgresql", location="postgres://postgres@127.0.0.1:1/x")
    with pytest.raises(ConnectorError, match="DOWN: cannot reach PostgreSQL"):
        adapter_for(down, mission=None).connect()
    with pytest.raises(ConnectorError, match="no adapter"):
        adapter_for(Connection(name="D", engine="oracle", location="x"), mission=None)


def test_a_sqlite_location_is_opened_and_attached_resolved_and_named_as_written(demo_small, monkeypatch):
    """A relative location, with a prefix and URI parameters, opens the file from the working directory and its path
    is the absolute location's, which it is attached as; a missing file is named as the location writes it.
    An empty location names no file: no path, and opening it fails on "."."""
    monkeypatch.chdir(demo_small.parent)
    relative = Connection(name="HERE", engine="sqlite", location=f"sqlite:///{demo_small.name}?mode=ro")
    absolute = adapter_for(sqlite_connection(demo_small), mission=None)
    with adapter_for(relative, mission=None) as adapter:
        assert adapter.path == demo_small.resolve() == absolute.path
        claims = adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"')
        assert claims > 0
    with absolute, absolute.attached(adapter, "genesis_source"):
        assert absolute.run_internal('SELECT COUNT(*) FROM genesis_source."CLAIMS"').rows == [(claims,)]
    gone = Connection(name="GONE", engine="sqlite", location="file:gone.sqlite3?mode=ro")
    with pytest.raises(ConnectorError, match=r"^Connection GONE: the SQLite file gone.sqlite3 does not exist\.$"):
        adapter_for(gone, mission=None).connect()
    empty = adapter_for(Connection(name="EMPTY", engine="sqlite", location=""), mission=None)
    assert empty.path is None
    with pytest.raises(ConnectorError, match=r"^Connection EMPTY: the SQLite file \. does not exist\.$") as caught:
        empty.connect()
    assert (caught.value.field, caught.value.code) == ("location", "unreachable")
    with pytest.raises(ConnectorError, match="EMPTY names no SQLite file to attach"):
        with absolute.attached(empty, "genesis_source"):
            pass


def test_query_timeout_applies_to_queries_that_give_none_and_to_threads_given_its_context(demo_small):
    with adapter_for(sqlite_connection(demo_small), mission=None) as adapter:
        assert default_timeout() == DEFAULT_TIMEOUT_SECONDS
        with query_timeout(0.2):
            assert default_timeout() == 0.2
            with pytest.raises(QueryTimeout, match="longer than 0.2 s.*GENESIS_AGENT_QUERY_TIMEOUT_SECONDS"):
                adapter.query(SLOW)
            with ThreadPoolExecutor(max_workers=1) as pool:
                inherited = pool.submit(contextvars.copy_context().run, default_timeout).result()
                bare = pool.submit(default_timeout).result()
            assert (inherited, bare) == (0.2, DEFAULT_TIMEOUT_SECONDS)
            # A timeout given by the caller wins.
            assert adapter.query('SELECT COUNT(*) FROM "CLAIMS"', timeout=5).rows[0][0] > 0
        assert default_timeout() == DEFAULT_TIMEOUT_SECONDS


def test_a_sqlite_session_attaches_another_file_read_only_for_a_block_and_only_there(demo_small, tmp_path):
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE KEYS (K INTEGER)")
        db.executemany("INSERT INTO KEYS VALUES (?)", [(1,), (2,)])
    source = Connection(name="OTHER", engine="sqlite", location=str(other))
    with adapter_for(sqlite_connection(demo_small), mission=None) as adapter, \
            adapter_for(source, mission=None) as second:
        with adapter.attached(second, "genesis_source"):
            assert adapter.run_internal("SELECT COUNT(*) FROM genesis_source.KEYS").rows == [(2,)]
            with pytest.raises(ConnectorError, match="only reads are allowed"):
                adapter.run_internal("INSERT INTO genesis_source.KEYS VALUES (3)")
            with pytest.raises(ConnectorError):  # the session's own statements still may not attach
                adapter.run_internal(f"ATTACH DATABASE '{other}' AS again")
        with pytest.raises(ConnectorError, match="genesis_source"):
            adapter.run_internal("SELECT COUNT(*) FROM genesis_source.KEYS")
        with pytest.raises(ConnectorError, match="not a name"):
            with adapter.attached(second, "x; DROP"):
                pass


# (key table, key column) the patients of the claims are looked up in: their own table, a key that repeats its
# values (counted once each all the same), and a key holding only some of them.
CONTAINMENT_REFS = [("PATIENTS", "PATIENT_ID"), ("CLAIMS", "PATIENT_ID"), ("CLAIM_DETAILS", "CLAIM_ID")]


def _check_containment(adapter, form):
    values = '(SELECT DISTINCT "PATIENT_ID" AS v FROM "CLAIMS" WHERE "PATIENT_ID" IS NOT NULL) AS x'
    sql = adapter.containment_sql(values, CONTAINMENT_REFS)
    assert form in sql
    expected = [adapter.scalar('SELECT COUNT(DISTINCT "PATIENT_ID") FROM "CLAIMS"')] + [
        adapter.scalar(f'SELECT COUNT(DISTINCT "PATIENT_ID") FROM "CLAIMS" WHERE "PATIENT_ID" IS NOT NULL AND '  # noqa: S608
                       f'"PATIENT_ID" NOT IN (SELECT "{key}" FROM "{table}" WHERE "{key}" IS NOT NULL)')
        for table, key in CONTAINMENT_REFS]
    assert [int(n) for n in adapter.query(sql, limit=1).rows[0]] == expected
    assert expected[2] == 0 and 0 < expected[3] < expected[0]


def test_sqlite_looks_each_value_up_in_the_keys(demo_small):
    with adapter_for(sqlite_connection(demo_small), mission=None, allowed_tables=ALLOWED) as adapter:
        _check_containment(adapter, "NOT EXISTS")


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_joins_the_values_to_each_keys_distinct_values(pg_schema):
    with adapter_for(pg_connection(pg_schema), mission=None, allowed_tables=ALLOWED) as adapter:
        _check_containment(adapter, "LEFT JOIN (SELECT DISTINCT")


# Texts, and the ones a whole number's pattern (anchored, as a lossy cast's check writes it) matches.
REGEX_TEXTS = ["12", "-7", "+0", " 3", "1.5", "CLM000012", "12CLM", "", "it's"]
WHOLE_NUMBER = r"^[+-]?\d+$"


def _check_regex_match(adapter, *, whole_text: bool):
    """``regex_match_sql`` on data: the whole numbers among ``REGEX_TEXTS``; a pattern holding a quote; and an
    unanchored pattern, found anywhere in the text or only matched whole (``whole_text``)."""
    texts = ", ".join(f"({adapter.literal(text)})" for text in REGEX_TEXTS)

    def matching(pattern: str) -> list[str]:
        where = adapter.regex_match_sql("t.v", pattern)
        rows = adapter.query(f"SELECT t.v FROM (VALUES {texts}) AS t(v) WHERE {where}", limit=100).rows  # noqa: S608
        return sorted(row[0] for row in rows)

    assert matching(WHOLE_NUMBER) == ["+0", "-7", "12"]
    assert matching("^it's$") == ["it's"]
    anywhere = [" 3", "+0", "-7", "1.5", "12", "12CLM", "CLM000012"]
    assert matching(r"\d+") == (["12"] if whole_text else anywhere)


def test_sqlite_has_no_regular_expression_match(demo_small):
    with adapter_for(sqlite_connection(demo_small), mission=None) as adapter:
        assert adapter.regex_match_sql("t.v", WHOLE_NUMBER) is None
        with pytest.raises(ConnectorError, match="no such function: REGEXP"):
            adapter.query("SELECT '12' REGEXP '^[0-9]+$'")


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_finds_a_regular_expression_in_the_text(pg_schema):
    with adapter_for(pg_connection(pg_schema), mission=None) as adapter:
        _check_regex_match(adapter, whole_text=False)


UNIQUE_DDL = [
    'CREATE TABLE "KEYED" ("ID" INTEGER PRIMARY KEY, "CODE" TEXT UNIQUE, "A" INTEGER, "B" INTEGER, "C" TEXT, '
    '"D" INTEGER, "E" INTEGER, UNIQUE ("A", "B"))',
    'CREATE UNIQUE INDEX "keyed_c_partial" ON "KEYED" ("C") WHERE "C" IS NOT NULL',
    'CREATE UNIQUE INDEX "keyed_d_expression" ON "KEYED" (("D" + 1))',
    'CREATE INDEX "keyed_e_plain" ON "KEYED" ("E")',
]


def test_sqlite_unique_columns_are_the_keys_the_database_enforces_on_one_column(tmp_path):
    """The rowid key and a UNIQUE column; not a composite key, a partial or an expression index, a plain index."""
    path = tmp_path / "keyed.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in UNIQUE_DDL:
            db.execute(statement)
        db.execute('CREATE TABLE "TEXT_KEY" ("K" TEXT PRIMARY KEY, "V" INTEGER)')
        db.execute('CREATE TABLE "NO_KEY" ("K" INTEGER)')
    with adapter_for(sqlite_connection(path), mission=None) as adapter:
        assert adapter.unique_columns("KEYED") == {"ID", "CODE"}
        assert adapter.unique_columns("TEXT_KEY") == {"K"}
        assert adapter.unique_columns("NO_KEY") == set()
        adapter.allowed_tables = {"no_key"}
        with pytest.raises(QueryRefused):
            adapter.unique_columns("KEYED")
        # The pragmas it reads stay out of reach of a query.
        with pytest.raises(QueryRefused):
            adapter.query("SELECT * FROM pragma_index_list('NO_KEY')")


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_unique_columns_are_the_keys_the_database_enforces_on_one_column(pg_schema):
    with psycopg.connect(PG_SERVER, autocommit=True, options=f"-c search_path={pg_schema}") as admin:
        for statement in UNIQUE_DDL:
            admin.execute(statement)
    with adapter_for(pg_connection(pg_schema), mission=None) as adapter:
        assert adapter.unique_columns("KEYED") == {"ID", "CODE"}
        assert adapter.unique_columns("CLAIMS") == {"CLAIM_ID"}  # the demo's primary key
        assert adapter.unique_columns("NOPE") == set()
