from agents.base import Failed, Succeeded
from agents.models import Connection
from tasks.models import Artifact
from tests.pipeline.conftest import SPEC_PATH


def test_initialize_checks_tooling_and_creates_the_workspace(mission, run_agent, source_for, demo_small, tmp_path,
                                                             monkeypatch):
    from pipeline.implementations import initialize  # noqa: PLC0415

    source = source_for(demo_small)
    target = Connection.objects.create(name="TARGET_X", engine="sqlite", location=str(demo_small), purpose="target")
    workspace = tmp_path / "ws" / "mission"
    opened = []
    real_adapter_for = initialize.adapter_for
    monkeypatch.setattr(initialize, "adapter_for", lambda connection, **kwargs: opened.append(connection.name)
                        or real_adapter_for(connection, **kwargs))
    result = run_agent("initialize", mission=mission, workspace=workspace,
                       config={"spec_path": SPEC_PATH, "source_connection": source.name,
                               "connections": [source.name, target.name, ""]}, connections={"target": target})
    assert isinstance(result.outcome, Succeeded), result.outcome
    outputs = result.outcome.outputs
    assert workspace.is_dir()
    passed = {c["check"] for c in outputs["checks"] if c["passed"]}
    assert {"spec file", f"connection {source.name}", "connection TARGET_X", "allowed tables",
            "dbt-core importable", "dbt-sqlite importable", "dbt-postgres importable", "dbt-duckdb importable",
            "workspace", f"dbt builds TARGET_X from {source.name}", "connection target"} <= passed
    # TARGET_X is named twice (by its name and as the mission's target): opened once.
    assert sorted(opened) == sorted({source.name, "TARGET_X"})
    assert outputs["versions"]["dbt-core"] and outputs["versions"]["sqlglot"] == "30.30.0"
    assert Artifact.objects.filter(task=result.task, name="initialize_report.json", kind="report").exists()


def test_initialize_fails_naming_what_is_missing(mission, run_agent, source_for, demo_small, tmp_path):
    source = source_for(demo_small)
    result = run_agent("initialize", mission=mission, workspace=tmp_path / "w",
                       config={"source_connection": source.name, "allowed_tables": ["CLAIMS", "MEMBERS"],
                               "connections": ["NOT_REGISTERED"]})
    assert isinstance(result.outcome, Failed) and not result.outcome.retryable
    assert "allowed tables: missing on" in result.outcome.error and "MEMBERS" in result.outcome.error
    assert "connection NOT_REGISTERED: not registered" in result.outcome.error
    # The report is attached even when a check fails.
    assert Artifact.objects.filter(task=result.task, name="initialize_report.json").exists()


def test_a_new_target_database_is_created_empty_and_nothing_else_is(mission, run_agent, source_for, demo_small,
                                                                       tmp_path):
    source = source_for(demo_small)
    marts = tmp_path / "marts.sqlite3"
    lake = tmp_path / "lake.duckdb"
    Connection.objects.create(name="MARTS", engine="sqlite", location=str(marts), purpose="target")
    Connection.objects.create(name="MARTS_CHECK", engine="sqlite", location=str(marts), purpose="validation")
    Connection.objects.create(name="LAKE", engine="duckdb", location=str(lake), purpose="target")
    Connection.objects.create(name="NOWHERE", engine="sqlite", location=str(tmp_path / "no" / "x.db"),
                              purpose="target")
    Connection.objects.create(name="OLD_SOURCE", engine="sqlite", location=str(tmp_path / "gone.db"),
                              purpose="source")
    result = run_agent("initialize", mission=mission, workspace=tmp_path / "w",
                       config={"source_connection": source.name, "allowed_tables": ["CLAIMS"],
                               "connections": ["MARTS", "MARTS_CHECK", "LAKE", "NOWHERE", "OLD_SOURCE"]})
    checks = {c["check"]: c for c in result.outcome.outputs["checks"]}
    assert marts.is_file() and lake.is_file()
    assert checks["target database MARTS"]["detail"] == f"created an empty sqlite database at {marts}"
    assert checks["target database LAKE"]["detail"] == f"created an empty duckdb database at {lake}"
    assert checks["connection MARTS"]["passed"] and checks["connection MARTS_CHECK"]["passed"]
    assert checks["connection LAKE"]["passed"]
    # A source is never made up, nor a folder: those stay failures naming the file.
    assert not (tmp_path / "gone.db").exists() and not (tmp_path / "no").exists()
    old_source = checks["connection OLD_SOURCE"]
    assert "the SQLite file" in old_source["detail"] and not old_source["passed"]
    assert not checks["connection NOWHERE"]["passed"]
    assert isinstance(result.outcome, Failed)


def test_initialize_fails_when_dbt_cannot_read_the_source_from_the_target(mission, run_agent, source_for, demo_small,
                                                                         tmp_path):
    """A pairing the build cannot use fails the first step, before profiling and mapping, naming both."""
    source = source_for(demo_small)
    lake = Connection.objects.create(name="LAKE", engine="duckdb", location=str(tmp_path / "lake.duckdb"),
                                     purpose="target")
    result = run_agent("initialize", mission=mission, workspace=tmp_path / "w",
                       config={"source_connection": source.name, "connections": [source.name, "LAKE"]},
                       connections={"target": lake})
    assert isinstance(result.outcome, Failed) and not result.outcome.retryable
    assert f"dbt builds LAKE from {source.name}: dbt on duckdb reads the bronze tables from a duckdb source" \
        in result.outcome.error
    checks = {c["check"]: c["passed"] for c in result.outcome.outputs["checks"]}
    assert checks["connection LAKE"] and checks[f"connection {source.name}"]
