"""The pipeline with source and target in DuckDB files (dbt-duckdb): the targets equal the independent computation,
the data-quality, validation and backfill agents work on them as on SQLite, and nothing is downloaded."""

from __future__ import annotations

import json

import duckdb
import pytest

from agents.base import Failed, NeedsApproval, Succeeded
from agents.models import Connection
from pipeline.demo.generator import generate, write_duckdb, write_sqlite
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline
from tests.pipeline.build.healthcare import assert_target_matches, expected_targets, read_bronze

pytestmark = pytest.mark.django_db


def read_duckdb_table(path, table: str) -> list[dict]:
    db = duckdb.connect(str(path), read_only=True)
    try:
        cursor = db.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - a fixed target name
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        db.close()


@pytest.fixture
def duck_bronze(tmp_path):
    """400 claims (seed 31) in DuckDB, two of them pointing at providers that do not exist; the same rows in SQLite
    for the independent computation."""
    data = generate(claims=400, seed=31)
    claims = data.tables["CLAIMS"]
    for index, provider in ((10, 7001), (20, 7002)):
        claims[index] = (*claims[index][:2], provider, *claims[index][3:])
    return (write_duckdb(tmp_path / "bronze.duckdb", data), write_sqlite(tmp_path / "same-bronze.sqlite3", data),
            claims)


def duck_pipeline(tmp_path, bronze_duck, bronze_copy) -> Pipeline:
    pipeline = Pipeline(tmp_path, bronze_copy)
    pipeline.target_path = tmp_path / "warehouse.duckdb"
    pipeline.source = Connection.objects.create(name="DUCK_BRONZE", engine="duckdb", location=str(bronze_duck),
                                                purpose="source")
    pipeline.target = Connection.objects.create(name="DUCK_TARGET", engine="duckdb",
                                                location=str(pipeline.target_path), purpose="target")
    pipeline.grant(pipeline.source, pipeline.target)
    pipeline.mission.source_connection, pipeline.mission.target_connection = pipeline.source, pipeline.target
    pipeline.mission.save(update_fields=["source_connection", "target_connection"])
    return pipeline


