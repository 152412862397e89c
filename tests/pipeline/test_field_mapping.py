"""The field-mapping agent on generated bronze data: every target column mapped as its spec defines it (checked
column by column and against an independent computation), questions where unsure, answers and feedback used,
versions with diffs."""

import json
import math

import pytest

from agents.access import adapter_for
from agents.base import Failed, NeedsApproval, NeedsInput
from history.models import HistoryEntry
from pipeline.models import MappingSpecVersion
from tasks.models import Artifact
from tests.pipeline import expected
from tests.pipeline.conftest import SPEC_PATH

TARGETS = ["CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"]

# What each target column must come from: (kind, source columns) per the meanings in the demo spec file. A set means
# either side of an inferred foreign key (the same value on joined rows).
MEANINGS = {
    "CLAIM_SUMMARY": {
        "CLAIM_ID": {"CLAIMS.CLAIM_ID"}, "CLAIM_DATE": {"CLAIMS.SERVICE_DATE"},
        "PATIENT_ID": {"CLAIMS.PATIENT_ID", "PATIENTS.PATIENT_ID"},
        "PROVIDER_ID": {"CLAIMS.PROVIDER_ID", "PROVIDERS.PROVIDER_ID"},
        "CLAIM_TYPE": {"CLAIMS.CLAIM_TYPE"}, "CLAIM_STATUS": {"CLAIMS.STATUS"},
        "PRIMARY_DIAGNOSIS": {"CLAIMS.DIAGNOSIS_CODE"}, "TOTAL_CHARGE": {"CLAIM_DETAILS.CHARGE_AMOUNT"},
        "INSURANCE_PAID": {"CLAIM_DETAILS.PAID_AMOUNT"},
        "PATIENT_RESPONSIBILITY": {"CLAIM_DETAILS.CHARGE_AMOUNT", "CLAIM_DETAILS.PAID_AMOUNT"},
    },
    "PROVIDER_SUMMARY": {
        "PROVIDER_ID": {"CLAIMS.PROVIDER_ID", "PROVIDERS.PROVIDER_ID"}, "PROVIDER_NAME": {"PROVIDERS.PROVIDER_NAME"},
        "SPECIALTY": {"PROVIDERS.SPECIALTY"}, "REPORT_YEAR": {"CLAIMS.SERVICE_DATE"},
        "REPORT_MONTH": {"CLAIMS.SERVICE_DATE"}, "TOTAL_CLAIMS": {"CLAIMS.CLAIM_ID"},
        "UNIQUE_PATIENTS": {"CLAIMS.PATIENT_ID", "PATIENTS.PATIENT_ID"},
        "TOTAL_CHARGES": {"CLAIM_DETAILS.CHARGE_AMOUNT"}, "TOTAL_PAID": {"CLAIM_DETAILS.PAID_AMOUNT"},
        "DENIAL_RATE": {"CLAIMS.STATUS"},
    },
    "PATIENT_SUMMARY": {
        "PATIENT_ID": {"CLAIMS.PATIENT_ID", "PATIENTS.PATIENT_ID"},
        "PATIENT_FULL_NAME": {"PATIENTS.FIRST_NAME", "PATIENTS.LAST_NAME"},
        "PATIENT_AGE": {"PATIENTS.BIRTH_DATE", "CLAIMS.SERVICE_DATE"},
        "AGE_GROUP": {"PATIENTS.BIRTH_DATE", "CLAIMS.SERVICE_DATE"},
        "REPORT_YEAR": {"CLAIMS.SERVICE_DATE"}, "REPORT_MONTH": {"CLAIMS.SERVICE_DATE"},
        "TOTAL_CLAIMS": {"CLAIMS.CLAIM_ID"}, "TOTAL_CHARGES": {"CLAIM_DETAILS.CHARGE_AMOUNT"},
        "TOTAL_PAID": {"CLAIM_DETAILS.PAID_AMOUNT"},
    },
}
EXPECTED = {"CLAIM_SUMMARY": (expected.claim_summary, lambda r: r[0]),
            "PROVIDER_SUMMARY": (expected.provider_summary, lambda r: (r[0], r[3], r[4])),
            "PATIENT_SUMMARY": (expected.patient_summary, lambda r: (r[0], r[4], r[5]))}


