"""The data-quality step runs its checks that do not depend on dbt's results (row checks with the reconciliation's
totals, declared types, source totals) in a second thread while dbt test runs: the results, the report, the
queries and the outcome are the same as when everything runs one after the other, and a failure in that thread
fails the step with the same message."""

from __future__ import annotations

import copy
import json
import sqlite3
import threading

import pytest

from agents.base import Failed
from agents.connectors.base import QueryTimeout, default_timeout, query_timeout
from pipeline.implementations import data_quality
from pipeline.implementations.data_quality import DataQualityAgent
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline, bronze_with_orphans
from tests.pipeline.build.healthcare import TARGETS
from tests.pipeline.build.test_postgres import pg_schemas, pipeline_on_postgresql  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

ARTIFACTS = ("dq_results.json", "dq_report.md", "dq_queries.sql")


def _with_measure(targets: list[dict]) -> list[dict]:
    """The demo's targets with TOTAL_CHARGE reconciled against the source's line charges."""
    targets = copy.deepcopy(targets)
    for column in targets[0]["columns"]:
        if column["name"] == "TOTAL_CHARGE":
            column["measure"] = {"function": "sum", "table": "CLAIM_DETAILS", "expression": '"CHARGE_AMOUNT"',
                                 "round": 2}
    return targets


def _spy(monkeypatch) -> list[tuple[str, float]]:
    """Records, for each run of the independent checks, the thread they ran in and the query timeout they saw."""
    calls: list[tuple[str, float]] = []
    real = data_quality.independent_checks

    def spy(*args, **kwargs):
        calls.append((threading.current_thread().name, default_timeout()))
        return real(*args, **kwargs)

    monkeypatch.setattr(data_quality, "independent_checks", spy)
    monkeypatch.setattr("pipeline.quality.checks.independent_checks", spy)
    return calls


def _both_ways(pipeline, monkeypatch, targets) -> list[tuple]:
    """The data-quality step run overlapped then sequentially: (outcome class, error, outputs, artifacts) each."""
    runs = []
    for overlap in (True, False):
        monkeypatch.setattr(DataQualityAgent, "overlap", overlap)
        with query_timeout(321):
            outcome, context = pipeline.run("data_quality", key=f"dq_{overlap}", targets=targets)
        assert Artifact.objects.filter(run=context.run, name="dq_results.json").exists(), outcome
        artifacts = {name: Artifact.objects.get(run=context.run, name=name).file.read() for name in ARTIFACTS}
        runs.append((type(outcome), getattr(outcome, "error", ""), outcome.outputs, artifacts))
    return runs


def _break_targets(path):
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE CLAIM_SUMMARY SET PATIENT_ID = NULL WHERE CLAIM_ID IN (3, 4, 5)")
        db.execute("UPDATE CLAIM_SUMMARY SET CLAIM_DATE = 'soon' WHERE CLAIM_ID = 7")
        db.execute("UPDATE CLAIM_SUMMARY SET TOTAL_CHARGE = TOTAL_CHARGE + 1000 WHERE CLAIM_ID = 9")
        db.execute("INSERT INTO PROVIDER_SUMMARY SELECT * FROM PROVIDER_SUMMARY LIMIT 2")
    db.close()


def test_overlapped_checks_give_the_sequential_results_on_sqlite(tmp_path, dbt_dir, monkeypatch):
    pipeline = Pipeline(tmp_path, bronze_with_orphans(tmp_path))
    targets = _with_measure(TARGETS)
    assert pipeline.run("dbt_build", targets=targets)[0].outputs
    _break_targets(pipeline.target_path)
    calls = _spy(monkeypatch)
    overlapped, sequential = _both_ways(pipeline, monkeypatch, targets)
    for name in ARTIFACTS:
        assert overlapped[3][name].decode().splitlines() == sequential[3][name].decode().splitlines(), name
    assert overlapped == sequential
    # The overlapped run counted the checks in the worker thread, under the caller's query timeout.
    assert calls[0][0].startswith("data-quality") and calls[0][1] == 321
    assert calls[1:] == [(threading.current_thread().name, 321)]  # sequential: once, in this thread
    outcome_class, error, outputs, _ = overlapped
    assert outcome_class is Failed
    failed = {(f["check"], f["target"], f["column"]): f for f in outputs["failed"]}
    # Counted by the thread (not proven by dbt: its not_null test failed) and the reconciliation's mismatch.
    assert failed[("not_null", "CLAIM_SUMMARY", "PATIENT_ID")]["failing_rows"] == 3
    assert failed[("type", "CLAIM_SUMMARY", "CLAIM_DATE")]["sample_keys"] == [7]
    assert "target total" in failed[("reconcile", "CLAIM_SUMMARY", "TOTAL_CHARGE")]["detail"]
    assert failed[("unique_grain", "PROVIDER_SUMMARY", "PROVIDER_ID, REPORT_YEAR, REPORT_MONTH")]["failing_rows"] == 4
    assert failed[("references", "CLAIM_SUMMARY", "PROVIDER_ID")]["failing_rows"] == 2
    assert "reconcile on CLAIM_SUMMARY.TOTAL_CHARGE: target total" in error
    # The not_null checks dbt proved are recorded as proven, not counted, in both runs.
    assert b"proven by dbt test not_null_CLAIM_SUMMARY__CLAIM_ID" in overlapped[3]["dq_results.json"]


def test_a_failure_in_the_overlapped_checks_fails_the_step_with_the_same_message(tmp_path, dbt_dir, bronze_b,
                                                                                monkeypatch):
    pipeline = Pipeline(tmp_path, bronze_b)
    assert pipeline.run("dbt_build")[0].outputs is not None

    def timed_out(*args, **kwargs):
        raise QueryTimeout("The query ran longer than 321 seconds and was stopped.")

    monkeypatch.setattr("pipeline.quality.checks.check_rows", timed_out)
    for overlap in (True, False):
        monkeypatch.setattr(DataQualityAgent, "overlap", overlap)
        outcome, _ = pipeline.run("data_quality", key=f"dq_{overlap}")
        assert isinstance(outcome, Failed) and not outcome.retryable
        assert outcome.error == "The query ran longer than 321 seconds and was stopped."


@pytest.mark.postgres
def test_overlapped_checks_give_the_sequential_results_on_postgresql(tmp_path, dbt_dir, pg_schemas,  # noqa: F811
                                                                     monkeypatch):
    pipeline = pipeline_on_postgresql(tmp_path, pg_schemas)
    targets = _with_measure(TARGETS)
    assert pipeline.run("dbt_build", targets=targets)[0].outputs is not None
    calls = _spy(monkeypatch)
    overlapped, sequential = _both_ways(pipeline, monkeypatch, targets)
    assert overlapped == sequential
    assert calls[0][0].startswith("data-quality") and calls[1:] == [(threading.current_thread().name, 321)]
    outcome_class, _, outputs, artifacts = overlapped
    assert outcome_class is Failed  # the two claims pointing at missing providers
    assert [(f["check"], f["column"]) for f in outputs["failed"]] == [("references", "PROVIDER_ID")]
    results = json.loads(artifacts["dq_results.json"])
    # Counted in the thread: the reconciliation (passed) and the declared types PostgreSQL reports.
    assert [(r["check"], r["column"], r["passed"]) for r in results if r["check"] == "reconcile"] == [
        ("reconcile", "TOTAL_CHARGE", True)]
    assert {r["column"] for r in results if r["check"] == "type" and r["passed"]} >= {"CLAIM_DATE", "TOTAL_CHARGE"}
