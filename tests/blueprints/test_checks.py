"""Each check type, passing and failing, with its evidence; checks read data connections read-only."""

import json

import pytest
from django.db import connection as django_db

from agents.connectors import QueryRefused
from agents.models import Connection
from blueprints.checks import CheckContext, check_types, run_check
from blueprints.connections import query_value
from history.services import history_record
from tasks.services import artifact_create, phase_create, run_create, run_transition, task_transition
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db


def check(type_, params=None, **context):
    return run_check({"type": type_, "params": params or {}}, CheckContext(**context))


def move(task, *statuses, actor=None):
    for status in statuses:
        task_transition(task=task, to=status, actor=actor)


def test_the_registry_ships_the_seven_check_types_each_with_a_params_schema():
    types = check_types()
    assert list(types) == ["all_tasks_done", "approval_recorded", "artifact_exists", "dbt_succeeded", "row_count",
                           "sql_assert", "table_exists"]
    assert all(cls.params_schema["type"] == "object" and cls.description for cls in types.values())


def test_all_tasks_done(mission, agent):
    phase = phase_create(mission=mission, order=1, name="One")
    a = TaskFactory(mission=mission, key="a", owner_agent=agent, phase=phase)
    b = TaskFactory(mission=mission, key="b", owner_agent=agent, phase=phase)
    TaskFactory(mission=mission, key="elsewhere", owner_agent=agent)
    move(a, "ready", "running", "done")
    result = check("all_tasks_done", mission=mission, phase=phase)
    assert not result.passed
    assert result.message == "1 of 2 tasks of phase One not done: b (pending)."
    assert result.evidence == {"scope": "tasks of phase One", "total": 2, "done": 1, "skipped": [],
                               "not_done": {"b": "pending"}}
    move(b, "skipped")
    result = check("all_tasks_done", mission=mission, phase=phase)
    assert result.passed and result.evidence["skipped"] == ["b"]
    assert not check("all_tasks_done", mission=mission).passed  # the whole mission: 'elsewhere' is pending
    assert check("all_tasks_done", {"tasks": ["a"]}, mission=mission).passed
    missing = check("all_tasks_done", {"tasks": ["a", "zz"]}, mission=mission)
    assert not missing.passed and missing.message == "The mission has no task(s) zz."


def test_artifact_exists(mission, agent):
    task = TaskFactory(mission=mission, key="map_claims", owner_agent=agent)
    params = {"kind": "spec", "name": "claim_summary*", "task": "map_claims"}
    result = check("artifact_exists", params, mission=mission)
    assert not result.passed
    assert result.message == "Found 0 artifact(s) matching kind=spec, name=claim_summary*, task=map_claims; 1 needed."
    artifact_create(mission=mission, task=task, kind="doc", name="CLAIM_SUMMARY.yml", file=b"wrong kind")
    assert not check("artifact_exists", params, mission=mission).passed
    spec = artifact_create(mission=mission, task=task, kind="spec", name="CLAIM_SUMMARY.yml", file=b"columns: []")
    result = check("artifact_exists", params, mission=mission)
    assert result.passed
    assert result.evidence["matched"] == [{"id": spec.pk, "name": "CLAIM_SUMMARY.yml", "version": 2, "kind": "spec",
                                           "task": "map_claims", "sha256": spec.sha256}]
    assert not check("artifact_exists", {**params, "min_count": 2}, mission=mission).passed


def test_artifact_exists_counts_distinct_names_not_versions(mission, agent):
    task = TaskFactory(mission=mission, key="map_claims", owner_agent=agent)
    params = {"kind": "spec", "min_count": 3}
    for name in ("CLAIM_SUMMARY.yml", "PROVIDER_SUMMARY.yml"):
        artifact_create(mission=mission, task=task, kind="spec", name=name, file=b"columns: []")
    newest = artifact_create(mission=mission, task=task, kind="spec", name="CLAIM_SUMMARY.yml", file=b"columns: [a]")
    result = check("artifact_exists", params, mission=mission)
    assert not result.passed
    assert result.message == "Found 2 artifact(s) matching kind=spec (3 versions counted once per name); 3 needed."
    assert result.evidence["count"] == 2 and result.evidence["versions"] == 3
    assert {(m["name"], m["version"]) for m in result.evidence["matched"]} == {
        ("CLAIM_SUMMARY.yml", 2), ("PROVIDER_SUMMARY.yml", 1)}
    assert newest.version == 2
    artifact_create(mission=mission, task=task, kind="spec", name="PATIENT_SUMMARY.yml", file=b"columns: []")
    result = check("artifact_exists", params, mission=mission)
    assert result.passed
    assert result.message == ("Found 3 artifact(s) matching kind=spec (4 versions counted once per name): "
                              "CLAIM_SUMMARY.yml v2, PATIENT_SUMMARY.yml v1, PROVIDER_SUMMARY.yml v1.")