def _config(connection, target, **extra):
    return {"target": target, "spec_path": SPEC_PATH, "source_connection": connection.name, **extra}


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), abs_tol=0.011)
    return a == b


def _check_target(bronze, result, target, renamed=None):
    renamed = renamed or {}
    assert isinstance(result.outcome, NeedsApproval), result.outcome
    version = MappingSpecVersion.objects.get(spec_id=result.outcome.outputs["mapping_spec_id"],
                                             number=result.outcome.outputs["version"])
    content = version.content
    columns = {c["name"]: c for c in content["columns"]}
    assert list(columns) == list(MEANINGS[target])
    for name, allowed in MEANINGS[target].items():
        allowed = {renamed.get(a, a) for a in allowed}
        sources = {f"{s['table']}.{s['column']}" for s in columns[name]["sources"]}
        assert sources and sources <= allowed, (target, name, sources)
        assert set(version.lineage[name]) <= allowed and version.lineage[name], (name, version.lineage[name])
        assert columns[name]["reasoning"] and 0 < columns[name]["confidence"] <= 1
        assert columns[name]["transformation"]
    # The spec's SQL, run on the source, gives what the meanings give when computed independently.
    compute, key = EXPECTED[target]
    want = compute(bronze.data)
    with adapter_for(result.context.connections.get("x") or _conn(result), mission=None) as adapter:
        got = adapter.query(version.sql, limit=10**7).rows
    assert len(got) == len(want) == content["dry_run"]["rows"]
    assert content["dry_run"]["duplicate_grain_rows"] == 0
    mismatches = [(row, want.get(key(row))) for row in got
                  if key(row) not in want or not all(_same(a, b) for a, b in zip(row, want[key(row)], strict=True))]
    assert mismatches == []
    return version


def _conn(result):
    from agents.models import Connection

    return Connection.objects.get(name=result.context.config["source_connection"])


@pytest.mark.parametrize("bronze_name", ["bronze_small", "bronze_default_seed"])
def test_every_target_column_is_mapped_as_the_issue_defines(request, bronze_name, mission, run_agent, source_for):
    bronze = request.getfixturevalue(bronze_name)
    source = source_for(bronze.path)
    for target in TARGETS:
        result = run_agent("field_mapping", mission=mission, config=_config(source, target), key=target.lower())
        version = _check_target(bronze, result, target)
        assert version.status == "proposed" and version.number == 1
        names = set(Artifact.objects.filter(task=result.task).values_list("name", flat=True))
        assert names == {f"{target}.mapping_spec.json", f"{target}.sql", f"{target}.mapping_spec.md"}
        assert HistoryEntry.objects.filter(task=result.task, event="mapping_spec.proposed").count() == 1


@pytest.mark.parametrize("bronze_name", ["bronze_small", "bronze_renamed"])
def test_a_large_source_is_dry_run_over_its_latest_month(request, bronze_name, settings, mission, run_agent,
                                                         source_for):
    """Past GENESIS_DRY_RUN_FULL_ROWS claims, the dry run reads the latest month (claims and their lines) and
    counts exactly that month's rows; the proposed SQL itself is unchanged."""
    bronze = request.getfixturevalue(bronze_name)
    settings.GENESIS_DRY_RUN_FULL_ROWS = 100
    source = source_for(bronze.path)
    claims = bronze.data.tables["CLAIMS"]  # CLAIM_ID, PATIENT_ID, PROVIDER_ID, SERVICE_DATE, ...
    month = max(c[3] for c in claims)[:7]
    in_month = [c for c in claims if c[3].startswith(month)]
    want = {"CLAIM_SUMMARY": len(in_month), "PROVIDER_SUMMARY": len({c[2] for c in in_month}),
            "PATIENT_SUMMARY": len({c[1] for c in in_month})}
    for target in TARGETS:
        result = run_agent("field_mapping", mission=mission, config=_config(source, target), key=target.lower())
        if isinstance(result.outcome, NeedsInput):
            assert bronze_name == "bronze_renamed"  # asking is allowed there; never a silent wrong mapping
            continue
        version = MappingSpecVersion.objects.get(spec_id=result.outcome.outputs["mapping_spec_id"],
                                                 number=result.outcome.outputs["version"])
        dry = version.content["dry_run"]
        assert dry["scope"].startswith(f"month {month} of CLAIMS."), dry["scope"]
        assert dry["rows"] == want[target] > 0 and dry["duplicate_grain_rows"] == 0
        assert len(dry["sample"]) == 5
        assert f"dry run over month {month}" in result.outcome.summary
        with adapter_for(_conn(result), mission=None) as adapter:
            assert len(adapter.query(version.sql, limit=10**7).rows) > want[target]  # the spec reads every month


