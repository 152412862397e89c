import pytest

from agents.connectors import ConnectorError, QueryRefused, QueryTimeout, adapter_for
from agents.models import Connection
from tests.agents.conftest import ALLOWED, pg_connection, sqlite_connection


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
    with adapter_for(sqlite_connection(demo_small), allowed_tables=ALLOWED) as adapter:
        _check_adapter(adapter, dialect="sqlite")


@pytest.mark.postgres
def test_postgresql_adapter_introspects_and_queries(pg_schema):
    with adapter_for(pg_connection(pg_schema), allowed_tables=ALLOWED) as adapter:
        _check_adapter(adapter, dialect="postgres")


@pytest.mark.parametrize("sql", [
    'SELECT * FROM "CLAIMS" JOIN secrets ON 1 = 1',
    "SELECT name FROM sqlite_master",
    'SELECT * FROM "CLAIMS" WHERE CLAIM_ID IN (SELECT id FROM other_table)',
    'SELECT * FROM other."CLAIMS"',
])
def test_a_read_outside_the_allowed_tables_is_refused_and_reported(demo_small, sql):
    seen = []
    with adapter_for(sqlite_connection(demo_small), allowed_tables=["CLAIMS"], on_refused=seen.append) as adapter:
        refused = "not among the mission's allowed source tables|names a schema"
        with pytest.raises(QueryRefused, match=refused) as caught:
            adapter.query(sql)
    assert seen == [caught.value]
    assert "CLAIMS" not in caught.value.tables


def test_introspecting_a_table_outside_the_list_is_refused(demo_small):
    with adapter_for(sqlite_connection(demo_small), allowed_tables=["CLAIMS"]) as adapter:
        assert [t.name for t in adapter.introspect()] == ["CLAIMS"]
        with pytest.raises(QueryRefused, match="PATIENTS"):
            adapter.introspect(["PATIENTS"])


@pytest.mark.parametrize("sql", [
    'DELETE FROM "CLAIMS"', 'UPDATE "CLAIMS" SET STATUS = 1', 'DROP TABLE "CLAIMS"',
    'SELECT 1; DELETE FROM "CLAIMS"', "SELECT * FROM pragma_table_info('CLAIMS')",
])
def test_only_single_read_only_selects_are_allowed(demo_small, sql):
    with adapter_for(sqlite_connection(demo_small), allowed_tables=ALLOWED) as adapter:
        with pytest.raises(QueryRefused):
            adapter.query(sql)
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 2000


def test_sqlite_file_is_opened_read_only(demo_small):
    with adapter_for(sqlite_connection(demo_small)) as adapter:
        with pytest.raises(Exception, match="readonly|read-only"):
            adapter.raw.execute('DELETE FROM "CLAIMS"')


SLOW = ('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) '
        'SELECT COUNT(*) FROM n')


def test_sqlite_timeout_stops_a_long_query(demo_small):
    with adapter_for(sqlite_connection(demo_small)) as adapter:
        with pytest.raises(QueryTimeout, match="longer than 0.2 s"):
            adapter.query(SLOW, timeout=0.2)


@pytest.mark.postgres
def test_postgresql_timeout_and_read_only(pg_schema):
    with adapter_for(pg_connection(pg_schema)) as adapter:
        with pytest.raises(QueryTimeout, match="longer than 0.2 s"):
            adapter.query(SLOW, timeout=0.2)
        with pytest.raises(QueryRefused, match="pg_sleep"):
            adapter.query("SELECT pg_sleep(2)")
        with pytest.raises(ConnectorError, match="read-only"):
            adapter._execute('DELETE FROM "CLAIMS"', limit=1, timeout=5)
        assert adapter.scalar('SELECT COUNT(*) FROM "CLAIMS"') == 300


def test_unreachable_connections_fail_clearly(tmp_path):
    missing = Connection(name="GONE", engine="sqlite", location=str(tmp_path / "nope.sqlite3"))
    with pytest.raises(ConnectorError, match="GONE: the SQLite file .* does not exist"):
        adapter_for(missing).connect()
    down = Connection(name="DOWN", engine="postgresql", location="postgres://postgres@127.0.0.1:1/x")
    with pytest.raises(ConnectorError, match="DOWN: cannot reach PostgreSQL"):
        adapter_for(down).connect()
    with pytest.raises(ConnectorError, match="no adapter"):
        adapter_for(Connection(name="D", engine="duckdb", location="x.duckdb"))
