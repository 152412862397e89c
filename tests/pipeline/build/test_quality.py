"""The data-quality agent: passes on good data; names missing providers, null keys, bad types and duplicated
grains with their failing counts and sample keys."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agents.base import Failed, Succeeded
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline, bronze_with_orphans

pytestmark = pytest.mark.django_db


def test_quality_passes_on_the_built_demo(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    outcome, context = pipeline.run("data_quality")
    assert isinstance(outcome, Succeeded), outcome
    results = json.loads(Artifact.objects.get(run=context.run, name="dq_results.json").file.read())
    checks = {(r["check"], r["target"], r["column"]) for r in results}
    assert ("references", "CLAIM_SUMMARY", "PROVIDER_ID") in checks
    assert ("references", "CLAIM_SUMMARY", "PATIENT_ID") in checks
    assert ("unique_grain", "PROVIDER_SUMMARY", "PROVIDER_ID, REPORT_YEAR, REPORT_MONTH") in checks
    assert ("not_null", "CLAIM_SUMMARY", "CLAIM_ID") in checks
    assert ("type", "CLAIM_SUMMARY", "CLAIM_DATE") in checks
    assert all(r["passed"] and r["failing_rows"] == 0 for r in results)
    # dbt's unique and relationships tests passed in this step: those checks name them instead of running again.
    proven = {(r["check"], r["target"], r["column"]): r["detail"] for r in results
              if "proven by dbt test" in r["detail"]}
    assert "relationships_CLAIM_SUMMARY__PROVIDER_ID" in proven[("references", "CLAIM_SUMMARY", "PROVIDER_ID")]
    assert "genesis_unique_combination_PROVIDER_SUMMARY" in proven[
        ("unique_grain", "PROVIDER_SUMMARY", "PROVIDER_ID, REPORT_YEAR, REPORT_MONTH")]
    assert "unique_CLAIM_SUMMARY__CLAIM_ID_" in proven[("unique_grain", "CLAIM_SUMMARY", "CLAIM_ID")]
    assert "not_null_CLAIM_SUMMARY__PATIENT_ID_" in proven[("not_null", "CLAIM_SUMMARY", "PATIENT_ID")]
    assert ("type", "CLAIM_SUMMARY", "CLAIM_DATE") not in proven  # dbt has no test of that: the platform counts it
    assert "SELECT" in Artifact.objects.get(run=context.run, name="dq_queries.sql").file.read().decode()
    # dbt's own tests ran too (their run_results are what the blueprint's dbt_succeeded check reads).
    dbt_tests = outcome.outputs["dbt_tests"]
    assert any(name.startswith("relationships_CLAIM_SUMMARY") for name in dbt_tests)
    assert any(name.startswith("genesis_unique_combination_PROVIDER_SUMMARY") for name in dbt_tests)
    assert set(dbt_tests.values()) == {"pass"}
    assert Artifact.objects.filter(run=context.run, name="run_results.json").exists()


def test_claims_pointing_at_missing_providers_fail_with_those_ids_named(tmp_path, dbt_dir):
    bronze = bronze_with_orphans(tmp_path, missing_provider_ids=(9001, 9002))
    pipeline = Pipeline(tmp_path, bronze)
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    outcome, context = pipeline.run("data_quality")
    assert isinstance(outcome, Failed) and not outcome.retryable
    assert "9001" in outcome.error and "9002" in outcome.error
    failed = outcome.outputs["failed"]
    assert [(f["check"], f["target"], f["column"]) for f in failed] == [("references", "CLAIM_SUMMARY", "PROVIDER_ID")]
    assert failed[0]["failing_rows"] == 2
    warned = [name for name, status in outcome.outputs["dbt_tests"].items() if status == "warn"]
    assert len(warned) == 1 and warned[0].startswith("relationships_CLAIM_SUMMARY")
    assert sorted(failed[0]["sample_keys"]) == [100, 137]  # the claims that point at them
    report = Artifact.objects.get(run=context.run, name="dq_report.md").file.read().decode()
    assert "FAIL" in report and "9001" in report


def test_null_keys_bad_types_and_duplicate_grains_are_counted_with_sample_keys(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    db = sqlite3.connect(pipeline.target_path)
    with db:
        db.execute("UPDATE CLAIM_SUMMARY SET PATIENT_ID = NULL WHERE CLAIM_ID IN (3, 4, 5)")
        db.execute("UPDATE CLAIM_SUMMARY SET CLAIM_DATE = 'soon' WHERE CLAIM_ID = 7")
        db.execute("INSERT INTO PROVIDER_SUMMARY SELECT * FROM PROVIDER_SUMMARY LIMIT 2")
    db.close()
    outcome, _ = pipeline.run("data_quality")
    assert isinstance(outcome, Failed)
    failed = {(f["check"], f["target"], f["column"]): f for f in outcome.outputs["failed"]}
    nulls = failed[("not_null", "CLAIM_SUMMARY", "PATIENT_ID")]
    assert nulls["failing_rows"] == 3 and sorted(nulls["sample_keys"]) == [3, 4, 5]
    bad_date = failed[("type", "CLAIM_SUMMARY", "CLAIM_DATE")]
    assert bad_date["failing_rows"] == 1 and bad_date["sample_keys"] == [7]
    dupes = failed[("unique_grain", "PROVIDER_SUMMARY", "PROVIDER_ID, REPORT_YEAR, REPORT_MONTH")]
    assert dupes["failing_rows"] == 4 and len(dupes["sample_keys"]) == 2
    assert "PATIENT_ID" in outcome.error and "CLAIM_DATE" in outcome.error


def test_the_mission_owner_can_waive_a_failed_check_only_with_a_reason(tmp_path, dbt_dir):
    pipeline = Pipeline(tmp_path, bronze_with_orphans(tmp_path, missing_provider_ids=(9001,)))
    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    no_reason = [{"check": "references", "target": "CLAIM_SUMMARY", "column": "PROVIDER_ID", "reason": " "}]
    outcome, _ = pipeline.run("data_quality", waivers=no_reason)
    assert isinstance(outcome, Failed) and "9001" in outcome.error
    waiver = [{"check": "references", "target": "CLAIM_SUMMARY", "column": "PROVIDER_ID",
               "reason": "Provider 9001 is being onboarded; its row lands next week."}]
    outcome, context = pipeline.run("data_quality", key="dq_waived", waivers=waiver)
    assert isinstance(outcome, Succeeded)
    assert [w["column"] for w in outcome.outputs["waived"]] == ["PROVIDER_ID"]
    assert "9001" in outcome.summary and "being onboarded" in outcome.summary
    assert any("WAIVED" in line for line in context.lines)


def test_with_tests_false_the_build_runs_the_models_and_the_quality_step_runs_each_test_once(tmp_path, dbt_dir,
                                                                                            bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    build, build_context = pipeline.run("dbt_build", tests=False)
    assert isinstance(build, Succeeded), build
    assert "test_warnings" not in build.outputs and "data-quality task" in build.outputs["tests"]
    assert {n["resource_type"] for n in build.outputs["dbt"]["nodes"]} == {"model"}
    built = json.loads(Artifact.objects.get(run=build_context.run, name="run_results.json").file.read())
    assert {r["unique_id"].split(".")[0] for r in built["results"]} == {"model"}
    outcome, context = pipeline.run("data_quality")
    assert isinstance(outcome, Succeeded), outcome
    tested = json.loads(Artifact.objects.get(run=context.run, name="run_results.json").file.read())
    assert {r["unique_id"].split(".")[0] for r in tested["results"]} == {"test"}
    assert len(tested["results"]) == len(outcome.outputs["dbt_tests"]) > 0
    assert set(outcome.outputs["dbt_tests"].values()) == {"pass"}
    assert Artifact.objects.filter(run=context.run, name="dbt_test.log").exists()


def test_with_tests_false_a_failing_test_is_reported_and_fails_the_quality_step(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    assert isinstance(pipeline.run("dbt_build", tests=False)[0], Succeeded)
    db = sqlite3.connect(pipeline.target_path)
    with db:
        db.execute("INSERT INTO CLAIM_SUMMARY SELECT * FROM CLAIM_SUMMARY WHERE CLAIM_ID = 3")
    db.close()
    outcome, context = pipeline.run("data_quality")
    assert isinstance(outcome, Failed) and not outcome.retryable
    # dbt's tests warn (the generated project's severity); the platform's checks are the gate, with the counts.
    warned = [name for name, status in outcome.outputs["dbt_tests"].items() if status == "warn"]
    assert warned == ["unique_CLAIM_SUMMARY__CLAIM_ID_"]
    assert "unique_grain on CLAIM_SUMMARY.CLAIM_ID: 2 failing row(s) (1 duplicated key(s)); sample keys 3" \
        in outcome.error
    results = json.loads(Artifact.objects.get(run=context.run, name="run_results.json").file.read())
    assert {r["status"] for r in results["results"]} == {"pass", "warn"}
