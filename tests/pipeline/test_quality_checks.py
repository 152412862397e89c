"""The data-quality checks that count in SQL: a duplicated grain key, a missing reference (the target and the
source in one SQLite file, in two SQLite files, in two engines looked up a chunk at a time) and a mismatch on one
of several measures summed from the same source table, each caught with its counts and sample keys, and the number
of queries each check runs."""

import sqlite3

import duckdb
import pytest

from agents.access import adapter_for
from agents.models import Connection
from pipeline.dbt.spec import target_from_dict
from pipeline.quality import checks
from pipeline.quality.checks import check_grain, check_reference, dbt_proven, run_checks
from pipeline.quality.reconcile import reconcile, reconcile_targets
from pipeline.quality.results import SAMPLE

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
    assert all(q.count(",") <= 1 and "IN (" in q for q in source.queries)


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
