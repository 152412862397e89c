"""The data-quality checks that count in SQL: a duplicated grain key, a missing reference (the target and the
source in one SQLite file, in two SQLite files, in two engines looked up a chunk at a time) and a mismatch on one
of several measures summed from the same source table, each caught with its counts and sample keys, and the number
of queries each check runs."""

import re
import sqlite3

import duckdb
import pytest

from agents.access import adapter_for
from agents.connectors.base import ConnectorError, QueryRefused
from agents.models import Connection
from pipeline.dbt.spec import target_from_dict
from pipeline.quality import checks
from pipeline.quality.checks import check_grain, check_reference, dbt_proven, run_checks
from pipeline.quality.reconcile import reconcile, reconcile_targets
from pipeline.quality.results import SAMPLE
from tests.pipeline.conftest import pg_scratch_schema

CLAIMS = {
    "name": "CLAIMS_OUT", "sql": "SELECT 1", "grain": ["CLAIM_ID", "LINE"],
    "columns": [
        {"name": "CLAIM_ID", "type": "INTEGER", "description": "The claim."},
        {"name": "LINE", "type": "INTEGER", "description": "The claim line."},
        {"name": "PROVIDER_ID", "type": "INTEGER", "description": "The provider."},
        {"name": "PAID", "type": "INTEGER", "description": "Paid cents.",
         "measure": {"function": "sum", "table": "claims", "expression": '"paid"'}},
        {"name": "BILLED", "type": "INTEGER", "description": "Billed cents.",
         "measure": {"function": "sum", "table": "claims", "expression": '"billed"'}},
        {"name": "LINES", "type": "INTEGER", "description": "How many lines.",
         "measure": {"function": "count", "table": "claims", "expression": "*"}},
    ],
}


def write_sqlite(path, statements):
    db = sqlite3.connect(path)
    with db:
        for statement in statements:
            db.execute(statement)
    db.close()


def source_rows(count=40):
    """Claims of providers 1..5; one line each; paid i, billed 2i."""
    return [(i, 1, i % 5 + 1, i, 2 * i) for i in range(1, count + 1)]


def build(path, rows, *, with_source=False):
    statements = ["CREATE TABLE CLAIMS_OUT (CLAIM_ID INTEGER, LINE INTEGER, PROVIDER_ID INTEGER, PAID INTEGER, "
                  "BILLED INTEGER, LINES INTEGER)"]
    statements += [f"INSERT INTO CLAIMS_OUT VALUES ({c}, {ln}, {p}, {paid}, {billed}, 1)"
                   for c, ln, p, paid, billed in rows]
    if with_source:
        statements += source_statements()
    write_sqlite(path, statements)


def source_statements():
    statements = ["CREATE TABLE providers (provider_id INTEGER PRIMARY KEY, name TEXT)",
                  "CREATE TABLE claims (claim_id INTEGER, line INTEGER, provider_id INTEGER, paid INTEGER, "
                  "billed INTEGER)"]
    statements += [f"INSERT INTO providers VALUES ({p}, 'p{p}')" for p in range(1, 6)]
    statements += [f"INSERT INTO claims VALUES ({c}, {ln}, {p}, {paid}, {billed})"
                   for c, ln, p, paid, billed in source_rows()]
    return statements


class Counting:
    """An adapter wrapper that counts the queries run through it."""

    def __init__(self, adapter):
        self.adapter, self.queries = adapter, []

    def __getattr__(self, name):
        return getattr(self.adapter, name)

    def query(self, sql, **kwargs):
        self.queries.append(sql)
        return self.adapter.query(sql, **kwargs)

    def run_internal(self, sql, **kwargs):
        self.queries.append(sql)
        return self.adapter.run_internal(sql, **kwargs)


@pytest.fixture
def spec():
    return target_from_dict(CLAIMS)


