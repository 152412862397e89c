"""The backfill after the build: every month verified against the source (rows and measure totals), only the months
that differ rebuilt; incremental targets built month by month, each month once, equal to the table build."""

from __future__ import annotations

import copy
import datetime
import json
import sqlite3
import threading
from collections import Counter

import pytest
import yaml

from agents.base import Failed, Succeeded
from agents.connectors.base import query_timeout
from agents.connectors.sqlite import SQLiteAdapter
from pipeline.dbt.build import plan_build
from pipeline.quality.refresh import refresh_run
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline, bronze_with_orphans
from tests.pipeline.build.healthcare import (
    GRAINS,
    TARGETS,
    assert_target_matches,
    expected_targets,
    read_bronze,
    read_sqlite_table,
)

pytestmark = pytest.mark.django_db

_SUM_CHARGE = {"function": "sum", "table": "CLAIM_DETAILS", "expression": '"CHARGE_AMOUNT"', "round": 2}
_SUM_PAID = {"function": "sum", "table": "CLAIM_DETAILS", "expression": '"PAID_AMOUNT"', "round": 2}
_COUNT_CLAIMS = {"function": "count", "table": "CLAIMS", "expression": "*"}
MEASURES = {
    "CLAIM_SUMMARY": {"TOTAL_CHARGE": _SUM_CHARGE, "INSURANCE_PAID": _SUM_PAID},
    "PROVIDER_SUMMARY": {"TOTAL_CLAIMS": _COUNT_CLAIMS, "TOTAL_CHARGES": _SUM_CHARGE},
    "PATIENT_SUMMARY": {"TOTAL_CLAIMS": _COUNT_CLAIMS, "TOTAL_PAID": _SUM_PAID},
}


def targets(*, materialized: str = "table") -> list[dict]:
    """The healthcare targets with the measures a mapping spec records for reconciliation."""
    out = copy.deepcopy(TARGETS)
    for target in out:
        target["materialized"] = materialized
        for column in target["columns"]:
            measure = MEASURES[target["target_table"]].get(column["name"])
            if measure:
                column["measure"] = measure
    return out


def test_a_built_rows_month_comes_from_its_period_columns():
    from pipeline.dbt.spec import ColumnSpec, TargetSpec
    from pipeline.dbt.sqlgen import Partition, model_sql, render_month, target_period_sql

    partition = Partition(table="ORDERS", column="ORDERED_ON")
    by_parts = TargetSpec(name="T", sql="SELECT 1", columns=[
        ColumnSpec(name="Y", type="INTEGER", period_part="year"), ColumnSpec(name="M", type="INTEGER",
                                                                             period_part="month")])
    copied = TargetSpec(name="T", sql="SELECT 1", columns=[
        ColumnSpec(name="DAY", type="DATE", source_table="orders", source_column="ordered_on")])
    db = sqlite3.connect(":memory:")
    db.execute('CREATE TABLE T ("Y" INTEGER, "M" INTEGER, "DAY" TEXT)')
    db.execute("INSERT INTO T VALUES (2023, 5, '2023-05-31'), (2024, 11, '2024-11-01')")
    for target in (by_parts, copied):
        sql = target_period_sql(target, partition)
        assert [r[0] for r in db.execute(f"SELECT {sql} FROM T ORDER BY 1")] == ["2023-05", "2024-11"]  # noqa: S608
    # A year grain keys its rows by the year; a week grain by its start, which a copied date is not.
    assert target_period_sql(TargetSpec(name="T", sql="", period_unit="year", columns=by_parts.columns),
                             partition) == 'CAST("Y" AS TEXT)'
    assert target_period_sql(TargetSpec(name="T", sql="", period_unit="week", columns=copied.columns),
                             partition) is None
    assert target_period_sql(TargetSpec(name="T", sql="", columns=[ColumnSpec(name="X")]), partition) is None

    # An incremental model reads the latest month when built without one, and the given month when given one.
    incremental = TargetSpec(name="T", sql="SELECT o.ORDERED_ON AS DAY FROM ORDERS AS o", columns=copied.columns,
                             materialized="incremental")
    model = model_sql(incremental, dialect="sqlite", bronze_tables={"ORDERS": "ORDERS"}, partition=partition)
    assert "genesis_month_filter('\"ORDERED_ON\"', source('bronze', 'ORDERS'))" in model
    assert "\"ORDERED_ON\" >= '2023-05' and \"ORDERED_ON\" < '2023-06'" in render_month(model, month="2023-05",
                                                                                      dialect="sqlite")


def report(context, name: str = "backfill_report.json"):
    return json.loads(Artifact.objects.get(run=context.run, name=name).file.read())


def months_of(path, table: str) -> set[str]:
    sql = {"CLAIM_SUMMARY": 'SELECT DISTINCT substr("CLAIM_DATE", 1, 7) FROM "CLAIM_SUMMARY"'}.get(
        table, f'SELECT DISTINCT printf(\'%04d-%02d\', "REPORT_YEAR", "REPORT_MONTH") FROM "{table}"')  # noqa: S608
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute(sql)}
    finally:
        db.close()