def test_renamed_columns_are_mapped_by_meaning(mission, run_agent, source_for, bronze_renamed):
    source = source_for(bronze_renamed.path)
    renamed = {"CLAIMS.SERVICE_DATE": "CLAIMS.SVC_DT", "CLAIMS.DIAGNOSIS_CODE": "CLAIMS.DX1"}
    for target in TARGETS:
        result = run_agent("field_mapping", mission=mission, config=_config(source, target), key=target.lower())
        if isinstance(result.outcome, NeedsInput):
            # Allowed: asking, as long as the question names the column; never a silent wrong mapping.
            assert result.outcome.context["column"].startswith(f"{target}.")
            continue
        _check_target(bronze_renamed, result, target, renamed=renamed)


def test_meaningless_names_become_a_question_naming_the_column(mission, run_agent, source_for, bronze_opaque):
    source = source_for(bronze_opaque.path)
    result = run_agent("field_mapping", mission=mission, config=_config(source, "CLAIM_SUMMARY"))
    outcome = result.outcome
    assert isinstance(outcome, NeedsInput)
    assert outcome.context["column"] == "CLAIM_SUMMARY.CLAIM_DATE"
    assert "CLAIM_SUMMARY.CLAIM_DATE" in outcome.question
    assert "CLAIMS.EVENT_TS" in outcome.options and outcome.options[-1] == "none"
    assert not MappingSpecVersion.objects.exists()

    # The answer is used: the next run maps CLAIM_DATE to the chosen column, then asks about the next one.
    answers = [{"question": outcome.question, "answer": "CLAIMS.EVENT_TS", "context": outcome.context}]
    second = run_agent("field_mapping", mission=mission, config=result.context.config, answers=answers)
    assert isinstance(second.outcome, NeedsInput)
    assert second.outcome.context["column"] == "CLAIM_SUMMARY.PRIMARY_DIAGNOSIS"
    answers.append({"question": second.outcome.question, "answer": "CLAIMS.COL7"})
    third = run_agent("field_mapping", mission=mission, config=result.context.config, answers=answers)
    assert isinstance(third.outcome, NeedsApproval)
    version = MappingSpecVersion.objects.get()
    columns = {c["name"]: c for c in version.content["columns"]}
    assert columns["CLAIM_DATE"]["sources"] == [{"table": "CLAIMS", "column": "EVENT_TS"}]
    assert columns["CLAIM_DATE"]["decided_by"] == "answer"
    assert columns["PRIMARY_DIAGNOSIS"]["sources"] == [{"table": "CLAIMS", "column": "COL7"}]


def test_an_answer_that_names_no_usable_column_is_asked_again(mission, run_agent, source_for, bronze_opaque):
    source = source_for(bronze_opaque.path)
    first = run_agent("field_mapping", mission=mission, config=_config(source, "CLAIM_SUMMARY"))
    answers = [{"question": first.outcome.question, "answer": "PATIENTS.NOPE"}]
    again = run_agent("field_mapping", mission=mission, config=first.context.config, answers=answers)
    assert isinstance(again.outcome, NeedsInput)
    assert "does not name a usable source column" in again.outcome.question