def test_a_duplicated_grain_key_is_counted_in_sql_and_only_a_sample_of_keys_is_read(tmp_path, spec):
    rows = source_rows()
    duplicated = rows[:SAMPLE + 5]  # more duplicated keys than the sample keeps
    build(tmp_path / "t.sqlite3", rows + duplicated + duplicated[:1])  # the first key three times
    with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                     mission=None) as raw:
        adapter = Counting(raw)
        [result] = check_grain(adapter, spec)
    assert not result.passed
    assert result.failing_rows == 2 * (SAMPLE + 5) + 1
    assert result.detail == f"{SAMPLE + 5} duplicated key(s)"
    assert len(result.sample_keys) == SAMPLE
    assert all(key in [[c, ln] for c, ln, *_ in duplicated] for key in result.sample_keys)
    assert len(adapter.queries) == 2 and "COUNT(*), COALESCE(SUM" in adapter.queries[0]


def test_a_unique_grain_passes_in_one_query(tmp_path, spec):
    build(tmp_path / "t.sqlite3", source_rows())
    with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                     mission=None) as raw:
        adapter = Counting(raw)
        [result] = check_grain(adapter, spec)
    assert result.passed and result.failing_rows == 0 and result.sample_keys == []
    assert len(adapter.queries) == 1


def orphans(rows):
    """Claims 7 and 8 point at provider 9, claim 9 at provider 10: neither exists in the source."""
    changed = {7: 9, 8: 9, 9: 10}
    return [(c, ln, changed.get(c, p), paid, billed) for c, ln, p, paid, billed in rows]


def assert_missing_providers(result):
    assert not result.passed
    assert result.failing_rows == 3
    assert sorted(result.sample_keys) == [[7, 1], [8, 1], [9, 1]]
    assert "missing providers.provider_id values: 10, 9" in result.detail


def test_a_missing_reference_in_the_same_database_is_found_by_an_anti_join(tmp_path, spec):
    path = tmp_path / "both.sqlite3"
    build(path, orphans(source_rows()), with_source=True)
    connection = Connection(name="BOTH", engine="sqlite", location=str(path))
    with adapter_for(connection, mission=None) as raw:
        adapter = Counting(raw)
        result = check_reference(adapter, adapter, spec, "PROVIDER_ID", "providers", "provider_id",
                                 family="integer")
    assert_missing_providers(result)
    assert "NOT EXISTS" in result.sql[0]
    assert len(adapter.queries) == 3  # the count, the missing values, the sample keys
    build(tmp_path / "good.sqlite3", source_rows(), with_source=True)
    good = Connection(name="GOOD", engine="sqlite", location=str(tmp_path / "good.sqlite3"))
    with adapter_for(good, mission=None) as adapter:
        assert check_reference(adapter, adapter, spec, "PROVIDER_ID", "providers", "provider_id").passed


def test_a_missing_reference_in_another_sqlite_file_is_found_by_an_anti_join_on_the_attached_file(tmp_path, spec):
    build(tmp_path / "t.sqlite3", orphans(source_rows()))
    write_sqlite(tmp_path / "s.sqlite3", source_statements())
    with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                     mission=None) as target, \
            adapter_for(Connection(name="S", engine="sqlite", location=str(tmp_path / "s.sqlite3")),
                        mission=None) as raw_source:
        source = Counting(raw_source)
        result = check_reference(target, source, spec, "PROVIDER_ID", "providers", "provider_id",
                                 family="integer")
        assert_missing_providers(result)
        assert "genesis_source" in result.sql[0] and source.queries == []  # no source key read into Python
        build(tmp_path / "good.sqlite3", source_rows())
        with adapter_for(Connection(name="G", engine="sqlite", location=str(tmp_path / "good.sqlite3")),
                         mission=None) as good:
            assert check_reference(good, source, spec, "PROVIDER_ID", "providers", "provider_id").passed
    # The attached connection reads only: the source file is unchanged and still opens.
    db = sqlite3.connect(tmp_path / "s.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM providers").fetchone() == (5,)
    db.close()


