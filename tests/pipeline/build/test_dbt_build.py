"""The dbt building agent: generated project, in-process dbt build, artifacts, targets equal to an independent
computation at two seeds and sizes, failures naming the model, the warm manifest cache."""

from __future__ import annotations

import json

import pytest
import yaml

from agents.base import Failed, Succeeded
from pipeline.dbt import runner
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline
from tests.pipeline.build.healthcare import (
    TARGETS,
    assert_target_matches,
    expected_targets,
    read_bronze,
    read_sqlite_table,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("bronze_fixture", ["bronze_a", "bronze_b"])
def test_build_materializes_targets_equal_to_an_independent_computation(request, tmp_path, dbt_dir, bronze_fixture):
    bronze = request.getfixturevalue(bronze_fixture)
    pipeline = Pipeline(tmp_path, bronze)
    outcome, context = pipeline.run("dbt_build")
    assert isinstance(outcome, Succeeded), outcome
    expected = expected_targets(read_bronze(bronze))
    for name, want in expected.items():
        rows = read_sqlite_table(pipeline.target_path, name)
        assert_target_matches(name, rows, want)
        assert outcome.outputs["rows"][name] == len(want)
    assert outcome.outputs["test_warnings"] == []
    names = set(Artifact.objects.filter(run=context.run).values_list("name", flat=True))
    assert {"run_results.json", "manifest.json", "dbt.log", "compiled-CLAIM_SUMMARY.sql",
            "model-PATIENT_SUMMARY.sql"} <= names
    results = json.loads(Artifact.objects.get(run=context.run, name="run_results.json").file.read())
    statuses = {r["unique_id"].split(".")[-1]: r["status"] for r in results["results"]
                if r["unique_id"].startswith("model.")}
    assert statuses == {"CLAIM_SUMMARY": "success", "PROVIDER_SUMMARY": "success", "PATIENT_SUMMARY": "success"}


def test_generated_project_is_dialect_sql_with_sources_and_table_materialization(tmp_path, dbt_dir, bronze_b):
    from pipeline.dbt.build import plan_build

    pipeline = Pipeline(tmp_path, bronze_b)
    plan = plan_build(mission=pipeline.mission, config={"targets": TARGETS})
    files = plan.project.files
    assert sorted(files) == ["dbt_project.yml", "macros/genesis.sql", "models/CLAIM_SUMMARY.sql",
                             "models/PATIENT_SUMMARY.sql", "models/PROVIDER_SUMMARY.sql", "models/schema.yml",
                             "models/sources.yml"]
    project = yaml.safe_load(files["dbt_project.yml"])
    assert project["models"][project["name"]]["+materialized"] == "table"
    for name in ("CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"):
        sql = files[f"models/{name}.sql"]
        assert "config(" not in sql
        assert "{{ source('bronze', 'CLAIMS') }}" in sql
        assert "SUBSTRING" not in sql.upper()
    assert "SUBSTR(" in files["models/PROVIDER_SUMMARY.sql"].upper()
    # A month's rebuild reads that month's claims and only their lines.
    assert plan.project.partition.children == (("CLAIM_DETAILS", "CLAIM_ID"),)
    assert "genesis_child_filter('\"CLAIM_ID\"', source('bronze', 'CLAIMS')" in files["models/CLAIM_SUMMARY.sql"]
    schema = yaml.safe_load(files["models/schema.yml"])
    claim = next(m for m in schema["models"] if m["name"] == "CLAIM_SUMMARY")
    claim_id = next(c for c in claim["columns"] if c["name"] == "CLAIM_ID")
    assert claim_id["description"] == "The claim." and set(claim_id["data_tests"]) == {"not_null", "unique"}
    provider = next(m for m in schema["models"] if m["name"] == "PROVIDER_SUMMARY")
    assert provider["data_tests"][0]["genesis_unique_combination"]["columns"] == [
        '"PROVIDER_ID"', '"REPORT_YEAR"', '"REPORT_MONTH"']
    sources = yaml.safe_load(files["models/sources.yml"])["sources"][0]
    assert {t["name"] for t in sources["tables"]} == {"CLAIMS", "CLAIM_DETAILS", "PROVIDERS", "PATIENTS"}
    # The same specs give the same revision: the warm cache key is stable.
    assert plan_build(mission=pipeline.mission, config={"targets": TARGETS}).project.revision == plan.project.revision


def test_a_failing_model_is_named_with_its_error(tmp_path, dbt_dir, bronze_b):
    broken = [dict(t) for t in TARGETS]
    broken[1] = {**broken[1], "sql": broken[1]["sql"].replace("p.PROVIDER_NAME AS PROVIDER_NAME",
                                                              "p.NO_SUCH_COLUMN AS PROVIDER_NAME")}
    pipeline = Pipeline(tmp_path, bronze_b)
    outcome, context = pipeline.run("dbt_build", targets=broken)
    assert isinstance(outcome, Failed)
    assert not outcome.retryable
    assert "PROVIDER_SUMMARY" in outcome.error and "NO_SUCH_COLUMN" in outcome.error
    assert "CLAIM_SUMMARY" not in outcome.error.split(":")[0]
    nodes = {n["name"]: n["status"] for n in outcome.outputs["dbt"]["nodes"]}
    assert nodes["PROVIDER_SUMMARY"] == "error" and nodes["CLAIM_SUMMARY"] == "success"
    assert Artifact.objects.filter(run=context.run, name="dbt.log").exists()


def test_second_build_of_the_same_revision_reuses_the_parsed_manifest(tmp_path, dbt_dir, bronze_b):
    runner.clear_cache()
    pipeline = Pipeline(tmp_path, bronze_b)
    first, _ = pipeline.run("dbt_build")
    second, _ = pipeline.run("dbt_build", key="dbt_build_again")
    assert isinstance(first, Succeeded) and isinstance(second, Succeeded)
    assert first.outputs["dbt"]["reused_manifest"] is False and first.outputs["dbt"]["parse_s"] > 0
    assert second.outputs["dbt"]["reused_manifest"] is True and second.outputs["dbt"]["parse_s"] == 0
    assert first.outputs["revision"] == second.outputs["revision"]


def test_build_without_an_approved_spec_fails_and_says_so(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    outcome, _ = pipeline.run("dbt_build", targets=[])
    assert isinstance(outcome, Failed)
    assert "approved mapping spec" in outcome.error


def _pg(name: str, location: str):
    from agents.models import Connection  # noqa: PLC0415

    return Connection(name=name, engine="postgresql", location=location)


@pytest.mark.parametrize(("source", "target", "schema"), [
    # Another schema of the same database, the server spelled either way: dbt reads the source's schema.
    ("postgres://u@127.0.0.1:5432/shop?options=-c%20search_path%3Draw",
     "postgres://u@localhost/shop?options=-c%20search_path%3Dmarts", "raw"),
    ("postgres://u@db.example:6000/shop", "postgres://other:secret@db.example:6000/shop", "public"),
])
def test_dbt_on_postgresql_reads_a_source_in_the_targets_database(source, target, schema):
    from pipeline.dbt.project import bronze_problem, source_schema_for  # noqa: PLC0415

    assert source_schema_for(target=_pg("T", target), source=_pg("S", source)) == schema
    assert bronze_problem(target=_pg("T", target), source=_pg("S", source)) is None


@pytest.mark.parametrize(("source", "target", "named"), [
    ("postgres://u@127.0.0.1:5432/shop", "postgres://u@127.0.0.1:5432/marts", "database shop on 127.0.0.1:5432"),
    ("postgres://u@db-a:5432/shop", "postgres://u@db-b:5432/shop", "database shop on db-a:5432"),
    ("postgres://u@127.0.0.1:5432/shop", "postgres://u@127.0.0.1:5433/shop", "database shop on 127.0.0.1:5433"),
])
def test_dbt_on_postgresql_refuses_a_source_in_another_database_naming_both(source, target, named):
    """A PostgreSQL session reads one database: dbt would look for the bronze tables in the target's and fail there,
    or read tables of the same names there. Refused before anything is generated, naming both places."""
    from genesis.exceptions import DomainError  # noqa: PLC0415
    from pipeline.dbt.project import bronze_problem, source_schema_for  # noqa: PLC0415

    with pytest.raises(DomainError) as caught:
        source_schema_for(target=_pg("MARTS", target), source=_pg("SHOP", source))
    assert caught.value.field == "target_connection"
    assert named in caught.value.message and "MARTS" in caught.value.message and "SHOP" in caught.value.message
    assert "secret" not in caught.value.message
    assert bronze_problem(target=_pg("MARTS", target), source=_pg("SHOP", source)) == caught.value.message


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_a_sqlite_target_reads_only_a_sqlite_source(engine, tmp_path):
    """dbt-sqlite attaches the source file to the target's session: a DuckDB file or a PostgreSQL database is refused
    before anything is generated, naming both engines."""
    from agents.models import Connection  # noqa: PLC0415
    from genesis.exceptions import DomainError  # noqa: PLC0415
    from pipeline.dbt.project import source_schema_for  # noqa: PLC0415

    location = str(tmp_path / "lake.duckdb") if engine == "duckdb" else "postgres://u@127.0.0.1:5432/shop"
    source = Connection(name="LAKE", engine=engine, location=location)
    target = Connection(name="MARTS", engine="sqlite", location=str(tmp_path / "marts.sqlite3"))
    with pytest.raises(DomainError, match=f"LAKE is {engine} .*load it into sqlite first"):
        source_schema_for(target=target, source=source)
    assert source_schema_for(target=target, source=Connection(name="S", engine="sqlite",
                                                              location=str(tmp_path / "s.sqlite3"))) == "bronze"