def test_rejection_feedback_changes_the_next_version(mission, run_agent, source_for, bronze_small, lead):
    from pipeline.services import mapping_spec_approve

    source = source_for(bronze_small.path)
    config = _config(source, "CLAIM_SUMMARY")
    first = run_agent("field_mapping", mission=mission, config=config, key="map")
    v1 = MappingSpecVersion.objects.get(number=1)
    refused = run_agent("field_mapping", mission=mission, config=config, key="map", feedback=[
        {"feedback": "PRIMARY_DIAGNOSIS must come from CLAIM_DETAILS.PROCEDURE_CODE.", "by": "lead"}])
    assert isinstance(refused.outcome, NeedsInput)
    assert ("CLAIM_DETAILS.PROCEDURE_CODE, which one row of CLAIM_SUMMARY does not determine"
            in refused.outcome.question)
    feedback = [{"feedback": "Looks fine overall. CLAIM_TYPE should be the patient's plan, PATIENTS.INSURANCE_TYPE.",
                 "by": "lead"}]
    second = run_agent("field_mapping", mission=mission, config=config, key="map", feedback=feedback)
    assert isinstance(second.outcome, NeedsApproval)
    v1.refresh_from_db()
    v2 = MappingSpecVersion.objects.get(number=2)
    assert v1.status == "rejected" and "PROCEDURE_CODE" in v1.feedback and v1.decided_by == lead
    columns = {c["name"]: c for c in v2.content["columns"]}
    assert columns["CLAIM_TYPE"]["decided_by"] == "feedback"
    assert v2.diff["changed"]["CLAIM_TYPE"]["sources"] == {
        "from": [{"table": "CLAIMS", "column": "CLAIM_TYPE"}],
        "to": [{"table": "PATIENTS", "column": "INSURANCE_TYPE"}]}
    assert list(v2.diff["changed"]) == ["CLAIM_TYPE"]
    assert {j["table"] for j in v2.content["joins"]} == {"PATIENTS"}
    assert first.outcome.outputs["version"] == 1 and second.outcome.outputs["version"] == 2
    mapping_spec_approve(version=v2, actor=lead)
    events = list(HistoryEntry.objects.filter(event__startswith="mapping_spec.").values_list("event", flat=True))
    assert events == ["mapping_spec.proposed", "mapping_spec.rejected", "mapping_spec.proposed",
                      "mapping_spec.approved"]


def test_feedback_naming_no_column_is_asked_about(mission, run_agent, source_for, bronze_small):
    source = source_for(bronze_small.path)
    config = _config(source, "CLAIM_SUMMARY")
    run_agent("field_mapping", mission=mission, config=config, key="map")
    result = run_agent("field_mapping", mission=mission, config=config, key="map",
                       feedback=[{"text": "This does not look right to me."}])
    assert isinstance(result.outcome, NeedsInput)
    assert "This does not look right to me." in result.outcome.question
    answered = run_agent("field_mapping", mission=mission, config=config, key="map",
                         feedback=[{"text": "This does not look right to me."}],
                         answers=[{"question": result.outcome.question,
                                   "answer": "CLAIM_TYPE = CLAIMS.STATUS"}])
    assert isinstance(answered.outcome, NeedsApproval)
    latest = MappingSpecVersion.objects.order_by("-number").first()
    columns = {c["name"]: c for c in latest.content["columns"]}
    assert columns["CLAIM_TYPE"]["sources"] == [{"table": "CLAIMS", "column": "STATUS"}]


def test_a_malformed_spec_file_fails_with_the_path(mission, run_agent, source_for, bronze_small, tmp_path):
    bad = tmp_path / "project.yml"
    bad.write_text(open(SPEC_PATH).read().replace("grain:\n        entity: claim", "grain:\n        entitee: claim"))
    source = source_for(bronze_small.path)
    result = run_agent("field_mapping", mission=mission,
                       config={"target": "CLAIM_SUMMARY", "spec_path": str(bad), "source_connection": source.name})
    assert isinstance(result.outcome, Failed) and not result.outcome.retryable
    assert "targets.tables[0].grain" in result.outcome.error
    assert not MappingSpecVersion.objects.exists()


def test_unknown_target_and_missing_allowed_tables(mission, run_agent, source_for, bronze_small):
    source = source_for(bronze_small.path)
    result = run_agent("field_mapping", mission=mission, config=_config(source, "NOPE"))
    assert isinstance(result.outcome, Failed) and "no target named 'NOPE'" in result.outcome.error