def test_a_missing_reference_in_another_engine_is_found_a_chunk_of_values_at_a_time(tmp_path, spec, monkeypatch):
    monkeypatch.setattr(checks, "CHUNK", 2)
    build(tmp_path / "t.sqlite3", orphans(source_rows()))
    source_path = tmp_path / "s.duckdb"
    db = duckdb.connect(str(source_path))
    db.execute("CREATE TABLE providers (provider_id INTEGER, name VARCHAR)")
    db.execute("INSERT INTO providers SELECT range + 1, 'p' FROM range(5)")
    db.close()
    with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                     mission=None) as target, \
            adapter_for(Connection(name="S", engine="duckdb", location=str(source_path)), mission=None) as raw:
        source = Counting(raw)
        result = check_reference(target, source, spec, "PROVIDER_ID", "providers", "provider_id",
                                 family="integer")
    assert_missing_providers(result)
    # Seven distinct provider ids in the target, two per lookup: four lookups, each naming only its own values.
    assert len(source.queries) == 4
    in_lists = [re.findall(r" IN \(([^)]*)\)", q) for q in source.queries]
    assert all(len(lists) == 1 and lists[0].count(",") <= 1 for lists in in_lists)

    # The lookups skip the parse-level guard, not the allowed tables: a source table the mission may not read is
    # refused before any value is looked up.
    with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                     mission=None) as target, \
            adapter_for(Connection(name="S", engine="duckdb", location=str(source_path)), mission=None) as raw:
        raw.allowed_tables = {"claims"}
        source = Counting(raw)
        with pytest.raises(QueryRefused, match="providers"):
            check_reference(target, source, spec, "PROVIDER_ID", "providers", "provider_id", family="integer")
        assert source.queries == []


class Fetched:
    """Records how many rows each query of an adapter brought into Python (its ``_execute``, under every read)."""

    def __init__(self, adapter, monkeypatch):
        self.rows: list[int] = []
        execute = adapter._execute

        def recording(sql, **kwargs):
            result = execute(sql, **kwargs)
            self.rows.append(len(result.rows))
            return result

        monkeypatch.setattr(adapter, "_execute", recording)


def duckdb_providers(path, ids):
    db = duckdb.connect(str(path))
    db.execute("CREATE TABLE providers (provider_id INTEGER, name VARCHAR)")
    db.executemany("INSERT INTO providers VALUES (?, 'p')", [(i,) for i in ids])
    db.close()


def test_a_cross_engine_reference_check_reads_both_sides_a_chunk_at_a_time(tmp_path, spec, monkeypatch):
    # 150 distinct provider ids (two claims each); the source lacks the multiples of 7: 21 ids, 42 claims.
    rows = [(i, 1, i % 150 + 1, i, 2 * i) for i in range(300)]
    build(tmp_path / "t.sqlite3", rows)
    known = [p for p in range(1, 151) if p % 7]
    duckdb_providers(tmp_path / "s.duckdb", known)
    missing = sorted((p for p in range(1, 151) if p % 7 == 0), key=str)
    target_connection = Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3"))
    source_connection = Connection(name="S", engine="duckdb", location=str(tmp_path / "s.duckdb"))

    def check(page, chunk):
        monkeypatch.setattr(checks, "PAGE", page)
        monkeypatch.setattr(checks, "CHUNK", chunk)
        with adapter_for(target_connection, mission=None) as raw_target, \
                adapter_for(source_connection, mission=None) as raw_source:
            target, source = Counting(raw_target), Counting(raw_source)
            fetched = Fetched(raw_target, monkeypatch), Fetched(raw_source, monkeypatch)
            result = check_reference(target, source, spec, "PROVIDER_ID", "providers", "provider_id",
                                     family="integer")
        return result, target.queries, source.queries, fetched

    result, target_queries, source_queries, (target_rows, source_rows_) = check(14, 7)
    assert not result.passed and result.failing_rows == 42
    assert result.detail == ("providers.provider_id; missing providers.provider_id values: "
                             + ", ".join(map(str, missing[:SAMPLE])) + " (21 distinct)")
    assert sorted(result.sample_keys) == sorted([c, 1] for c, _, p, *_ in rows if p in missing[:SAMPLE])[:SAMPLE]
    # 150 values, 14 a page: 11 pages of the target's values, then the sample keys; 7 a lookup: 22 lookups.
    assert len(target_queries) == 12 and len(source_queries) == 22
    assert all("ORDER BY" in q and "LIMIT 14" in q for q in target_queries[:-1])
    assert max(source_rows_.rows) <= 7 and max(target_rows.rows[:-1]) <= 14 and target_rows.rows[-1] <= SAMPLE
    assert sum(target_rows.rows[:-1]) == 150  # each value read once
    # The same result as when every value is read in one page (the check before it read the target in pages)...
    one_page = check(10_000, 10_000)[0]
    assert (one_page.failing_rows, one_page.detail, one_page.sample_keys) == (
        result.failing_rows, result.detail, result.sample_keys)
    # ...and the same counts as the anti-join in one database (whose examples are the first missing values in SQL's
    # order, here numeric, where the chunked comparison's are the first by text).
    build(tmp_path / "both.sqlite3", rows, with_source=True)
    write_sqlite(tmp_path / "both.sqlite3", ["DELETE FROM providers",
                                             *[f"INSERT INTO providers VALUES ({p}, 'p')" for p in known]])
    with adapter_for(Connection(name="B", engine="sqlite", location=str(tmp_path / "both.sqlite3")),
                     mission=None) as both:
        joined = check_reference(both, both, spec, "PROVIDER_ID", "providers", "provider_id", family="integer")
    assert "NOT EXISTS" in joined.sql[0]
    assert joined.failing_rows == result.failing_rows and joined.detail.endswith("(21 distinct)")