def test_approval_recorded(mission, lead, agent):
    review = TaskFactory(mission=mission, key="review", owner_user=lead, owner_agent=None)
    result = check("approval_recorded", {"task": "review"}, mission=mission)
    assert not result.passed and result.message == "Task review is pending: no standing approval."
    move(review, "ready", "waiting_approval")
    move(review, "done", actor=lead)
    result = check("approval_recorded", {"task": "review"}, mission=mission)
    assert result.passed and result.evidence["approved_by"] == "lead"
    assert result.message.startswith("Task review approved by lead at ")
    # A notification about the task sent after the approval (the worker's e-mail job) leaves it standing.
    history_record(mission=mission, task=review, event="notification.sent", from_status="pending", to_status="sent")
    result = check("approval_recorded", {"task": "review"}, mission=mission)
    assert result.passed and result.evidence["approved_by"] == "lead"
    # Re-opened work is no longer approved.
    move(review, "pending")
    assert not check("approval_recorded", {"task": "review"}, mission=mission).passed
    # Finished by an agent without a person: not an approval.
    auto = TaskFactory(mission=mission, key="auto", owner_agent=agent)
    move(auto, "ready", "running", "done")
    result = check("approval_recorded", {"task": "auto"}, mission=mission)
    assert not result.passed and result.message == "Task auto was finished by system without a person's approval."


def _succeeded_run(task, result=None):
    run = run_create(task=task)
    run_transition(run=run, to="running")
    return run_transition(run=run, to="succeeded", result=result or {})


def test_dbt_succeeded_reads_run_results_from_the_run(mission, agent):
    task = TaskFactory(mission=mission, key="build", owner_agent=agent)
    result = check("dbt_succeeded", {"task": "build"}, mission=mission)
    assert not result.passed and result.message == "Task build has no successful run yet."
    results = {"metadata": {"invocation_id": "inv-1"}, "results": [
        {"unique_id": "model.hc.claim_summary", "status": "success"},
        {"unique_id": "model.hc.patient_summary", "status": "error", "message": "column x does not exist"},
        {"unique_id": "test.hc.not_null", "status": "skipped"},
    ]}
    _succeeded_run(task, {"run_results": results})
    failed = check("dbt_succeeded", {"task": "build"}, mission=mission)
    assert not failed.passed
    assert failed.message == ("2 of 3 dbt node(s) failed: model.hc.patient_summary (error), test.hc.not_null "
                              "(skipped).")
    assert failed.evidence["by_status"] == {"success": 1, "error": 1, "skipped": 1}
    assert failed.evidence["failing"][0]["message"] == "column x does not exist"
    assert failed.evidence["invocation_id"] == "inv-1"
    ok = {"results": [{"unique_id": "model.hc.claim_summary", "status": "success"},
                      {"unique_id": "test.hc.unique", "status": "pass"}]}
    _succeeded_run(task, {"run_results": ok})
    passed = check("dbt_succeeded", {"task": "build"}, mission=mission)
    assert passed.passed and passed.message == "All 2 dbt node(s) of build succeeded."


def test_dbt_succeeded_reads_a_run_results_json_artifact_of_the_run(mission, agent):
    task = TaskFactory(mission=mission, key="build", owner_agent=agent)
    run = run_create(task=task)
    run_transition(run=run, to="running")
    no_results = check("dbt_succeeded", {"task": "build"}, mission=mission, task=task, run=run)
    assert not no_results.passed and "recorded no dbt run results" in no_results.message
    body = json.dumps({"results": [{"unique_id": "model.a", "status": "success"}]})
    artifact_create(mission=mission, task=task, run=run, kind="report", name="run_results.json", file=body)
    result = check("dbt_succeeded", {"task": "build"}, mission=mission, task=task, run=run)
    assert result.passed and result.evidence["source"] == "artifact run_results.json v1"


