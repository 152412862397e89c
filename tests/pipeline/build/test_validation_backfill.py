"""Validation through the validation connection, and the month-by-month backfill with its variance report."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict

import pytest

from agents.access import adapter_for
from agents.base import Failed, Succeeded
from agents.models import Connection
from pipeline.dbt.build import plan_build
from pipeline.quality.backfill import expected_counts, expected_sql
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline, bronze_with_orphans
from tests.pipeline.build.healthcare import (
    TARGETS,
    assert_target_matches,
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


def test_backfill_rebuilds_month_by_month_and_matches_the_source(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    months = ["2022-01", "2023-06", "2024-12"]
    outcome, context = pipeline.run("backfill", months=months)
    assert isinstance(outcome, Succeeded), outcome
    report = json.loads(Artifact.objects.get(run=context.run, name="backfill_report.json").file.read())
    assert report["partition"] == {"table": "CLAIMS", "column": "SERVICE_DATE"}
    per_month = _months_by_target(bronze_b)
    assert [m["month"] for m in report["months"]] == months
    for month in report["months"]:
        for name in ("CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"):
            assert month["actual"][name] == per_month[name][month["month"]] > 0
            assert month["expected"][name] == month["actual"][name] and month["variance"][name] == 0
    # The targets are whole again afterwards.
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


def test_a_full_backfill_leaves_the_months_it_built_as_the_targets(tmp_path, dbt_dir, bronze_b):
    """Every month of the source: the months built and checked become the targets (no full run after them), and
    they equal the independent computation. A second backfill starts its kept months afresh."""
    pipeline = Pipeline(tmp_path, bronze_b)
    expected = expected_targets(read_bronze(bronze_b))
    for attempt in (1, 2):
        outcome, context = pipeline.run("backfill", key=f"backfill_{attempt}")
        assert isinstance(outcome, Succeeded), outcome
        report = json.loads(Artifact.objects.get(run=context.run, name="backfill_report.json").file.read())
        assert report["assembled_from"] == "months" and report["undated_source_rows"] == 0
        assert len(report["months"]) == 36
        assert report["final_rows"] == {name: len(rows) for name, rows in expected.items()}
        for name, rows in expected.items():
            assert_target_matches(name, read_sqlite_table(pipeline.target_path, name), rows)
        assert _target_tables(pipeline.target_path) == sorted(expected)  # nothing kept on the side
        assert any("are now the whole targets" in line for line in context.log.lines)
        markdown = Artifact.objects.get(run=context.run, name="backfill_report.md").file.read().decode()
        assert "The months built and checked above are now the targets." in markdown


def test_a_cancelled_backfill_drops_the_months_it_kept(tmp_path, dbt_dir, bronze_b):
    from agents.registry import get

    pipeline = Pipeline(tmp_path, bronze_b)
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    task = pipeline.task("backfill")
    context = pipeline.context(task)
    asked = []

    def cancelled():
        asked.append(1)
        return len(asked) > 2  # after two months

    context.cancelled = cancelled
    outcome = get("backfill")().run(context)
    assert isinstance(outcome, Failed) and outcome.error == "Cancelled after 2 of 36 months."
    assert _target_tables(pipeline.target_path) == sorted(t["target_table"] for t in TARGETS)


def test_undated_source_rows_make_the_backfill_rebuild_in_full(tmp_path, dbt_dir):
    """A claim with no service date belongs to no month: the months alone would lose it, so a full run follows
    and the kept months are dropped."""
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
    outcome, context = pipeline.run("backfill")
    assert isinstance(outcome, Succeeded), outcome
    report = json.loads(Artifact.objects.get(run=context.run, name="backfill_report.json").file.read())
    assert report["assembled_from"] == "full run" and report["undated_source_rows"] == 2
    markdown = Artifact.objects.get(run=context.run, name="backfill_report.md").file.read().decode()
    assert "rebuilt in one full run after the months (2 source row(s) without a date" in markdown
    claim_ids = {r["CLAIM_ID"] for r in read_sqlite_table(pipeline.target_path, "CLAIM_SUMMARY")}
    assert {7, 8} <= claim_ids and len(claim_ids) == report["final_rows"]["CLAIM_SUMMARY"]
    assert _target_tables(pipeline.target_path) == sorted(t["target_table"] for t in TARGETS)


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
        assert outcome.outputs["variance"][month]["PROVIDER_SUMMARY"] == -1
        assert outcome.outputs["variance"][month]["CLAIM_SUMMARY"] == 0
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
        counts, queries = expected_counts(adapter, plan.targets, partition, override)
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