def test_after_the_build_the_backfill_rebuilds_exactly_the_months_that_differ(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    specs = targets()
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
    expected = expected_targets(read_bronze(bronze_b))

    # Right after the build every month matches: nothing is rebuilt.
    outcome, context = pipeline.run("backfill", key="verify", targets=specs)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {} and outcome.outputs["builds"] == 0
    first = report(context)
    assert first["verified_after"] == [] and all(c["ok"] for c in first["verified_before"])
    assert {c["target"] for c in first["verified_before"]} == set(expected)
    # Row counts and measure totals per month, from the source: they add up to the whole target.
    claim_checks = [c for c in first["verified_before"] if c["target"] == "CLAIM_SUMMARY"]
    assert sum(c["expected_rows"] for c in claim_checks) == len(expected["CLAIM_SUMMARY"])
    charges = sum(float(row["TOTAL_CHARGE"]) for row in expected["CLAIM_SUMMARY"].values())
    assert sum(c["measures"]["TOTAL_CHARGE"]["expected"] for c in claim_checks) == pytest.approx(charges, abs=0.5)

    # Two months corrupted in two targets: one only in an amount (its row count stays right), one a lost row.
    db = sqlite3.connect(pipeline.target_path)
    with db:
        claim_id, amended = db.execute('SELECT "CLAIM_ID", substr("CLAIM_DATE", 1, 7) FROM "CLAIM_SUMMARY" '
                                       'WHERE "TOTAL_CHARGE" > 0 ORDER BY "CLAIM_ID" LIMIT 1').fetchone()
        db.execute('UPDATE "CLAIM_SUMMARY" SET "TOTAL_CHARGE" = "TOTAL_CHARGE" + 5 WHERE "CLAIM_ID" = ?', [claim_id])
        lost = next(m for m in sorted(months_of(pipeline.target_path, "PROVIDER_SUMMARY")) if m != amended)
        year, month = (int(part) for part in lost.split("-"))
        db.execute('DELETE FROM "PROVIDER_SUMMARY" WHERE rowid = (SELECT MIN(rowid) FROM "PROVIDER_SUMMARY" '
                   'WHERE "REPORT_YEAR" = ? AND "REPORT_MONTH" = ?)', [year, month])
    db.close()

    outcome, context = pipeline.run("backfill", key="repair", targets=specs)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {"CLAIM_SUMMARY": [amended], "PROVIDER_SUMMARY": [lost]}
    second = report(context)
    differing = {(c["target"], c["month"]): c["variance"] for c in second["verified_before"] if not c["ok"]}
    assert set(differing) == {("CLAIM_SUMMARY", amended), ("PROVIDER_SUMMARY", lost)}
    assert differing[("CLAIM_SUMMARY", amended)] == {"rows": 0, "TOTAL_CHARGE": 5.0}
    assert differing[("PROVIDER_SUMMARY", lost)]["rows"] == -1
    assert differing[("PROVIDER_SUMMARY", lost)]["TOTAL_CLAIMS"] < 0
    assert all(c["ok"] for c in second["verified_after"])
    assert [(b["month"], b["targets"], b["how"]) for b in second["builds"]] == sorted(
        [(amended, ["CLAIM_SUMMARY"], "replace month"), (lost, ["PROVIDER_SUMMARY"], "replace month")])
    for name, rows in expected.items():
        assert_target_matches(name, read_sqlite_table(pipeline.target_path, name), rows)
    markdown = Artifact.objects.get(run=context.run, name="backfill_report.md").file.read().decode()
    assert f"| CLAIM_SUMMARY | {amended} |" in markdown and "TOTAL_CHARGE +5" in markdown

    # On request, every month is rebuilt: the table targets in one full run.
    outcome, context = pipeline.run("backfill", key="full", targets=specs, full_refresh=True)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {name: ["all"] for name in expected}
    for name, rows in expected.items():
        assert_target_matches(name, read_sqlite_table(pipeline.target_path, name), rows)


def test_each_adapter_of_a_backfill_is_connected_used_and_closed_on_one_thread(tmp_path, dbt_dir, bronze_b,
                                                                                  monkeypatch):
    """The source is read in a second thread while this one reads the built targets: each adapter is opened, used
    and closed in the thread that reads with it (no connection passes between threads), and the worker's query
    timeout holds in the reading thread."""
    pipeline = Pipeline(tmp_path, bronze_b)
    specs = targets()
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)

    calls: dict[int, dict[str, list[int]]] = {}
    timeouts: dict[int, set[float]] = {}
    connect, execute, close = SQLiteAdapter.connect, SQLiteAdapter._execute, SQLiteAdapter.close

    def seen(adapter, step):
        calls.setdefault(id(adapter), {"connect": [], "use": [], "close": [], "adapter": adapter})[step].append(
            threading.get_ident())

    def recorded_connect(self):
        if self._raw is None:
            seen(self, "connect")
        connect(self)

    def recorded_execute(self, sql, *, limit, timeout):
        seen(self, "use")
        timeouts.setdefault(threading.get_ident(), set()).add(timeout)
        return execute(self, sql, limit=limit, timeout=timeout)

    def recorded_close(self):
        if self._raw is not None:
            seen(self, "close")
        close(self)

    monkeypatch.setattr(SQLiteAdapter, "connect", recorded_connect)
    monkeypatch.setattr(SQLiteAdapter, "_execute", recorded_execute)
    monkeypatch.setattr(SQLiteAdapter, "close", recorded_close)
    with query_timeout(321):
        outcome, _context = pipeline.run("backfill", key="verify", targets=specs)
    assert isinstance(outcome, Succeeded), outcome

    used = [c for c in calls.values() if c["use"]]
    assert used
    for c in used:
        source = c["adapter"].connection.location
        assert len(set(c["use"])) == 1, source
        assert c["connect"] == c["close"] == c["use"][:1], source
    # The source was read in another thread than this one, with this thread's query timeout.
    here = threading.get_ident()
    source_threads = {c["use"][0] for c in used if c["adapter"].connection == pipeline.source}
    assert source_threads and here not in source_threads
    assert set().union(*(timeouts[t] for t in source_threads)) == {321.0}


def test_a_variance_that_a_rebuild_does_not_remove_fails_naming_the_months(tmp_path, dbt_dir):
    """Claims of providers that do not exist: the provider summary cannot hold them, so their months differ from
    the source before and after their rebuild."""
    bronze = bronze_with_orphans(tmp_path, missing_provider_ids=(9001, 9002))
    db = sqlite3.connect(bronze)
    orphan_months = sorted({r[0][:7] for r in db.execute("SELECT SERVICE_DATE FROM CLAIMS WHERE PROVIDER_ID > 9000")})
    db.close()
    pipeline = Pipeline(tmp_path, bronze)
    specs = targets()
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
    outcome, context = pipeline.run("backfill", targets=specs)
    assert isinstance(outcome, Failed)
    assert outcome.outputs["failing_months"] == orphan_months
    assert outcome.outputs["rebuilt"] == {"PROVIDER_SUMMARY": orphan_months}  # tried once, no better
    for month in orphan_months:
        assert month in outcome.error
        assert outcome.outputs["variance"][month]["PROVIDER_SUMMARY"]["rows"] == -1
        assert "CLAIM_SUMMARY" not in outcome.outputs["variance"][month]
    assert "after rebuilding" in outcome.error