def test_a_page_bound_that_reads_back_lower_repeats_no_value_and_one_that_cannot_advance_stops(tmp_path, spec,
                                                                                             monkeypatch):
    build(tmp_path / "t.sqlite3", orphans(source_rows()))
    duckdb_providers(tmp_path / "s.duckdb", range(1, 6))
    with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                     mission=None) as target, \
            adapter_for(Connection(name="S", engine="duckdb", location=str(tmp_path / "s.duckdb")),
                        mission=None) as source:
        # A bound one below the last value read brings that value back at the head of the next page.
        monkeypatch.setattr(target, "literal", lambda value: str(value - 1))
        monkeypatch.setattr(checks, "PAGE", 2)
        assert_missing_providers(check_reference(target, source, spec, "PROVIDER_ID", "providers", "provider_id",
                                                 family="integer"))
        monkeypatch.setattr(checks, "PAGE", 1)
        with pytest.raises(ConnectorError, match="cannot be read a page at a time"):
            check_reference(target, source, spec, "PROVIDER_ID", "providers", "provider_id", family="integer")


CODES = {"name": "CODES", "sql": "SELECT 1", "grain": ["ID"],
         "columns": [{"name": "ID", "type": "INTEGER", "description": "The row."},
                     {"name": "CODE", "type": "TEXT", "description": "A code of the source's."}]}
# Numbers, a text that reads as one of them, cases, accents, punctuation and blobs: on SQLite (which orders numbers
# before text before blobs) and on PostgreSQL (a linguistic collation) the pages follow the target's own order.
MIXED = [*range(1, 13), "10", "a", "A", "b", "B", "ab", "a b", "Ab", "é", "e", "z", "_x", "-", "O'Hara", "",
         "x'); DROP TABLE CODES; --", b"\x00", b"\x01\x02"]
KNOWN = ["1", "2", "3", "10", "11", "a", "B", "ab", "e", "O'Hara", "-"]


def expected_missing(values):
    """What the check reports, computed here: a value is found when the source holds its text (text family)."""
    missing = [v for v in values if str(v) not in KNOWN]
    return missing, sorted(missing, key=str)[:SAMPLE]


def assert_codes_result(result, values, *, rows_per_value=2):
    missing, first = expected_missing(values)
    assert result.failing_rows == rows_per_value * len(missing)
    suffix = f" ({len(missing)} distinct)" if len(missing) > SAMPLE else ""
    assert result.detail.split("values: ", 1)[1] == ", ".join(str(m) for m in first) + suffix