def test_pipeline_on_duckdb(tmp_path, dbt_dir, duck_bronze, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where DuckDB would put a downloaded extension
    bronze_duck, bronze_copy, claims = duck_bronze
    pipeline = duck_pipeline(tmp_path, bronze_duck, bronze_copy)

    outcome, _ = pipeline.run("dbt_build")
    assert isinstance(outcome, Succeeded), outcome
    expected = expected_targets(read_bronze(bronze_copy))
    for name, want in expected.items():
        assert_target_matches(name, read_duckdb_table(pipeline.target_path, name), want)
    db = duckdb.connect(str(pipeline.target_path), read_only=True)
    types = dict(db.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'CLAIM_SUMMARY'").fetchall())
    rate = db.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'PROVIDER_SUMMARY' "
                      "AND column_name = 'DENIAL_RATE'").fetchone()[0]
    db.close()
    assert (types["CLAIM_DATE"], types["TOTAL_CHARGE"], types["CLAIM_ID"]) == ("DATE", "DECIMAL(12,2)", "BIGINT")
    assert rate == "DECIMAL(5,4)"

    outcome, _ = pipeline.run("validation")
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rows"]["CLAIM_SUMMARY"] == 400

    outcome, _ = pipeline.run("data_quality")
    assert isinstance(outcome, Failed)
    failed = outcome.outputs["failed"]
    assert [(f["check"], f["target"], f["column"]) for f in failed] == [("references", "CLAIM_SUMMARY", "PROVIDER_ID")]
    assert "7001" in outcome.error and "7002" in outcome.error
    assert sorted(failed[0]["sample_keys"]) == sorted([claims[10][0], claims[20][0]])

    orphan_months = {claims[10][3][:7], claims[20][3][:7]}
    month = next(c[3][:7] for c in claims if c[3][:7] not in orphan_months)
    outcome, _ = pipeline.run("backfill", months=[month])
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["final_rows"]["CLAIM_SUMMARY"] == 400

    outcome, context = pipeline.run("backfill", key="backfill_all")
    assert isinstance(outcome, Failed) and sorted(outcome.outputs["failing_months"]) == sorted(orphan_months)
    report = json.loads(Artifact.objects.get(run=context.run, name="backfill_report.json").file.read())
    assert report["rebuilt"] == {"PROVIDER_SUMMARY": sorted(orphan_months)}  # rebuilt once, still short
    assert report["final_rows"]["CLAIM_SUMMARY"] == 400
    for name, want in expected.items():
        assert_target_matches(name, read_duckdb_table(pipeline.target_path, name), want)
    db = duckdb.connect(str(pipeline.target_path), read_only=True)
    kept = db.execute("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '%genesis_backfill'")
    assert kept.fetchone()[0] == 0
    db.close()
    assert not (tmp_path / "home" / ".duckdb").exists()


def test_the_duckdb_profile_attaches_the_source_read_only_and_never_downloads(tmp_path, settings):
    from pipeline.dbt.project import profile_for, source_database_for, source_schema_for

    settings.GENESIS_DBT_DUCKDB_THREADS = 3
    settings.GENESIS_DUCKDB_MEMORY_LIMIT = "300MB"

    source = Connection(name="S", engine="duckdb", location=str(tmp_path / "bronze.duckdb"))
    target = Connection(name="T", engine="duckdb", location=str(tmp_path / "gold.duckdb"))
    profile, env = profile_for(target=target, source=source)
    output = profile["genesis"]["outputs"]["genesis"]
    assert output["type"] == "duckdb" and output["path"] == str((tmp_path / "gold.duckdb").resolve())
    assert output["attach"] == [{"path": str((tmp_path / "bronze.duckdb").resolve()), "alias": "bronze",
                                 "read_only": True}]
    assert output["config_options"] == {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                                        "allow_community_extensions": False, "memory_limit": "300MB"}
    assert output["extensions"] == [] and env == {}
    # One database instance per invocation, shared by dbt's threads (the runner closes it at the end).
    assert output["keep_open"] is True and output["threads"] == 3
    assert (source_schema_for(target=target, source=source), source_database_for(target=target, source=source)) == (
        "main", "bronze")
    # The bronze tables in the target's own file: nothing to attach.
    profile, _ = profile_for(target=target, source=target)
    assert "attach" not in profile["genesis"]["outputs"]["genesis"]
    assert source_database_for(target=target, source=target) is None
    # A DuckDB session opened as dbt-duckdb opens it cannot fetch an extension.
    db = duckdb.connect(str(tmp_path / "probe.duckdb"), config=output["config_options"])
    with pytest.raises(duckdb.Error, match="sqlite_scanner"):
        db.execute("SELECT * FROM sqlite_scan('x.db', 't')")
    # Its memory is bounded by the setting (DuckDB's default is 80% of the machine).
    assert db.execute("SELECT current_setting('memory_limit')").fetchone()[0] in {"286.1 MiB", "300.0 MB"}
    db.close()


def test_a_sqlite_source_cannot_feed_a_duckdb_target_and_says_why(tmp_path):
    from genesis.exceptions import DomainError
    from pipeline.dbt.project import profile_for

    source = Connection(name="LITE", engine="sqlite", location=str(tmp_path / "bronze.sqlite3"))
    target = Connection(name="T", engine="duckdb", location=str(tmp_path / "gold.duckdb"))
    with pytest.raises(DomainError, match="LITE is sqlite .*load it into duckdb first") as caught:
        profile_for(target=target, source=source)
    assert caught.value.field == "engine"


def test_generated_models_are_duckdb_sql_with_declared_types():
    from pipeline.dbt.project import generate_project
    from pipeline.dbt.spec import target_from_dict
    from tests.pipeline.build.healthcare import TARGETS

    targets = [target_from_dict(t) for t in TARGETS]
    bronze = {t: t for t in ("PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS")}
    project = generate_project(name="h", targets=targets, engine="duckdb", bronze_tables=bronze,
                               source_schema="main", source_database="bronze")
    model = project.files["models/CLAIM_SUMMARY.sql"]
    assert "(sqlite -> duckdb)" in model
    assert 'CAST("genesis_mapped"."CLAIM_DATE" AS DATE)' in model
    assert 'CAST("genesis_mapped"."TOTAL_CHARGE" AS DECIMAL(12, 2))' in model
    assert "{{ source('bronze', 'CLAIMS') }}" in model
    sources = project.files["models/sources.yml"]
    assert "database: bronze" in sources and "schema: main" in sources


def test_the_demo_mission_profiles_maps_builds_and_checks_on_duckdb(tmp_path, dbt_dir, lead, monkeypatch):
    """The healthcare mission's steps on a DuckDB source and target: profiling, the field-mapping agent's three specs
    (approved), dbt build, data quality, validation, the backfill, and the blueprint's checks (table_exists,
    row_count against the source, sql_assert); the targets equal the independent computation."""
    from blueprints.checks import CheckContext, run_check
    from pipeline import services as agent_services
    from pipeline.models import MappingSpecVersion
    from tests.pipeline.conftest import SPEC_PATH

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = generate(claims=450, seed=23)
    bronze_copy = write_sqlite(tmp_path / "same-bronze.sqlite3", data)
    pipeline = duck_pipeline(tmp_path, write_duckdb(tmp_path / "bronze.duckdb", data), bronze_copy)

    outcome, _ = pipeline.run("profiling", connection=pipeline.source.name, spec_path=SPEC_PATH)
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["tables"] == {"CLAIMS": 450, "CLAIM_DETAILS": len(data.tables["CLAIM_DETAILS"]),
                                         "PATIENTS": len(data.tables["PATIENTS"]),
                                         "PROVIDERS": len(data.tables["PROVIDERS"])}
    assert {"CLAIMS.PATIENT_ID -> PATIENTS.PATIENT_ID", "CLAIMS.PROVIDER_ID -> PROVIDERS.PROVIDER_ID",
            "CLAIM_DETAILS.CLAIM_ID -> CLAIMS.CLAIM_ID"} <= set(outcome.outputs["foreign_keys"])

    for target in ("CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"):
        outcome, _ = pipeline.run("field_mapping", key=target.lower(), target=target, spec_path=SPEC_PATH,
                                  source_connection=pipeline.source.name)
        assert isinstance(outcome, NeedsApproval), outcome
    for version in MappingSpecVersion.objects.all():
        assert version.content["dialect"] == "duckdb"
        agent_services.mapping_spec_approve(version=version, actor=lead)

    for kind in ("dbt_build", "data_quality", "validation", "backfill"):
        outcome, _ = pipeline.run(kind, targets=[])
        assert isinstance(outcome, Succeeded), (kind, outcome)
    expected = expected_targets(read_bronze(bronze_copy))
    for name, want in expected.items():
        assert_target_matches(name, read_duckdb_table(pipeline.target_path, name), want)

    context = CheckContext(mission=pipeline.mission)
    checks = [
        {"type": "table_exists", "params": {"connection": "DUCK_TARGET",
                                            "tables": ["CLAIM_SUMMARY", "provider_summary", "main.PATIENT_SUMMARY"]}},
        {"type": "row_count", "params": {"connection": "DUCK_TARGET", "table": "CLAIM_SUMMARY",
                                         "equals_query": "SELECT COUNT(DISTINCT claim_id) FROM claims",
                                         "equals_connection": "DUCK_BRONZE"}},
        {"type": "sql_assert", "params": {"connection": "DUCK_TARGET", "operator": ">=", "expected": 1,
                                          "query": 'SELECT MIN("TOTAL_CLAIMS") FROM "PROVIDER_SUMMARY"'}},
    ]
    for criterion in checks:
        result = run_check(criterion, context)
        assert result.passed, (criterion["type"], result.message)
    missing = run_check({"type": "table_exists", "params": {"connection": "DUCK_TARGET", "tables": ["NOPE"]}},
                        context)
    assert not missing.passed and missing.evidence["missing"] == ["NOPE"]
    refused = run_check({"type": "sql_assert", "params": {
        "connection": "DUCK_BRONZE", "expected": 1, "query": "SELECT COUNT(*) FROM read_csv('/etc/passwd')"}},
        context)
    assert not refused.passed and "read_csv() is not allowed" in refused.message
    assert not (tmp_path / "home" / ".duckdb").exists()


def test_a_bare_numeric_of_another_dialect_keeps_its_digits_on_duckdb():
    """sqlglot writes SQLite's NUMERIC as DuckDB's bare DECIMAL, which DuckDB reads as DECIMAL(18,3): a rate's fourth
    decimal would be lost. On DuckDB it becomes DOUBLE; a declared precision is kept."""
    from pipeline.dbt.spec import target_from_dict
    from pipeline.dbt.sqlgen import model_sql

    target = target_from_dict({
        "target_table": "RATES", "dialect": "sqlite", "grain": ["CLAIM_ID"],
        "sql": "SELECT CLAIM_ID, ROUND(CAST(1.0 * CLAIM_ID / 3 AS NUMERIC), 4) AS RATE, "
               "CAST(CLAIM_ID AS DECIMAL(12,2)) AS AMOUNT FROM CLAIMS",
        "columns": [{"name": "CLAIM_ID", "type": "INTEGER"}, {"name": "RATE", "type": "NUMERIC"},
                    {"name": "AMOUNT", "type": "DECIMAL(12,2)"}],
    })
    sql = model_sql(target, dialect="duckdb", bronze_tables={"CLAIMS": "CLAIMS"})
    assert "AS DOUBLE), 4)" in sql and "DECIMAL(18, 3)" not in sql and "AS DECIMAL(12, 2))" in sql
    rendered = sql.replace("{{ source('bronze', 'CLAIMS') }}", "(SELECT 1 AS CLAIM_ID)")
    db = duckdb.connect()
    assert db.execute(rendered).fetchone()[1] == pytest.approx(0.3333)
    db.close()


def test_an_environment_builds_the_project_into_its_own_duckdb_file(tmp_path, dbt_dir):
    from pipeline.dbt import services as dbt_services
    from pipeline.models import Environment

    data = generate(claims=300, seed=3)
    bronze_copy = write_sqlite(tmp_path / "same-bronze.sqlite3", data)
    pipeline = duck_pipeline(tmp_path, write_duckdb(tmp_path / "bronze.duckdb", data), bronze_copy)
    pipeline.task("dbt_build")
    stage = Connection.objects.create(name="DUCK_STAGE", engine="duckdb", location=str(tmp_path / "stage.duckdb"),
                                      purpose="target")
    pipeline.grant(stage)
    environment = Environment.objects.create(mission=pipeline.mission, name="stage", target=stage)
    result = dbt_services.environment_build(environment=environment)
    assert result.ok, result.error
    assert result.rows == {"CLAIM_SUMMARY": 300, "PROVIDER_SUMMARY": result.rows["PROVIDER_SUMMARY"],
                           "PATIENT_SUMMARY": result.rows["PATIENT_SUMMARY"]}
    environment.refresh_from_db()
    assert environment.last_revision == result.revision and environment.last_built_at
    expected = expected_targets(read_bronze(bronze_copy))
    for name, want in expected.items():
        assert_target_matches(name, read_duckdb_table(tmp_path / "stage.duckdb", name), want)
    assert not pipeline.target_path.exists()  # only the environment's file was built