def test_an_incremental_target_is_built_month_by_month_each_month_once(tmp_path, dbt_dir, bronze_b, monkeypatch):
    pipeline = Pipeline(tmp_path, bronze_b)
    specs = targets(materialized="incremental")
    plan = plan_build(mission=pipeline.mission, config={"targets": specs},
                      connections={pipeline.source.name: pipeline.source, pipeline.target.name: pipeline.target})
    assert "incremental_strategy: delete+insert" in plan.project.files["models/schema.yml"]
    # The build loads the latest month only.
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
    source_months = sorted({c["SERVICE_DATE"][:7] for c in read_bronze(bronze_b)["CLAIMS"]})
    latest = source_months[-1]
    for name in MEASURES:
        assert months_of(pipeline.target_path, name) == {latest}
    # The data quality step, which runs before the backfill, reconciles the month the build loaded, not the source's
    # whole history against one month; the source is read once for the three targets (one unit, the month).
    from pipeline.quality import backfill as quality_backfill  # noqa: PLC0415

    reads = []
    real_read = quality_backfill.read_source_periods
    monkeypatch.setattr(quality_backfill, "read_source_periods",
                        lambda adapter, group, *args: reads.append([t.name for t in group]) or real_read(
                            adapter, group, *args))
    outcome, context = pipeline.run("data_quality", targets=specs)
    assert isinstance(outcome, Succeeded), outcome
    assert reads == [list(MEASURES)]
    reconciled = [r for r in report(context, "dq_results.json") if r["check"] == "reconcile"]
    assert len(reconciled) == sum(len(m) for m in MEASURES.values())
    assert all(r["passed"] and f"over the 1 period(s) the target holds ({latest};" in r["detail"] for r in reconciled)
    # A scheduled refresh (after the history, normally) requires every month of the source: before the backfill it
    # fails, naming how many months are missing and why.
    refreshed = refresh_run(mission=pipeline.mission, config={"targets": specs})
    assert not refreshed.ok
    assert f"the source has {len(source_months) - 1} period(s) the target lacks ({source_months[0]}, " \
        in refreshed.error and "until the backfill builds it" in refreshed.error

    outcome, context = pipeline.run("backfill", targets=specs)
    assert isinstance(outcome, Succeeded), outcome
    history = source_months[:-1]
    assert outcome.outputs["rebuilt"] == {name: history for name in MEASURES}
    built = Counter((month, name) for b in report(context)["builds"] for name in b["targets"]
                    for month in [b["month"]])
    assert set(built.values()) == {1} and len(built) == len(history) * len(MEASURES)
    assert {b["how"] for b in report(context)["builds"]} == {"incremental"}
    assert all(c["ok"] for c in report(context)["verified_after"])
    # Equal to the table build: the independent computation of the whole history.
    expected = expected_targets(read_bronze(bronze_b))
    for name, rows in expected.items():
        assert_target_matches(name, read_sqlite_table(pipeline.target_path, name), rows)

    # A second backfill finds every month in place, and so does a refresh.
    outcome, _ = pipeline.run("backfill", key="again", targets=specs)
    assert isinstance(outcome, Succeeded) and outcome.outputs["rebuilt"] == {}
    refreshed = refresh_run(mission=pipeline.mission, config={"targets": specs})
    assert refreshed.ok, refreshed.error