def test_the_spec_json_is_the_documented_shape(mission, run_agent, source_for, bronze_small):
    source = source_for(bronze_small.path)
    result = run_agent("field_mapping", mission=mission, config=_config(source, "PROVIDER_SUMMARY"))
    artifact = Artifact.objects.get(task=result.task, name="PROVIDER_SUMMARY.mapping_spec.json")
    with artifact.file.open("rb") as handle:
        spec = json.loads(handle.read())
    assert spec["format"] == "genesis.mapping-spec/1"
    assert spec["grain"] == {"entity": "provider", "entity_table": "PROVIDERS", "entity_key": "PROVIDER_ID",
                             "period": "CLAIMS.SERVICE_DATE",
                             "columns": ["PROVIDER_ID", "REPORT_YEAR", "REPORT_MONTH"]}
    assert spec["fact_table"] == "CLAIMS"
    assert {j["table"] for j in spec["joins"]} == {"PROVIDERS"}
    assert spec["aggregated_children"][0]["table"] == "CLAIM_DETAILS"
    for column in spec["columns"]:
        assert {"name", "target_type", "sources", "expression", "join_path", "transformation", "constraints",
                "confidence", "reasoning", "lineage"} <= set(column)
    assert spec["sql"].startswith("WITH") and spec["dialect"] == "sqlite"


@pytest.mark.postgres
def test_mapping_on_postgresql_source(mission, run_agent, pg_schema):
    from pipeline.demo.generator import generate
    from tests.pipeline.conftest import Bronze, pg_connection

    source = pg_connection(pg_schema, name="PG_BRONZE")
    source.save()
    bronze = Bronze(path=None, data=generate(claims=300, seed=3))
    for target in TARGETS:
        result = run_agent("field_mapping", mission=mission, config=_config(source, target), key=target.lower())
        version = _check_target(bronze, result, target)
        assert version.dialect == "postgres"


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_the_dry_run_counts_rows_and_duplicate_grain_keys_in_one_statement(engine, tmp_path, source_for, monkeypatch):
    from agents.connectors.base import Adapter
    from pipeline.implementations.field_mapping import FieldMappingAgent

    rows = [(1, "a"), (1, "b"), (2, "c"), (3, "d"), (3, "e"), (3, "f"), (4, "g")]
    if engine == "sqlite":
        import sqlite3

        path = tmp_path / "dry.sqlite3"
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE T (K INTEGER, V TEXT)")
            con.executemany("INSERT INTO T VALUES (?, ?)", rows)
        connection = source_for(path)
    else:
        import duckdb

        from agents.models import Connection

        path = tmp_path / "dry.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TABLE T (K INTEGER, V TEXT)")
            con.executemany("INSERT INTO T VALUES (?, ?)", rows)
        connection = Connection.objects.create(name="DRY_DUCK", engine="duckdb", location=str(path),
                                               purpose="source")
    statements = []
    original = Adapter.query

    def counted(self, sql, **kwargs):
        statements.append(sql)
        return original(self, sql, **kwargs)

    monkeypatch.setattr(Adapter, "query", counted)
    agent = FieldMappingAgent()
    profile = {"tables": {"T": {"row_count": len(rows)}}}

    def dry(sql, grain):
        content = {"target": "DRY", "sql": sql, "grain": {"columns": grain, "period": None}, "dialect": engine,
                   "columns": []}
        statements.clear()
        with adapter_for(connection, mission=None) as adapter:
            result = agent._dry_run(adapter, content, profile)
        assert len(statements) == 1, statements  # the model, its sample and its totals: one statement
        return result

    grained = dry('SELECT "K", "V" FROM "T" ORDER BY "K", "V"', ["K"])
    assert (grained["rows"], grained["duplicate_grain_rows"], grained["scope"]) == (7, 2, "all rows")
    assert grained["columns"] == ["K", "V"]
    assert grained["sample"] == [[1, "a"], [1, "b"], [2, "c"], [3, "d"], [3, "e"]]
    unique = dry('SELECT "K", "V" FROM "T" ORDER BY "K", "V"', ["K", "V"])
    assert (unique["rows"], unique["duplicate_grain_rows"]) == (7, 0)
    keys = dry('SELECT "K", COUNT(*) AS "N" FROM "T" GROUP BY "K" ORDER BY "K"', [])
    assert (keys["rows"], keys["duplicate_grain_rows"], keys["sample"]) == (4, 0, [[1, 2], [2, 1], [3, 3], [4, 1]])
    empty = dry('SELECT "K", "V" FROM "T" WHERE "K" > 9', ["K"])
    assert (empty["rows"], empty["duplicate_grain_rows"], empty["sample"]) == (0, 0, [])
    assert empty["columns"] == ["K", "V"]