def test_a_cross_engine_reference_check_pages_mixed_types_in_the_targets_own_order(tmp_path, monkeypatch):
    spec = target_from_dict(CODES)
    db = sqlite3.connect(tmp_path / "t.sqlite3")
    with db:
        db.execute("CREATE TABLE CODES (ID INTEGER, CODE)")  # no affinity: each value keeps its storage class
        db.executemany("INSERT INTO CODES VALUES (?, ?)", [(i, v) for i, v in enumerate(MIXED + MIXED)])
    db.close()
    db = duckdb.connect(str(tmp_path / "s.duckdb"))
    db.execute("CREATE TABLE codes (code VARCHAR)")
    db.executemany("INSERT INTO codes VALUES (?)", [(k,) for k in KNOWN])
    db.close()
    results = {}
    for chunk in (3, 10_000):
        monkeypatch.setattr(checks, "PAGE", chunk)
        monkeypatch.setattr(checks, "CHUNK", max(chunk - 1, 1))
        with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                         mission=None) as target, \
                adapter_for(Connection(name="S", engine="duckdb", location=str(tmp_path / "s.duckdb")),
                            mission=None) as source:
            results[chunk] = check_reference(target, source, spec, "CODE", "codes", "code", family="text")
    assert_codes_result(results[3], MIXED)
    assert (results[3].failing_rows, results[3].detail) == (results[10_000].failing_rows, results[10_000].detail)
    assert sorted(map(str, results[3].sample_keys)) == sorted(map(str, results[10_000].sample_keys))


@pytest.fixture
def pg_target():
    """A scratch schema on the local PostgreSQL server, dropped afterwards."""
    with pg_scratch_schema("genesis_refs") as found:
        yield found


@pytest.mark.postgres
def test_a_reference_check_from_postgresql_to_sqlite_pages_text_in_postgresqls_collation(tmp_path, monkeypatch,
                                                                                            pg_target):
    from urllib.parse import quote

    admin, schema = pg_target
    texts = [v for v in MIXED if isinstance(v, str)]
    admin.execute(f'CREATE TABLE "{schema}"."CODES" ("ID" integer, "CODE" text)')
    with admin.cursor() as cursor:
        cursor.executemany(f'INSERT INTO "{schema}"."CODES" VALUES (%s, %s)',  # noqa: S608 - a test's own schema
                           [(i, v) for i, v in enumerate(texts + texts)])
    write_sqlite(tmp_path / "s.sqlite3", ["CREATE TABLE codes (code TEXT)",
                                          *[f"INSERT INTO codes VALUES ('{k.replace(chr(39), chr(39) * 2)}')"
                                            for k in KNOWN]])
    target_connection = Connection(name="PG_T", engine="postgresql", location=(
        f"postgres://postgres@127.0.0.1:5432/test?options={quote(f'-c search_path={schema}')}"))
    spec = target_from_dict(CODES)
    results = {}
    for chunk in (2, 10_000):
        monkeypatch.setattr(checks, "PAGE", chunk)
        monkeypatch.setattr(checks, "CHUNK", chunk)
        with adapter_for(target_connection, mission=None) as raw_target, \
                adapter_for(Connection(name="S", engine="sqlite", location=str(tmp_path / "s.sqlite3")),
                            mission=None) as source:
            target = Counting(raw_target)
            results[chunk] = check_reference(target, source, spec, "CODE", "codes", "code", family="text")
        if chunk == 2:
            assert len(target.queries) == len(set(texts)) // 2 + 2  # the pages (the last one partial), the sample
    assert_codes_result(results[2], texts)
    assert (results[2].failing_rows, results[2].detail) == (results[10_000].failing_rows, results[10_000].detail)
    assert sorted(results[2].sample_keys) == sorted(results[10_000].sample_keys)


