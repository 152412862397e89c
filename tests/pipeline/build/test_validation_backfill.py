"""Validation through the validation connection, and the backfill's month-by-month verification with its variance
report."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict

import pytest

from agents.access import adapter_for
from agents.base import Failed, Succeeded
from agents.models import Connection
from pipeline.dbt.build import plan_build
from pipeline.quality.backfill import expected_sql, read_source_periods
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline, bronze_with_orphans
from tests.pipeline.build.healthcare import (
    TARGETS,
    expected_targets,
    read_bronze,
    read_sqlite_table,
)

pytestmark = pytest.mark.django_db


def test_validation_compares_declared_columns_and_types_with_the_spec(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    validation = Connection.objects.create(name="VALIDATION", engine="sqlite", location=str(pipeline.target_path),
                                           purpose="validation")
    pipeline.grant(validation)
    outcome, context = pipeline.run("validation", validation_connection=validation.name)
    assert isinstance(outcome, Succeeded), outcome
    expected = expected_targets(read_bronze(bronze_b))
    assert outcome.outputs["rows"] == {name: len(rows) for name, rows in expected.items()}
    report = json.loads(Artifact.objects.get(run=context.run, name="validation.json").file.read())
    claim = next(t for t in report["targets"] if t["target"] == "CLAIM_SUMMARY")
    declared = {c["column"]: c["actual"] for c in claim["columns"]}
    assert declared["CLAIM_ID"] == "INT" and declared["TOTAL_CHARGE"] == "REAL" and declared["CLAIM_DATE"] == "TEXT"
    assert any("PRAGMA table_info" in q for q in claim["queries"])
    assert len(claim["sample_rows"]) == 5

    # A column the spec declares but the table lacks, and a type the table does not have, are named.
    changed = [dict(t) for t in TARGETS]
    changed[0] = {**changed[0], "columns": [*changed[0]["columns"],
                                            {"name": "ADJUSTMENT_REASON", "type": "VARCHAR(20)"}]}
    changed[2] = {**changed[2], "columns": [
        {**c, "type": "DATE"} if c["name"] == "TOTAL_CLAIMS" else c for c in changed[2]["columns"]]}
    outcome, _ = pipeline.run("validation", key="validation_2", targets=changed,
                              validation_connection=validation.name)
    assert isinstance(outcome, Failed)
    assert "CLAIM_SUMMARY lacks column ADJUSTMENT_REASON" in outcome.error
    assert "PATIENT_SUMMARY.TOTAL_CLAIMS is INT, spec says DATE" in outcome.error


def test_a_validation_connection_to_another_empty_database_is_named_as_the_likely_mistake(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    elsewhere = tmp_path / "other.sqlite3"
    sqlite3.connect(elsewhere).close()
    wrong = Connection.objects.create(name="OTHER_DB", engine="sqlite", location=str(elsewhere), purpose="validation")
    pipeline.grant(wrong)
    outcome, _ = pipeline.run("validation", validation_connection=wrong.name)
    assert isinstance(outcome, Failed)
    assert "CLAIM_SUMMARY does not exist" in outcome.error
    assert "None of the targets is on OTHER_DB, which reads another database than" in outcome.error
    assert "the validation connection must read the targets' database" in outcome.error


def _months_by_target(bronze):
    expected = expected_targets(read_bronze(bronze))
    per_month = defaultdict(Counter)
    claims = {c["CLAIM_ID"]: c["SERVICE_DATE"][:7] for c in read_bronze(bronze)["CLAIMS"]}
    for (claim_id,) in expected["CLAIM_SUMMARY"]:
        per_month["CLAIM_SUMMARY"][claims[claim_id]] += 1
    for name in ("PROVIDER_SUMMARY", "PATIENT_SUMMARY"):
        for _, year, month in expected[name]:
            per_month[name][f"{year:04d}-{month:02d}"] += 1
    return per_month


def test_without_a_build_the_backfill_builds_the_targets_and_verifies_the_months(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    months = ["2022-01", "2023-06", "2024-12"]
    outcome, context = pipeline.run("backfill", months=months)
    assert isinstance(outcome, Succeeded), outcome
    report = json.loads(Artifact.objects.get(run=context.run, name="backfill_report.json").file.read())
    assert report["partition"] == {"table": "CLAIMS", "column": "SERVICE_DATE"}
    assert report["missing_targets"] == ["CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"]
    assert outcome.outputs["rebuilt"] == {name: ["all"] for name in report["missing_targets"]}
    per_month = _months_by_target(bronze_b)
    after = report["verified_after"]
    assert sorted({c["month"] for c in after}) == months
    for check in after:
        assert check["rows"] == check["expected_rows"] == per_month[check["target"]][check["month"]] > 0
        assert check["ok"] and check["variance"] == {"rows": 0}
    assert report["final_rows"] == {name: sum(c.values()) for name, c in per_month.items()}
    assert Artifact.objects.filter(run=context.run, name="backfill_report.md").exists()
    # The stakeholder dashboard's chart data: one record per target and month, the rows built.
    chart = json.loads(Artifact.objects.get(run=context.run, name="row_counts.json").file.read())
    assert {(r["target"], r["month"]): r["rows"] for r in chart} == {
        (name, month): per_month[name][month] for name in per_month for month in months
    }


def _target_tables(path):
    db = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        db.close()


def test_a_cancelled_backfill_stops_between_months(tmp_path, dbt_dir, bronze_b):
    from agents.registry import get

    pipeline = Pipeline(tmp_path, bronze_b)
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    db = sqlite3.connect(pipeline.target_path)
    with db:  # three months lose a claim
        db.execute("DELETE FROM CLAIM_SUMMARY WHERE CLAIM_ID IN (SELECT MIN(CLAIM_ID) FROM CLAIM_SUMMARY "
                   "GROUP BY substr(CLAIM_DATE, 1, 7) ORDER BY 1 LIMIT 3)")
    db.close()
    task = pipeline.task("backfill")
    context = pipeline.context(task)
    asked = []

    def cancelled():
        asked.append(1)
        return len(asked) > 2  # after two months

    context.cancelled = cancelled
    outcome = get("backfill")().run(context)
    assert isinstance(outcome, Failed) and outcome.error == "Cancelled after 2 of 3 periods to rebuild."
    assert _target_tables(pipeline.target_path) == sorted(t["target_table"] for t in TARGETS)


def test_undated_source_rows_are_built_and_belong_to_no_month(tmp_path, dbt_dir):
    """A claim with no service date belongs to no month: the build holds it, the months do not count it."""
    bronze = bronze_with_orphans(tmp_path, missing_provider_ids=())
    db = sqlite3.connect(bronze)
    with db:  # CLAIMS again without its NOT NULL constraints, then one claim without a date
        db.execute("CREATE TABLE CLAIMS_COPY AS SELECT * FROM CLAIMS")
        db.execute("DROP TABLE CLAIMS")
        db.execute("ALTER TABLE CLAIMS_COPY RENAME TO CLAIMS")
        db.execute("UPDATE CLAIMS SET SERVICE_DATE = NULL WHERE CLAIM_ID = 7")
        db.execute("UPDATE CLAIMS SET SERVICE_DATE = '' WHERE CLAIM_ID = 8")  # no month either
    db.close()
    pipeline = Pipeline(tmp_path, bronze)
    targets = [t for t in TARGETS if t["target_table"] == "CLAIM_SUMMARY"]
    assert isinstance(pipeline.run("dbt_build", targets=targets)[0], Succeeded)
    outcome, context = pipeline.run("backfill", targets=targets)
    assert isinstance(outcome, Succeeded), outcome
    report = json.loads(Artifact.objects.get(run=context.run, name="backfill_report.json").file.read())
    assert report["undated_source_rows"] == 2 and report["rebuilt"] == {}
    markdown = Artifact.objects.get(run=context.run, name="backfill_report.md").file.read().decode()
    assert "2 source row(s) without a date belong to no month" in markdown
    claim_ids = {r["CLAIM_ID"] for r in read_sqlite_table(pipeline.target_path, "CLAIM_SUMMARY")}
    assert {7, 8} <= claim_ids and len(claim_ids) == report["final_rows"]["CLAIM_SUMMARY"]
    assert sum(c["rows"] for c in report["verified_before"]) == len(claim_ids) - 2


def test_backfill_variance_fails_naming_the_months(tmp_path, dbt_dir):
    bronze = bronze_with_orphans(tmp_path, missing_provider_ids=(9001, 9002))
    db = sqlite3.connect(bronze)
    orphan_months = sorted(r[0][:7] for r in db.execute("SELECT SERVICE_DATE FROM CLAIMS WHERE PROVIDER_ID > 9000"))
    clean_month = next(r[0] for r in db.execute("SELECT DISTINCT substr(SERVICE_DATE, 1, 7) FROM CLAIMS ORDER BY 1")
                       if r[0] not in orphan_months)
    db.close()
    pipeline = Pipeline(tmp_path, bronze)
    outcome, context = pipeline.run("backfill", months=[clean_month, *orphan_months])
    assert isinstance(outcome, Failed)
    assert outcome.outputs["failing_months"] == orphan_months
    for month in orphan_months:
        assert month in outcome.error
        assert outcome.outputs["variance"][month]["PROVIDER_SUMMARY"] == {"rows": -1}
        assert "CLAIM_SUMMARY" not in outcome.outputs["variance"][month]
    assert clean_month not in outcome.outputs["variance"]


def test_expected_counts_in_one_pass_equal_one_query_per_target(tmp_path, dbt_dir):
    """The one-pass count per month equals each target's own DISTINCT query, a missing key counting as one value;
    an override runs as given."""
    bronze = bronze_with_orphans(tmp_path, missing_provider_ids=())
    db = sqlite3.connect(bronze)
    with db:  # PATIENT_ID without its NOT NULL, and one claim without a patient
        db.execute("CREATE TABLE CLAIMS_COPY AS SELECT * FROM CLAIMS")
        db.execute("DROP TABLE CLAIMS")
        db.execute("ALTER TABLE CLAIMS_COPY RENAME TO CLAIMS")
        db.execute("UPDATE CLAIMS SET PATIENT_ID = NULL WHERE CLAIM_ID = 11")
    db.close()
    pipeline = Pipeline(tmp_path, bronze)
    plan = plan_build(mission=pipeline.mission, config={"targets": TARGETS},
                      connections={pipeline.source.name: pipeline.source, pipeline.target.name: pipeline.target})
    partition = plan.project.partition
    override = {"PROVIDER_SUMMARY": "SELECT '2022-01', 7"}
    with adapter_for(plan.source, mission=plan.mission) as adapter:
        read = read_source_periods(adapter, plan.targets, partition, "month", override)
        counts, queries = read.rows, read.row_sql
        columns = [c.name for c in adapter.introspect([partition.table])[0].columns]
        for target in plan.targets:
            if target.name == "PROVIDER_SUMMARY":
                assert counts[target.name] == {"2022-01": 7} and queries[target.name] == override[target.name]
                continue
            alone = {m: n for m, n in adapter.query(expected_sql(adapter, target, partition, columns),
                                                    limit=10**6).rows}
            assert counts[target.name] == alone
    assert queries["CLAIM_SUMMARY"] == queries["PATIENT_SUMMARY"]  # counted together
    month_of_11 = next(r[0][:7] for r in sqlite3.connect(bronze).execute(
        "SELECT SERVICE_DATE FROM CLAIMS WHERE CLAIM_ID = 11"))
    patients = {r[0] for r in sqlite3.connect(bronze).execute(
        "SELECT PATIENT_ID FROM CLAIMS WHERE substr(SERVICE_DATE, 1, 7) = ?", [month_of_11])}
    assert None in patients and counts["PATIENT_SUMMARY"][month_of_11] == len(patients)