@pytest.fixture
def granted(mission, bronze, warehouse):
    """The mission may read BRONZE and WAREHOUSE (their access lists name it)."""
    for connection in (bronze, warehouse):
        connection.missions.add(mission)
    return mission


def test_table_exists(granted):
    result = check("table_exists", {"connection": "BRONZE", "tables": ["CLAIMS", "providers"]}, mission=granted)
    assert result.passed and result.evidence["found"] == {"CLAIMS": "claims", "providers": "providers"}
    result = check("table_exists", {"connection": "BRONZE", "tables": ["claims", "claim_lines"]}, mission=granted)
    assert not result.passed
    assert result.message == "Missing on BRONZE: claim_lines."
    assert result.evidence["missing"] == ["claim_lines"]
    nowhere = check("table_exists", {"connection": "NOPE", "tables": ["x"]}, mission=granted)
    assert not nowhere.passed and nowhere.message == "No connection is named 'NOPE'."


def test_row_count_minimum_and_equal_to_a_query(granted):
    result = check("row_count", {"connection": "WAREHOUSE", "table": "CLAIM_SUMMARY", "min": 3}, mission=granted)
    assert result.passed and result.evidence["count"] == 3
    result = check("row_count", {"connection": "WAREHOUSE", "table": "patient_summary", "min": 1}, mission=granted)
    assert not result.passed and result.message == "patient_summary: 0 row(s), fewer than 1."
    match = {"connection": "WAREHOUSE", "table": "claim_summary", "equals_connection": "BRONZE",
             "equals_query": "SELECT COUNT(DISTINCT claim_id) FROM claims"}
    result = check("row_count", match, mission=granted)
    assert result.passed and result.evidence["expected"] == 3
    lines = {**match, "equals_query": "SELECT COUNT(*) FROM claims"}
    result = check("row_count", lines, mission=granted)
    assert not result.passed
    assert result.message == "claim_summary: 3 row(s), but the reference query on BRONZE gives 5."
    missing = check("row_count", {"connection": "WAREHOUSE", "table": "nothing", "min": 0}, mission=granted)
    assert not missing.passed and missing.message == "Table nothing does not exist on WAREHOUSE."
    bad = check("row_count", {"connection": "WAREHOUSE", "table": "claim_summary"}, mission=granted)
    assert not bad.passed and "needs at least one of: min, equals_query" in bad.message


def test_sql_assert(granted):
    base = {"connection": "BRONZE", "query": "SELECT SUM(amount) FROM claims"}
    result = check("sql_assert", {**base, "expected": 25}, mission=granted)
    assert result.passed and result.evidence["value"] == 25.0 and result.message == "25.0 == 25 holds."
    result = check("sql_assert", {**base, "operator": ">", "expected": 100}, mission=granted)
    assert not result.passed and result.message == "25.0 > 100 does not hold."
    text = check("sql_assert", {"connection": "BRONZE", "query": "SELECT min(claim_id) FROM claims",
                                "expected": "c1"}, mission=granted)
    assert text.passed
    broken = check("sql_assert", {"connection": "BRONZE", "query": "SELECT nope FROM claims", "expected": 1},
                   mission=granted)
    assert not broken.passed and "no such column: nope" in broken.message


def test_checks_never_write(granted, bronze):
    two = check("sql_assert", {"connection": "BRONZE", "query": "SELECT 1; DROP TABLE claims", "expected": 1},
                mission=granted)
    assert not two.passed and two.message == "Exactly one statement is allowed; got 2."
    write = check("sql_assert", {"connection": "BRONZE", "query": "DELETE FROM claims", "expected": 1},
                  mission=granted)
    assert not write.passed and write.message == "Only read-only SELECT queries are allowed; got DELETE."
    with pytest.raises(QueryRefused, match="Only read-only SELECT"):
        query_value(bronze, "INSERT INTO claims VALUES ('c9', 1, 1) RETURNING 1", mission=granted)
    assert query_value(bronze, "SELECT COUNT(*) FROM claims", mission=granted) == 5