def test_a_mismatch_on_one_of_several_measures_of_the_same_table_fails_that_measure_only(tmp_path, spec):
    rows = source_rows()
    rows[3] = (*rows[3][:4], rows[3][4] + 100)  # one line's billed amount is off in the target
    build(tmp_path / "t.sqlite3", rows)
    write_sqlite(tmp_path / "s.sqlite3", source_statements())
    with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                     mission=None) as raw_target, \
            adapter_for(Connection(name="S", engine="sqlite", location=str(tmp_path / "s.sqlite3")),
                        mission=None) as raw_source:
        target, source = Counting(raw_target), Counting(raw_source)
        results = {r.column: r for r in reconcile(target, source, spec)}
    assert set(results) == {"PAID", "BILLED", "LINES"}
    assert results["PAID"].passed and results["LINES"].passed
    billed = results["BILLED"]
    assert not billed.passed
    assert "target total 1,740 but source total 1,640" in billed.detail
    assert len(target.queries) == 1 and len(source.queries) == 1  # one pass per side for the three measures


def test_the_measures_of_several_targets_over_one_source_table_read_it_once(tmp_path, spec):
    build(tmp_path / "t.sqlite3", source_rows())
    db = sqlite3.connect(tmp_path / "t.sqlite3")
    with db:  # a second target over the same claims, whose paid total misses a claim
        db.execute("CREATE TABLE CLAIMS_COPY AS SELECT * FROM CLAIMS_OUT WHERE CLAIM_ID <> 5")
    db.close()
    write_sqlite(tmp_path / "s.sqlite3", source_statements())
    copy = target_from_dict({**CLAIMS, "name": "CLAIMS_COPY"})
    with adapter_for(Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3")),
                     mission=None) as raw_target, \
            adapter_for(Connection(name="S", engine="sqlite", location=str(tmp_path / "s.sqlite3")),
                        mission=None) as raw_source:
        target, source = Counting(raw_target), Counting(raw_source)
        results = reconcile_targets(target, source, [spec, copy])
    failed = [(r.target, r.column) for r in results if not r.passed]
    assert len(results) == 6 and failed == [("CLAIMS_COPY", "PAID"), ("CLAIMS_COPY", "BILLED"),
                                           ("CLAIMS_COPY", "LINES")]
    assert len(source.queries) == 1 and len(target.queries) == 2


def test_a_check_a_passing_dbt_test_proves_is_not_run_again_unless_its_grain_has_nulls(tmp_path, spec):
    rows = source_rows()
    build(tmp_path / "t.sqlite3", rows + rows[:1], with_source=True)  # claim 1 twice: the grain is not unique
    connection = Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3"))
    proven = dbt_proven({"nodes": {
        "test.p.unique_combo": {"resource_type": "test", "name": "combo", "attached_node": "model.p.CLAIMS_OUT",
                                "test_metadata": {"name": "genesis_unique_combination",
                                                  "kwargs": {"columns": ['"CLAIM_ID"', '"LINE"']}}},
        "test.p.refs": {"resource_type": "test", "name": "refs", "attached_node": "model.p.CLAIMS_OUT",
                        "test_metadata": {"name": "relationships", "kwargs": {
                            "column_name": '"PROVIDER_ID"', "to": "source('bronze', 'providers')",
                            "field": '"provider_id"'}}},
        "test.p.failed_refs": {"resource_type": "test", "name": "failed", "attached_node": "model.p.CLAIMS_OUT",
                               "test_metadata": {"name": "relationships", "kwargs": {
                                   "column_name": '"CLAIM_ID"', "to": "source('bronze', 'claims')",
                                   "field": '"claim_id"'}}},
    }}, {"test.p.unique_combo": "pass", "test.p.refs": "pass", "test.p.failed_refs": "warn"})
    assert set(proven.values()) == {"combo", "refs"}
    assert dbt_proven({"nodes": {"test.p.nn": {
        "resource_type": "test", "name": "nn", "attached_node": "model.p.CLAIMS_OUT",
        "test_metadata": {"name": "not_null", "kwargs": {"column_name": '"CLAIM_ID"'}}}}},
        {"test.p.nn": "pass"}) == {("not_null", "CLAIMS_OUT", "CLAIM_ID"): "nn"}
    results = {(r.check, r.column): r for r in run_checks(
        mission=None, targets=[spec], target_connection=connection, source_connection=connection,
        references={"CLAIMS_OUT.PROVIDER_ID": "providers.provider_id"}, proven=proven)}
    # Trusted as dbt says (here the test result was made up: the platform does not run the count again).
    assert "proven by dbt test combo" in results[("unique_grain", "CLAIM_ID, LINE")].detail
    assert "proven by dbt test refs" in results[("references", "PROVIDER_ID")].detail
    build(tmp_path / "nulls.sqlite3", rows + [("NULL", 1, 1, 0, 0), ("NULL", 1, 1, 0, 0)], with_source=True)
    nulls = Connection(name="N", engine="sqlite", location=str(tmp_path / "nulls.sqlite3"))
    results = {(r.check, r.column): r for r in run_checks(
        mission=None, targets=[spec], target_connection=nulls, source_connection=nulls, proven=proven)}
    # A null in the grain: dbt's unique tests skip nulls, so the platform counts the grain itself.
    grain = results[("unique_grain", "CLAIM_ID, LINE")]
    assert not grain.passed and grain.failing_rows == 2 and "proven" not in grain.detail
    assert not results[("not_null", "CLAIM_ID")].passed