def test_a_wrong_total_in_the_month_an_incremental_build_loaded_fails_the_data_quality_step(tmp_path, dbt_dir,
                                                                                         bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    specs = targets(materialized="incremental")
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
    (latest,) = months_of(pipeline.target_path, "CLAIM_SUMMARY")
    with sqlite3.connect(pipeline.target_path) as db:
        db.execute('UPDATE "CLAIM_SUMMARY" SET "TOTAL_CHARGE" = "TOTAL_CHARGE" + 100 WHERE rowid = '
                   '(SELECT MIN(rowid) FROM "CLAIM_SUMMARY")')
    outcome, context = pipeline.run("data_quality", targets=specs)
    assert isinstance(outcome, Failed)
    failed = [r for r in report(context, "dq_results.json") if r["check"] == "reconcile" and not r["passed"]]
    assert [(r["target"], r["column"]) for r in failed] == [("CLAIM_SUMMARY", "TOTAL_CHARGE")]
    assert f"({latest};" in failed[0]["detail"] and "but source total" in failed[0]["detail"]
    # A measure over a table without the month (here the providers') is not left out: it is reconciled whole-table.
    with_dimension = copy.deepcopy(specs)
    summary = next(t for t in with_dimension if t["target_table"] == "CLAIM_SUMMARY")
    next(c for c in summary["columns"] if c["name"] == "PROVIDER_ID")["measure"] = {
        "function": "count", "table": "PROVIDERS", "expression": "*"}
    outcome, context = pipeline.run("data_quality", key="dimension", targets=with_dimension)
    (provider,) = [r for r in report(context, "dq_results.json")
                   if r["check"] == "reconcile" and r["column"] == "PROVIDER_ID"]
    assert "period" not in provider["detail"] and 'COUNT(*)' in provider["detail"]
    # Emptied, it holds no month: that fails too, naming the month the build loads.
    with sqlite3.connect(pipeline.target_path) as db:
        db.execute('DELETE FROM "CLAIM_SUMMARY"')
    outcome, context = pipeline.run("data_quality", key="again", targets=specs)
    failed = [r for r in report(context, "dq_results.json") if r["check"] == "reconcile" and not r["passed"]]
    assert {r["column"] for r in failed if r["target"] == "CLAIM_SUMMARY"} == {"TOTAL_CHARGE", "INSURANCE_PAID"}
    assert all(f"holds no period; its build loads the latest ({latest})" in r["detail"] for r in failed
               if r["target"] == "CLAIM_SUMMARY")


# --- DuckDB and PostgreSQL ------------------------------------------------------------------------------


def test_an_incremental_target_on_duckdb_equals_the_table_build(tmp_path, dbt_dir, monkeypatch):
    from pipeline.demo.generator import generate, write_duckdb, write_sqlite
    from tests.pipeline.build.test_duckdb import duck_pipeline, read_duckdb_table

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where DuckDB would put a downloaded extension
    data = generate(claims=300, seed=41)
    bronze_copy = write_sqlite(tmp_path / "same-bronze.sqlite3", data)
    pipeline = duck_pipeline(tmp_path, write_duckdb(tmp_path / "bronze.duckdb", data), bronze_copy)
    specs = targets(materialized="incremental")
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
    claims = read_bronze(bronze_copy)["CLAIMS"]
    history = sorted({c["SERVICE_DATE"][:7] for c in claims})[:-1]
    assert len(read_duckdb_table(pipeline.target_path, "CLAIM_SUMMARY")) < len(claims)  # the latest month only
    outcome, context = pipeline.run("data_quality", targets=specs)  # the month built, reconciled
    assert isinstance(outcome, Succeeded), outcome
    outcome, context = pipeline.run("backfill", targets=specs)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {name: history for name in MEASURES}
    assert outcome.outputs["builds"] == len(history) * len(MEASURES)
    for name, rows in expected_targets(read_bronze(bronze_copy)).items():
        assert_target_matches(name, read_duckdb_table(pipeline.target_path, name), rows)
    assert not (tmp_path / "home" / ".duckdb").exists()


PG_SERVER = "postgres://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg(tmp_path):
    """A bronze schema holding a small demo (the same rows in SQLite for the independent computation) and a function
    making target schemas; all dropped afterwards."""
    import uuid

    import psycopg

    from pipeline.demo.generator import generate, write_postgresql, write_sqlite

    try:
        admin = psycopg.connect(PG_SERVER, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    suffix = uuid.uuid4().hex[:10]
    schemas = [f"genesis_bf_bronze_{suffix}"]
    admin.execute(f'CREATE SCHEMA "{schemas[0]}"')
    data = generate(claims=300, seed=43)

    def target_schema():
        schemas.append(f"genesis_bf_target_{suffix}_{len(schemas)}")
        admin.execute(f'CREATE SCHEMA "{schemas[-1]}"')
        return schemas[-1]

    try:
        with psycopg.connect(PG_SERVER, options=f"-c search_path={schemas[0]}") as conn:
            write_postgresql(conn, data)
        yield schemas[0], target_schema, write_sqlite(tmp_path / "same-bronze.sqlite3", data)
    finally:
        for schema in schemas:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def pg_pipeline(tmp_path, bronze_schema, target_schema, bronze_copy, name):
    from urllib.parse import quote

    from agents.models import Connection

    def dsn(schema):
        return f"{PG_SERVER}?options={quote(f'-c search_path={schema}')}"

    (tmp_path / name).mkdir()
    pipeline = Pipeline(tmp_path / name, bronze_copy)
    pipeline.source = Connection.objects.create(name=f"PG_BRONZE_{name}", engine="postgresql",
                                                location=dsn(bronze_schema), purpose="source")
    pipeline.target = Connection.objects.create(name=f"PG_TARGET_{name}", engine="postgresql",
                                                location=dsn(target_schema), purpose="target")
    pipeline.grant(pipeline.source, pipeline.target)
    pipeline.mission.source_connection, pipeline.mission.target_connection = pipeline.source, pipeline.target
    pipeline.mission.save(update_fields=["source_connection", "target_connection"])
    pipeline.schema = target_schema
    return pipeline


def pg_rows(schema, table):
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(PG_SERVER, options=f"-c search_path={schema}", row_factory=dict_row) as conn:
        return conn.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608 - a fixed target name


def pg_execute(schema, sql):
    import psycopg

    with psycopg.connect(PG_SERVER, options=f"-c search_path={schema}") as conn:
        conn.execute(sql)


@pytest.mark.postgres
def test_postgresql_builds_models_and_months_in_parallel_as_the_serial_build(tmp_path, dbt_dir, pg, settings):
    bronze_schema, target_schema, bronze_copy = pg
    expected = expected_targets(read_bronze(bronze_copy))
    specs = targets()
    # Four months of CLAIM_SUMMARY each lose a claim.
    corrupt = ('DELETE FROM "CLAIM_SUMMARY" WHERE "CLAIM_ID" IN (SELECT MIN("CLAIM_ID") FROM "CLAIM_SUMMARY" '
               'GROUP BY substr(CAST("CLAIM_DATE" AS TEXT), 1, 7) ORDER BY 1 LIMIT 4)')
    results = {}
    for degree in (3, 1):
        settings.GENESIS_DBT_POSTGRES_THREADS = degree
        pipeline = pg_pipeline(tmp_path, bronze_schema, target_schema(), bronze_copy, f"degree{degree}")
        outcome, _ = pipeline.run("dbt_build", targets=specs)
        assert isinstance(outcome, Succeeded), outcome
        # The three models are independent: with three threads dbt builds them side by side.
        assert (outcome.outputs["dbt"]["threads_used"] > 1) == (degree > 1)
        pg_execute(pipeline.schema, corrupt)
        outcome, context = pipeline.run("backfill", targets=specs)
        assert isinstance(outcome, Succeeded), outcome
        (months,) = outcome.outputs["rebuilt"].values()
        assert list(outcome.outputs["rebuilt"]) == ["CLAIM_SUMMARY"] and len(months) == 4
        hows = {b["how"] for b in report(context)["builds"]}
        if degree > 1:
            assert hows == {"parallel month"} and outcome.outputs["concurrency"] > 1
        else:
            assert hows == {"replace month"} and outcome.outputs["concurrency"] == 1
        results[degree] = {name: sorted(pg_rows(pipeline.schema, name),
                                        key=lambda row, name=name: tuple(row[g] for g in GRAINS[name]))
                           for name in expected}
        for name, rows in expected.items():
            assert_target_matches(name, results[degree][name], rows)
    assert results[3] == results[1]


@pytest.mark.postgres
def test_an_incremental_target_on_postgresql_equals_the_table_build(tmp_path, dbt_dir, pg, settings):
    bronze_schema, target_schema, bronze_copy = pg
    expected = expected_targets(read_bronze(bronze_copy))
    history = sorted({c["SERVICE_DATE"][:7] for c in read_bronze(bronze_copy)["CLAIMS"]})[:-1]
    specs = targets(materialized="incremental")
    for degree in (1, 2):  # through dbt's delete+insert one month at a time; months side by side
        settings.GENESIS_DBT_POSTGRES_THREADS = degree
        pipeline = pg_pipeline(tmp_path, bronze_schema, target_schema(), bronze_copy, f"inc{degree}")
        assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
        assert len(pg_rows(pipeline.schema, "CLAIM_SUMMARY")) < len(expected["CLAIM_SUMMARY"])
        outcome, context = pipeline.run("data_quality", key=f"dq{degree}", targets=specs)  # the month built
        assert isinstance(outcome, Succeeded), outcome
        outcome, context = pipeline.run("backfill", targets=specs)
        assert isinstance(outcome, Succeeded), outcome
        assert outcome.outputs["rebuilt"] == {name: history for name in MEASURES}
        assert outcome.outputs["builds"] == len(history) * len(MEASURES)  # each month of each target once
        assert {b["how"] for b in report(context)["builds"]} == {"incremental" if degree == 1 else "parallel month"}
        for name, rows in expected.items():
            assert_target_matches(name, pg_rows(pipeline.schema, name), rows)


# --- Periods other than months -----------------------------------------------------------------------------------

_COUNT = {"function": "count", "table": "CLAIMS", "expression": "*"}
_MONDAY = ("date(c.SERVICE_DATE, '-' || ((CAST(strftime('%w', c.SERVICE_DATE) AS INTEGER) + 6) % 7) || ' days')")


_PG_MONDAY = "CAST(DATE_TRUNC('week', CAST(c.SERVICE_DATE AS TIMESTAMP)) AS DATE)"


def week_and_year_targets(dialect: str = "sqlite") -> list[dict]:
    """Claims per week (its Monday, as the spec's period_start computes it on each engine) and per provider and
    year."""
    monday = _PG_MONDAY if dialect == "postgres" else _MONDAY
    return [{**spec, "dialect": dialect} for spec in [
        {"target_table": "CLAIMS_BY_WEEK", "period_unit": "week",
         "grain": {"columns": ["WEEK_START"], "period": "CLAIMS.SERVICE_DATE"},
         "sql": f"SELECT {monday} AS WEEK_START, COUNT(*) AS N_CLAIMS FROM CLAIMS AS c GROUP BY 1",  # noqa: S608
         "columns": [{"name": "WEEK_START", "type": "DATE", "rule": {"period_start": "period"}},
                     {"name": "N_CLAIMS", "type": "INTEGER", "measure": _COUNT}]},
        {"target_table": "CLAIMS_BY_YEAR", "period_unit": "year",
         "grain": {"columns": ["CLAIM_YEAR", "PROVIDER_ID"], "period": "CLAIMS.SERVICE_DATE"},
         "sql": "SELECT CAST(substr(CAST(c.SERVICE_DATE AS TEXT), 1, 4) AS INTEGER) AS CLAIM_YEAR, c.PROVIDER_ID, "
                "COUNT(*) AS N_CLAIMS FROM CLAIMS AS c GROUP BY 1, 2",
         "columns": [{"name": "CLAIM_YEAR", "type": "INTEGER", "rule": {"year_of": "period"}},
                     {"name": "PROVIDER_ID", "type": "INTEGER"},
                     {"name": "N_CLAIMS", "type": "INTEGER", "measure": _COUNT}]},
    ]]


def by_week_and_year(claims: list[dict]) -> tuple[Counter, Counter]:
    """The independent computation: plain Python over the bronze claims, weeks from Monday."""
    weeks, years = Counter(), Counter()
    for claim in claims:
        day = datetime.date.fromisoformat(claim["SERVICE_DATE"][:10])
        weeks[(day - datetime.timedelta(days=day.weekday())).isoformat()] += 1
        years[(day.year, int(claim["PROVIDER_ID"]))] += 1
    return weeks, years


def test_a_week_and_a_year_target_are_verified_and_rebuilt_by_their_own_period(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    specs = week_and_year_targets()
    partition = {"table": "CLAIMS", "column": "SERVICE_DATE"}
    assert isinstance(pipeline.run("dbt_build", targets=specs, partition=partition)[0], Succeeded)
    weeks, years = by_week_and_year(read_bronze(bronze_b)["CLAIMS"])
    outcome, context = pipeline.run("backfill", key="verify", targets=specs, partition=partition)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {}
    checks = report(context)["verified_before"]
    assert {c["month"] for c in checks if c["target"] == "CLAIMS_BY_WEEK"} == set(weeks)
    assert {c["month"] for c in checks if c["target"] == "CLAIMS_BY_YEAR"} == {str(y) for y, _ in years}

    # A week that straddles two months, its count raised (its row count stays right); a year's row lost.
    week = straddling_week(weeks)
    year = sorted({y for y, _ in years})[-1]
    db = sqlite3.connect(pipeline.target_path)
    with db:
        db.execute('UPDATE "CLAIMS_BY_WEEK" SET "N_CLAIMS" = "N_CLAIMS" + 3 WHERE "WEEK_START" = ?', [week])
        db.execute('DELETE FROM "CLAIMS_BY_YEAR" WHERE rowid = (SELECT MIN(rowid) FROM "CLAIMS_BY_YEAR" '
                   'WHERE "CLAIM_YEAR" = ?)', [year])
    db.close()
    outcome, context = pipeline.run("backfill", key="repair", targets=specs, partition=partition)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {"CLAIMS_BY_WEEK": [week], "CLAIMS_BY_YEAR": [str(year)]}
    before = {(c["target"], c["month"]): c for c in report(context)["verified_before"] if not c["ok"]}
    assert set(before) == {("CLAIMS_BY_WEEK", week), ("CLAIMS_BY_YEAR", str(year))}
    assert before[("CLAIMS_BY_WEEK", week)]["variance"] == {"rows": 0, "N_CLAIMS": 3}
    assert before[("CLAIMS_BY_YEAR", str(year))]["variance"]["rows"] == -1
    assert all(c["ok"] for c in report(context)["verified_after"])
    # Equal to the independent computation, row for row.
    built = read_sqlite_table(pipeline.target_path, "CLAIMS_BY_WEEK")
    assert {r["WEEK_START"]: int(r["N_CLAIMS"]) for r in built} == dict(weeks) and len(built) == len(weeks)
    built = read_sqlite_table(pipeline.target_path, "CLAIMS_BY_YEAR")
    assert {(int(r["CLAIM_YEAR"]), int(r["PROVIDER_ID"])): int(r["N_CLAIMS"]) for r in built} == dict(years)
    assert len(built) == len(years)


@pytest.mark.parametrize("value", ["true", None])
def test_a_mission_launched_with_full_refresh_rebuilds_every_period(tmp_path, dbt_dir, bronze_b, value):
    """The shipped build-marts blueprint's full_refresh parameter reaches the backfill step: set, every period of
    every target is rebuilt; left at its default, nothing is (the build already holds the history)."""
    from blueprints.services import blueprint_launch
    from pipeline.specfile import load_spec_text
    from tests.blueprints.conftest import healthcare_spec_text, load_shipped
    from tests.conftest import leads_connection, leads_group
    from tests.factories import UserFactory

    pipeline = Pipeline(tmp_path, bronze_b)
    for connection in (pipeline.source, pipeline.target):
        connection.groups.add(leads_group())
    validation = leads_connection(name=f"VAL_{tmp_path.name}"[:100], engine="sqlite", location=str(bronze_b),
                                  purpose="validation")
    lead = UserFactory()
    lead.groups.add(leads_group())
    spec = load_spec_text(healthcare_spec_text(source=pipeline.source.name, target=pipeline.target.name),
                          source="spec file project.yml")
    params = {"source_connection": pipeline.source.name, "target_connection": pipeline.target.name,
              "validation_connection": validation.name, **({"full_refresh": value} if value else {})}
    marts = load_shipped("build-marts")
    mission = blueprint_launch(version=marts, name="Refresh", objective="", owner=lead, params=params, spec=spec)
    step = mission.tasks.get(key="backfill_history")
    assert step.config["full_refresh"] is bool(value)
    assert "verifies every period and rebuilds only the periods that differ" in step.description.lower()
    assert f"here {str(bool(value)).lower()}" in step.description
    declared = next(p for p in yaml.safe_load(marts.source_text)["parameters"] if p["name"] == "full_refresh")
    assert declared["type"] == "boolean" and declared["default"] is False

    specs = targets()
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
    outcome, context = pipeline.run("backfill", targets=specs, full_refresh=step.config["full_refresh"])
    assert isinstance(outcome, Succeeded), outcome
    if value:
        assert outcome.outputs["rebuilt"] == {name: ["all"] for name in MEASURES}
        checks = report(context)["verified_after"]
        assert checks and all(c["ok"] for c in checks)
        assert {(c["target"], c["month"]) for c in checks} == {
            (c["target"], c["month"]) for c in report(context)["verified_before"]}
    else:
        assert outcome.outputs["rebuilt"] == {} and report(context)["verified_after"] == []


def test_a_month_gone_from_the_source_leaves_no_stale_rows_in_an_incremental_target(tmp_path, dbt_dir, bronze_b):
    """One dbt run at a time (SQLite): a month the source no longer has gives dbt's delete+insert no rows to key
    its delete on, so the backfill replaces that month's rows by nothing itself."""
    import shutil

    bronze = shutil.copy(bronze_b, tmp_path / "bronze.sqlite3")
    pipeline = Pipeline(tmp_path, bronze)
    specs = targets(materialized="incremental")
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
    assert isinstance(pipeline.run("backfill", key="history", targets=specs)[0], Succeeded)
    months = sorted({c["SERVICE_DATE"][:7] for c in read_bronze(bronze)["CLAIMS"]})
    gone = months[len(months) // 2]
    assert all(gone in months_of(pipeline.target_path, name) for name in MEASURES)
    db = sqlite3.connect(bronze)
    with db:
        db.execute("DELETE FROM CLAIM_DETAILS WHERE CLAIM_ID IN (SELECT CLAIM_ID FROM CLAIMS "
                   "WHERE substr(SERVICE_DATE, 1, 7) = ?)", [gone])
        db.execute("DELETE FROM CLAIMS WHERE substr(SERVICE_DATE, 1, 7) = ?", [gone])
    db.close()

    outcome, context = pipeline.run("backfill", key="again", targets=specs)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {name: [gone] for name in MEASURES}
    assert all(b["how"] == "replace month" for b in report(context)["builds"])
    for name, rows in expected_targets(read_bronze(bronze)).items():
        assert gone not in months_of(pipeline.target_path, name)
        assert_target_matches(name, read_sqlite_table(pipeline.target_path, name), rows)


def straddling_week(weeks) -> str:
    """A week whose Monday and Sunday fall in different months: its rebuild is not a month's."""
    return next(w for w in sorted(weeks)
                if w[:7] != (datetime.date.fromisoformat(w) + datetime.timedelta(days=6)).isoformat()[:7])


@pytest.mark.postgres
@pytest.mark.parametrize("degree", [1, 3])
def test_week_and_year_targets_on_postgresql_are_repaired_by_their_own_period(tmp_path, dbt_dir, pg, settings,
                                                                               degree):
    """PostgreSQL's date_trunc('week') and the backfill's week key agree (Monday), one period after another and
    side by side."""
    bronze_schema, target_schema, bronze_copy = pg
    settings.GENESIS_DBT_POSTGRES_THREADS = degree
    pipeline = pg_pipeline(tmp_path, bronze_schema, target_schema(), bronze_copy, f"weeks{degree}")
    specs = week_and_year_targets("postgres")
    partition = {"table": "CLAIMS", "column": "SERVICE_DATE"}
    assert isinstance(pipeline.run("dbt_build", targets=specs, partition=partition)[0], Succeeded)
    weeks, years = by_week_and_year(read_bronze(bronze_copy)["CLAIMS"])
    outcome, _ = pipeline.run("backfill", key="verify", targets=specs, partition=partition)
    assert isinstance(outcome, Succeeded) and outcome.outputs["rebuilt"] == {}, outcome
    week, year = straddling_week(weeks), sorted({y for y, _ in years})[0]
    pg_execute(pipeline.schema, f'UPDATE "CLAIMS_BY_WEEK" SET "N_CLAIMS" = "N_CLAIMS" + 3 '  # noqa: S608
                                f"WHERE \"WEEK_START\" = DATE '{week}'")
    pg_execute(pipeline.schema, 'DELETE FROM "CLAIMS_BY_YEAR" WHERE ctid = (SELECT MIN(ctid) FROM "CLAIMS_BY_YEAR" '
                                f'WHERE "CLAIM_YEAR" = {year})')  # noqa: S608
    outcome, context = pipeline.run("backfill", key="repair", targets=specs, partition=partition)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {"CLAIMS_BY_WEEK": [week], "CLAIMS_BY_YEAR": [str(year)]}
    hows = {b["how"] for b in report(context)["builds"]}
    assert hows == ({"parallel month"} if degree > 1 else {"replace month"})
    built = pg_rows(pipeline.schema, "CLAIMS_BY_WEEK")
    assert {r["WEEK_START"].isoformat(): int(r["N_CLAIMS"]) for r in built} == dict(weeks)
    assert len(built) == len(weeks)
    built = pg_rows(pipeline.schema, "CLAIMS_BY_YEAR")
    assert {(int(r["CLAIM_YEAR"]), int(r["PROVIDER_ID"])): int(r["N_CLAIMS"]) for r in built} == dict(years)
    assert len(built) == len(years)


def test_the_week_key_is_the_monday_on_sqlite_and_duckdb_as_in_python():
    """Every day of two years, as ISO text: both engines key it by the Monday Python's weekday() gives."""
    import duckdb

    from pipeline.dbt.sqlgen import period_key

    days = [datetime.date(2023, 1, 1) + datetime.timedelta(days=n) for n in range(731)]
    want = [(d - datetime.timedelta(days=d.weekday())).isoformat() for d in days]
    column = '"D"'
    lite = sqlite3.connect(":memory:")
    lite.execute('CREATE TABLE t ("D" TEXT)')
    lite.executemany("INSERT INTO t VALUES (?)", [(d.isoformat(),) for d in days])
    assert [r[0] for r in lite.execute(f'SELECT {period_key(column, "week", "sqlite")} '  # noqa: S608
                                       'FROM t ORDER BY "D"')] == want
    duck = duckdb.connect(":memory:")
    duck.execute('CREATE TABLE t ("D" VARCHAR)')
    duck.executemany("INSERT INTO t VALUES (?)", [(d.isoformat(),) for d in days])
    assert [r[0] for r in duck.execute(f'SELECT {period_key(column, "week", "duckdb")} '  # noqa: S608
                                       'FROM t ORDER BY "D"').fetchall()] == want


# --- Verification on every engine: two corrupted periods of N, a period that differs right after its build --------

ENGINES = ["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]


class EnginePipeline:
    """A small demo on one engine (and the same rows in SQLite for the independent computation): the pipeline, its
    target's rows, and SQL run on its target or its bronze."""

    def __init__(self, engine, tmp_path, request):
        import duckdb

        from pipeline.demo.generator import generate, write_duckdb, write_sqlite
        from tests.pipeline.build.test_duckdb import duck_pipeline, read_duckdb_table

        self.engine = engine
        if engine == "postgresql":
            request.getfixturevalue("settings").GENESIS_DBT_POSTGRES_THREADS = 1  # one period after another
            bronze_schema, target_schema, self.bronze_copy = request.getfixturevalue("pg")
            self.pipeline = pg_pipeline(tmp_path, bronze_schema, target_schema(), self.bronze_copy, engine)
            self.rows = lambda table: pg_rows(self.pipeline.schema, table)
            self.on_target = lambda sql: pg_execute(self.pipeline.schema, sql)
            on_bronze = [lambda sql: pg_execute(bronze_schema, sql)]
        else:
            data = generate(claims=300, seed=43)
            self.bronze_copy = write_sqlite(tmp_path / "same-bronze.sqlite3", data)
            if engine == "sqlite":
                self.pipeline = Pipeline(tmp_path, write_sqlite(tmp_path / "bronze.sqlite3", data))
                self.rows = lambda table: read_sqlite_table(self.pipeline.target_path, table)
                self.on_target = lambda sql: _sqlite_execute(self.pipeline.target_path, sql)
                on_bronze = [lambda sql: _sqlite_execute(self.pipeline.bronze, sql)]
            else:
                request.getfixturevalue("monkeypatch").setenv("HOME", str(tmp_path / "home"))
                bronze = write_duckdb(tmp_path / "bronze.duckdb", data)
                self.pipeline = duck_pipeline(tmp_path, bronze, self.bronze_copy)
                self.rows = lambda table: read_duckdb_table(self.pipeline.target_path, table)

                def duck_execute(path, sql):
                    db = duckdb.connect(str(path))
                    try:
                        db.execute(sql)
                    finally:
                        db.close()

                self.on_target = lambda sql: duck_execute(self.pipeline.target_path, sql)
                on_bronze = [lambda sql: duck_execute(bronze, sql)]
        self.on_bronze = lambda sql: [run(sql) for run in [*on_bronze,
                                                           lambda s: _sqlite_execute(self.bronze_copy, s)]]


def _sqlite_execute(path, sql):
    db = sqlite3.connect(path)
    with db:
        db.execute(sql)
    db.close()


def _month(value) -> str:
    return str(value)[:7]


@pytest.mark.parametrize("engine", ENGINES)
def test_two_corrupted_periods_of_n_are_found_and_only_they_rebuilt(tmp_path, dbt_dir, request, engine):
    """One month's amount raised (its row count right), another month's row lost: the verification finds exactly
    those two of N months, rebuilds only them (each verified right after), leaves every other row as it was, and
    nothing differs afterwards."""
    setup = EnginePipeline(engine, tmp_path, request)
    pipeline, specs = setup.pipeline, targets()
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)
    claims = sorted(setup.rows("CLAIM_SUMMARY"), key=lambda r: int(r["CLAIM_ID"]))
    months = sorted({_month(r["CLAIM_DATE"]) for r in claims})
    assert len(months) > 4
    amended = next(r for r in claims if float(r["TOTAL_CHARGE"]) > 0)
    lost = next(r for r in claims if _month(r["CLAIM_DATE"]) != _month(amended["CLAIM_DATE"]))
    corrupted = sorted([_month(amended["CLAIM_DATE"]), _month(lost["CLAIM_DATE"])])
    setup.on_target(f'UPDATE "CLAIM_SUMMARY" SET "TOTAL_CHARGE" = "TOTAL_CHARGE" + 5 '  # noqa: S608
                    f'WHERE "CLAIM_ID" = {int(amended["CLAIM_ID"])}')
    setup.on_target(f'DELETE FROM "CLAIM_SUMMARY" WHERE "CLAIM_ID" = {int(lost["CLAIM_ID"])}')  # noqa: S608

    def untouched():
        """Every row outside the corrupted months, of every target, as built."""
        out = {}
        for name in MEASURES:
            rows = setup.rows(name)
            if name == "CLAIM_SUMMARY":
                rows = [r for r in rows if _month(r["CLAIM_DATE"]) not in corrupted]
            out[name] = sorted(tuple(sorted((k, str(v)) for k, v in r.items())) for r in rows)
        return out

    others = untouched()
    outcome, context = pipeline.run("backfill", targets=specs)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rebuilt"] == {"CLAIM_SUMMARY": corrupted}
    result = report(context)
    found = {(c["target"], c["month"]): c["variance"] for c in result["verified_before"] if not c["ok"]}
    assert set(found) == {("CLAIM_SUMMARY", month) for month in corrupted}
    assert found[("CLAIM_SUMMARY", _month(amended["CLAIM_DATE"]))] == {"rows": 0, "TOTAL_CHARGE": 5.0}
    assert found[("CLAIM_SUMMARY", _month(lost["CLAIM_DATE"]))]["rows"] == -1
    assert sorted(b["month"] for b in result["builds"]) == corrupted
    assert [(c["target"], c["month"], c["ok"]) for c in result["verified_each"]] == [
        ("CLAIM_SUMMARY", month, True) for month in corrupted]
    assert all(c["ok"] for c in result["verified_after"])
    assert {c["month"] for c in result["verified_after"] if c["target"] == "CLAIM_SUMMARY"} == set(months)
    assert untouched() == others
    for name, rows in expected_targets(read_bronze(setup.bronze_copy)).items():
        assert_target_matches(name, setup.rows(name), rows)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_incremental_period_that_differs_right_after_its_build_stops_the_history_there(tmp_path, dbt_dir,
                                                                                          request, engine):
    """A claim of the middle month points at a provider that does not exist: the provider summary cannot hold it.
    The history is built period by period, each verified right after its build: the months before it verify
    equal, that month differs, and the step fails naming it without building the months after it."""
    setup = EnginePipeline(engine, tmp_path, request)
    claims = read_bronze(setup.bronze_copy)["CLAIMS"]
    months = sorted({c["SERVICE_DATE"][:7] for c in claims})
    broken = months[len(months) // 2]
    orphan = next(int(c["CLAIM_ID"]) for c in claims if c["SERVICE_DATE"][:7] == broken)
    setup.on_bronze(f'UPDATE "CLAIMS" SET "PROVIDER_ID" = 9001 WHERE "CLAIM_ID" = {orphan}')  # noqa: S608
    pipeline, specs = setup.pipeline, targets(materialized="incremental")
    assert isinstance(pipeline.run("dbt_build", targets=specs)[0], Succeeded)

    outcome, context = pipeline.run("backfill", targets=specs)
    assert isinstance(outcome, Failed)
    assert f"PROVIDER_SUMMARY {broken} right after building it" in outcome.error
    result = report(context)
    assert (result["halted"]["target"], result["halted"]["month"]) == ("PROVIDER_SUMMARY", broken)
    assert result["halted"]["variance"]["rows"] == -1
    assert outcome.outputs["period_variance"] == {broken: {"PROVIDER_SUMMARY": result["halted"]["variance"]}}
    # Each month once, up to the one that differs; nothing after it.
    assert [b["month"] for b in result["builds"]] == [m for m in months if m <= broken]
    each = {(c["target"], c["month"]): c["ok"] for c in result["verified_each"]}
    assert each == {(name, month): (name, month) != ("PROVIDER_SUMMARY", broken)
                    for name in MEASURES for month in months if month <= broken}
    assert months_built(setup, "CLAIM_SUMMARY") == {m for m in months if m <= broken} | {months[-1]}
    markdown = Artifact.objects.get(run=context.run, name="backfill_report.md").file.read().decode()
    assert f"stopped at PROVIDER_SUMMARY {broken}" in markdown


def months_built(setup: EnginePipeline, table: str) -> set[str]:
    return {_month(r["CLAIM_DATE"]) for r in setup.rows(table)}
