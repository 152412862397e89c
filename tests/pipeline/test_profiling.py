import json

import pytest

from agents.access import adapter_for
from agents.base import Failed, Succeeded
from agents.connectors import QueryRefused
from history.models import HistoryEntry
from pipeline.implementations.common import open_source
from pipeline.profiler import observed_type, profile_source
from tasks.models import Artifact
from tests.pipeline.conftest import ALLOWED, SPEC_PATH, pg_connection, sqlite_connection


def _check_profile(profile, claims):
    tables = profile["tables"]
    assert set(tables) == set(ALLOWED)
    assert tables["CLAIMS"]["row_count"] == claims
    assert tables["CLAIMS"]["candidate_keys"] == ["CLAIM_ID"]
    service = tables["CLAIMS"]["columns"]["SERVICE_DATE"]
    assert service["observed_type"] == "date" and service["min"] >= "2022-01-01" and service["max"] <= "2024-12-31"
    assert service["nulls"] == 0 and service["declared_type"] == "TEXT"
    status = tables["CLAIMS"]["columns"]["STATUS"]
    assert {v for v, _ in status["top_values"]} == {"PAID", "DENIED", "PENDING"}
    assert tables["CLAIMS"]["columns"]["DIAGNOSIS_CODE"]["nulls"] > 0
    assert tables["CLAIM_DETAILS"]["columns"]["CHARGE_AMOUNT"]["observed_type"] == "real"
    assert tables["PATIENTS"]["columns"]["ZIP_CODE"]["observed_type"] == "text"  # leading zeros: a code
    fks = {(fk["table"], fk["column"], fk["ref_table"], fk["ref_column"]): fk for fk in profile["foreign_keys"]}
    assert set(fks) == {("CLAIMS", "PATIENT_ID", "PATIENTS", "PATIENT_ID"),
                        ("CLAIMS", "PROVIDER_ID", "PROVIDERS", "PROVIDER_ID"),
                        ("CLAIM_DETAILS", "CLAIM_ID", "CLAIMS", "CLAIM_ID")}
    assert all(fk["by"] == ["name", "values"] and fk["containment"] == 1.0 for fk in fks.values())


def test_profile_of_the_demo_on_sqlite(demo_small):
    with adapter_for(sqlite_connection(demo_small), mission=None, allowed_tables=ALLOWED) as adapter:
        _check_profile(profile_source(adapter), 2000)


@pytest.mark.postgres
def test_profile_of_the_demo_on_postgresql(pg_schema, db):  # db: the adapter compares the server with the platform's
    with adapter_for(pg_connection(pg_schema), mission=None, allowed_tables=ALLOWED) as adapter:
        _check_profile(profile_source(adapter), 300)


def test_foreign_keys_by_values_when_names_differ(tmp_path):
    import sqlite3

    path = tmp_path / "x.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE ACCOUNTS(ID INTEGER, NAME TEXT); CREATE TABLE ORDERS(ORDER_NO INTEGER, "
                     "BUYER_ID INTEGER);")
    db.executemany("INSERT INTO ACCOUNTS VALUES (?, ?)", [(i, f"a{i}") for i in range(1, 51)])
    db.executemany("INSERT INTO ORDERS VALUES (?, ?)", [(i, 1 + i % 50) for i in range(1000, 1200)])
    db.commit()
    with adapter_for(sqlite_connection(path), mission=None) as adapter:
        profile = profile_source(adapter)
    assert profile["foreign_keys"] == [{"table": "ORDERS", "column": "BUYER_ID", "ref_table": "ACCOUNTS",
                                        "ref_column": "ID", "by": ["values"], "containment": 1.0,
                                        "orphan_values": 0, "evidence": [
                                            "100.0% of its 50 distinct values are ACCOUNTS.ID", "both integer",
                                            "4.0 rows per value (many-to-one)"]}]


def test_observed_types():
    assert observed_type([1, 2]) == "integer"
    assert observed_type(["2024-01-02", "2023-12-31"]) == "date"
    assert observed_type([1.5, 2]) == "real"
    assert observed_type(["01234", "98765"]) == "text"
    assert observed_type([]) == "unknown"


def test_profiling_agent_leaves_json_and_report(mission, run_agent, source_for, demo_small):
    source = source_for(demo_small)
    result = run_agent("profiling", mission=mission, config={"spec_path": SPEC_PATH, "connection": source.name})
    assert isinstance(result.outcome, Succeeded), result.outcome
    assert result.outcome.outputs["tables"]["CLAIMS"] == 2000
    assert "CLAIMS.PATIENT_ID -> PATIENTS.PATIENT_ID" in result.outcome.outputs["foreign_keys"]
    json_artifact = Artifact.objects.get(task=result.task, name="source_profile.json")
    report = Artifact.objects.get(task=result.task, name="source_profile.md")
    assert (json_artifact.kind, report.kind) == ("data", "report")
    with json_artifact.file.open("rb") as handle:
        _check_profile(json.loads(handle.read()), 2000)
    with report.file.open("rb") as handle:
        text = handle.read().decode()
    assert "## CLAIMS" in text and "CLAIM_DETAILS.CLAIM_ID → CLAIMS.CLAIM_ID" in text

    # The mapping agent reuses the stored profile instead of profiling again.
    mapping = run_agent("field_mapping", mission=mission,
                        config={"target": "CLAIM_SUMMARY", "spec_path": SPEC_PATH, "source_connection": source.name})
    assert mapping.outcome.outputs["rows"] == 2000


def test_agents_read_only_the_allowed_tables_and_refusals_are_recorded(mission, run_agent, source_for, demo_small):
    source = source_for(demo_small)
    result = run_agent("profiling", mission=mission, config={"connection": source.name, "tables": ["CLAIMS"]})
    assert isinstance(result.outcome, Succeeded)
    assert list(result.outcome.outputs["tables"]) == ["CLAIMS"]
    adapter = open_source(result.context, None)
    with pytest.raises(QueryRefused, match="PATIENTS is not among the mission's allowed source tables"):
        adapter.query('SELECT * FROM "CLAIMS" JOIN "PATIENTS" USING ("PATIENT_ID")')
    adapter.close()
    refusal = HistoryEntry.objects.get(event="connection.read_refused")
    assert refusal.mission == mission and refusal.task == result.task
    assert refusal.data["tables"] == ["PATIENTS"] and refusal.data["connection"] == source.name
    assert refusal.actor_agent.kind == "profiling"


def test_profiling_without_allowed_tables_fails_clearly(mission, run_agent, source_for, demo_small):
    source = source_for(demo_small)
    result = run_agent("profiling", mission=mission, config={"connection": source.name})
    assert isinstance(result.outcome, Failed) and not result.outcome.retryable
    assert "lists no allowed source tables" in result.outcome.error
