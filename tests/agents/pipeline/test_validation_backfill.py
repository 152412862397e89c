"""Validation through the validation connection, and the month-by-month backfill with its variance report."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict

import pytest

from agents.base import Failed, Succeeded
from agents.models import Connection
from tasks.models import Artifact
from tests.agents.pipeline.conftest import Pipeline, bronze_with_orphans
from tests.agents.pipeline.healthcare import TARGETS, expected_targets, read_bronze

pytestmark = pytest.mark.django_db


def test_validation_compares_declared_columns_and_types_with_the_spec(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    validation = Connection.objects.create(name="VALIDATION", engine="sqlite", location=str(pipeline.target_path),
                                           purpose="validation")
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