def test_the_row_checks_and_the_targets_totals_share_one_pass_and_still_catch_a_mismatch(tmp_path, spec,
                                                                                          monkeypatch):
    from agents.connectors.sqlite import SQLiteAdapter

    ran = []
    execute = SQLiteAdapter._execute

    def counted(self, sql, **kwargs):
        ran.append(sql)
        return execute(self, sql, **kwargs)

    monkeypatch.setattr(SQLiteAdapter, "_execute", counted)
    rows = source_rows()
    rows[3] = (*rows[3][:4], rows[3][4] + 100)
    build(tmp_path / "t.sqlite3", rows, with_source=True)
    connection = Connection(name="T", engine="sqlite", location=str(tmp_path / "t.sqlite3"))
    results = run_checks(mission=None, targets=[spec], target_connection=connection, source_connection=connection)
    failed = [(r.check, r.column) for r in results if not r.passed]
    assert failed == [("reconcile", "BILLED")]
    billed = next(r for r in results if r.column == "BILLED" and r.check == "reconcile")
    assert "target total 1,740 but source total 1,640" in billed.detail
    over_target = [sql for sql in ran if 'FROM "CLAIMS_OUT"' in sql and "GROUP BY" not in sql]
    assert len(over_target) == 1 and 'SUM("BILLED")' in over_target[0] and "IS NULL" in over_target[0]


def test_a_date_column_on_sqlite_takes_only_iso_dates_as_text(tmp_path):
    spec = target_from_dict({"name": "VISITS", "sql": "SELECT 1", "grain": ["ID"], "columns": [
        {"name": "ID", "type": "INTEGER", "description": "The visit."},
        {"name": "DAY", "type": "DATE", "description": "The day."}]})
    values = {1: "'2024-01-05'", 2: "'2024-1-5'", 3: "'now'", 4: "20240105", 5: "'2024-01-05 10:00'",
              6: "NULL", 7: "'0999-12-31'", 8: "'2024-13-01'"}
    write_sqlite(tmp_path / "v.sqlite3", ["CREATE TABLE VISITS (ID INTEGER, DAY DATE)"]
                 + [f"INSERT INTO VISITS VALUES ({k}, {v})" for k, v in values.items()])
    with adapter_for(Connection(name="V", engine="sqlite", location=str(tmp_path / "v.sqlite3")),
                     mission=None) as adapter:
        results, _ = checks.check_rows(adapter, spec)
    day = next(r for r in results if r.check == "type" and r.column == "DAY")
    assert day.failing_rows == 5 and sorted(day.sample_keys) == [2, 3, 4, 5, 8]