def test_a_check_reads_only_connections_granted_to_its_mission(mission, bronze, warehouse):
    bronze.missions.add(mission)
    params = {"connection": "WAREHOUSE", "query": "SELECT COUNT(*) FROM claim_summary", "expected": 3}
    refused = check("sql_assert", params, mission=mission)
    assert not refused.passed
    assert refused.message.startswith(f"Mission “{mission.name}” may not use connection WAREHOUSE")
    assert "value" not in refused.evidence
    for type_, other in (("table_exists", {"tables": ["claim_summary"]}), ("row_count", {"table": "x", "min": 0})):
        result = check(type_, {"connection": "WAREHOUSE", **other}, mission=mission)
        assert not result.passed and "may not use connection WAREHOUSE" in result.message
    assert check("sql_assert", {**params, "connection": "BRONZE", "query": "SELECT COUNT(*) FROM claims",
                                "expected": 5}, mission=mission).passed
    no_mission = check("sql_assert", {**params, "connection": "BRONZE"}, mission=None)
    assert not no_mission.passed and "may not use connection BRONZE" in no_mission.message


def test_evidence_is_cut_and_counted_never_a_copy_of_the_data(granted):
    query = "SELECT group_concat(claim_id || ':' || amount, ',') FROM claims"
    full = "c1:10.0,c1:5.0,c2:7.0,c3:1.0,c3:2.0"
    short = check("sql_assert", {"connection": "BRONZE", "query": query, "expected": full}, mission=granted)
    assert short.passed and short.evidence["value"] == full  # short values are shown whole
    long_query = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
                  "SELECT group_concat(printf('%05d', i), '') FROM n")
    long = check("sql_assert", {"connection": "BRONZE", "query": long_query, "expected": "x"}, mission=granted)
    assert not long.passed
    assert long.evidence["value_truncated"] is True and long.evidence["value_chars"] == 2500
    assert len(long.evidence["value"]) == 201 and long.evidence["value"].endswith("…")
    assert len(long.message) < 300


def test_a_missing_sqlite_file_fails_the_check_with_the_reason(mission, tmp_path):
    gone = Connection.objects.create(name="GONE", engine="sqlite", location=str(tmp_path / "gone.sqlite3"))
    gone.missions.add(mission)
    result = check("table_exists", {"connection": "GONE", "tables": ["x"]}, mission=mission)
    assert not result.passed
    assert result.message == f"Connection GONE: the SQLite file {tmp_path / 'gone.sqlite3'} does not exist."


@pytest.mark.skipif(django_db.vendor != "postgresql", reason="needs the suite to run on PostgreSQL")
def test_postgresql_connections_are_read_read_only_and_never_the_platforms_own(mission, pg_source):
    pg_source.missions.add(mission)
    assert check("table_exists", {"connection": "PG", "tables": ["CLAIMS", f"{pg_source.schema}.claims"]},
                 mission=mission).passed
    assert not check("table_exists", {"connection": "PG", "tables": ["nothing_here"]}, mission=mission).passed
    claims = check("row_count", {"connection": "PG", "table": "claims", "min": 1}, mission=mission)
    assert claims.passed and claims.evidence["count"] == 5
    assert check("sql_assert", {"connection": "PG", "query": "SELECT 40 + 2", "expected": 42}, mission=mission).passed
    with pytest.raises(QueryRefused, match="Only read-only SELECT"):
        query_value(pg_source, "CREATE TABLE should_not_exist AS SELECT 1", mission=mission)
    # The platform's own database, under another spelling of its address, is refused when it is opened.
    settings = django_db.settings_dict
    own = Connection.objects.create(
        name="OWN", engine="postgresql", location=f"postgresql://{settings['USER']}@localhost:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}?application_name=x", secret=settings.get("PASSWORD") or "")
    own.missions.add(mission)
    refused = check("sql_assert", {"connection": "OWN", "query": "SELECT COUNT(*) FROM auth_user", "expected": 0},
                    mission=mission)
    assert not refused.passed and "platform's own database" in refused.message
