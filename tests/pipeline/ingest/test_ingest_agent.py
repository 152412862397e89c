"""The ``ingest`` agent: a task config names the files, the connection and options; the agent loads them for its
mission only if the connection is granted to the mission and the files lie under GENESIS_INGEST_ROOT."""

from __future__ import annotations

import json

import pytest

from agents import registry
from agents.base import AgentContext, Failed, Succeeded
from blueprints.services import blueprint_import, blueprint_launch
from tasks.choices import TaskStatus
from tasks.models import Artifact, Run
from tests.pipeline.ingest.conftest import MEMBERS, claims_csv, numbered_csv, write_json_array
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(tmp_path, settings):
    """GENESIS_INGEST_ROOT: where a mission's ingest may read."""
    settings.GENESIS_INGEST_ROOT = tmp_path / "inbox"
    (tmp_path / "inbox").mkdir()
    return tmp_path / "inbox"


def test_the_agent_loads_the_files_of_its_task_config_and_reports_each_table(target, inbox, mission, run_agent):
    claims_csv(inbox / "exports" / "claims.csv")
    write_json_array(inbox / "exports" / "members.json", MEMBERS)

    done = run_agent("ingest", mission=mission, config={
        "connection": "MY_FILES", "paths": ["exports"], "options": {"sample_size": -1}})

    assert isinstance(done.outcome, Succeeded), done.outcome
    outputs = done.outcome.outputs
    assert [(t["file"], t["table"], t["rows"]) for t in outputs["tables"]] == [
        ("exports/claims.csv", "claims", 4), ("exports/members.json", "members", 3)]
    assert outputs["tables"][0]["columns"][:2] == [
        {"name": "claim_id", "type": "BIGINT",
         "declared": {"sqlite": "INTEGER", "duckdb": "BIGINT"}.get(target.engine, "bigint")},
        {"name": "member", "type": "VARCHAR",
         "declared": {"sqlite": "TEXT", "duckdb": "VARCHAR"}.get(target.engine, "text")}]
    assert all(t["elapsed_ms"] >= 0 for t in outputs["tables"])
    assert (outputs["connection"], outputs["rows"], outputs["options"]) == ("MY_FILES", 7, {"sample_size": -1})
    assert done.outcome.summary == "Loaded 2 file(s) into MY_FILES: claims (4 rows), members (3 rows)."
    artifact = Artifact.objects.get(pk=outputs["report_artifact"])
    assert (artifact.name, artifact.kind, artifact.run_id) == ("ingest_report.json", "data", done.run.pk)
    assert json.loads(artifact.file.read())["tables"] == outputs["tables"]
    assert target.tables() == ["claims", "members"]


def test_the_agent_is_refused_a_connection_not_granted_to_its_mission(target, inbox, mission):
    claims_csv(inbox / "claims.csv")
    context = AgentContext(mission=mission, task=None, run=None, agent=None, connections={},
                           config={"connection": "MY_FILES", "paths": "claims.csv"})

    outcome = registry.get("ingest")().run(context)

    assert isinstance(outcome, Failed) and outcome.retryable is False
    assert outcome.error == ("Mission “Healthcare Data Pipeline” may not use connection MY_FILES: it is not on the "
                             "connection's access list. Staff (or a member of one of the connection's groups) can "
                             "grant it.")
    assert target.tables() == []


def test_the_agent_reads_no_file_outside_the_ingest_folder(target, inbox, tmp_path, mission, run_agent):
    outside = claims_csv(tmp_path / "elsewhere" / "claims.csv")
    (inbox / "sneaky.csv").symlink_to(outside)

    for path in (str(outside), "../elsewhere/claims.csv", "sneaky.csv"):
        done = run_agent("ingest", mission=mission, config={"connection": "MY_FILES", "paths": [path]},
                         key=f"ingest-{len(path)}")
        assert isinstance(done.outcome, Failed) and done.outcome.retryable is False
        assert f"is outside the ingest folder ({inbox}, GENESIS_INGEST_ROOT)" in done.outcome.error
    assert target.tables() == []


def test_a_malformed_file_fails_the_run_for_good_naming_file_and_line(target, inbox, mission, run_agent):
    numbered_csv(inbox / "claims.csv", 500, bad_line=400, bad="399,row 399,2.5,oops")

    done = run_agent("ingest", mission=mission, config={"connection": "MY_FILES", "paths": "claims.csv"})

    assert isinstance(done.outcome, Failed) and done.outcome.retryable is False
    assert done.outcome.error.startswith("claims.csv, line 400: Expected Number of Columns: 3 Found: 4")
    assert target.tables() == []


@pytest.mark.parametrize("config, says", [
    ({"paths": "claims.csv"}, "No connection to load into"),
    ({"connection": "NOPE", "paths": "claims.csv"}, "No connection is named 'NOPE'"),
    ({"connection": "MY_FILES", "paths": 3}, "paths is a file or folder name, or a list of them"),
    ({"connection": "MY_FILES", "paths": "claims.csv", "options": ["x"]}, "options is a mapping"),
])
def test_a_task_config_the_agent_cannot_use_fails_saying_why(target, inbox, mission, config, says):
    context = AgentContext(mission=mission, task=None, run=None, agent=None, connections={}, config=config)

    outcome = registry.get("ingest")().run(context)

    assert isinstance(outcome, Failed) and says in outcome.error and outcome.retryable is False


BLUEPRINT = """
slug: own-files
name: Your own files
description: Load a folder of exports into a source, then look at them.
parameters:
- name: files_connection
  type: connection
  purpose: source
- name: folder
  type: string
phases:
- name: Land
  actions:
  - key: land
    title: Load {{ folder }}
    owner: ingest
    config:
      connection: '{{ files_connection }}'
      paths: ['{{ folder }}']
      options: {header: true}
"""


@pytest.mark.django_db(transaction=True)
def test_an_ingest_step_of_a_blueprint_runs_through_the_engine_and_loads_the_files(inbox, lead, tmp_path):
    from tests.pipeline.ingest.conftest import sqlite_target

    target = sqlite_target(tmp_path / "target" / "own.sqlite3")
    claims_csv(inbox / "march" / "claims.csv")
    version = blueprint_import(text=BLUEPRINT, filename="own-files.yaml")
    mission = blueprint_launch(version=version, name="Own files", objective="My exports land.", owner=lead,
                               params={"files_connection": "MY_FILES", "folder": "march"})
    assert list(target.connection.missions.all()) == [mission]  # launching granted the connection

    mission_workflows.mission_launch(mission=mission, actor=lead)  # sync mode: the run happens here

    task = mission.tasks.get(key="land")
    assert task.status == TaskStatus.DONE
    run = Run.objects.get(task=task)
    assert [(t["table"], t["rows"]) for t in run.result["tables"]] == [("claims", 4)]
    assert target.rows("claims")[0] == (1, "Ada Lovelace", 120.5, "2024-01-05", 1)
