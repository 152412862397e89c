"""Launching a mission from a blueprint: the whole task graph in one step, parameters substituted."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.models import Agent, Connection
from blueprints.models import MissionOrigin
from blueprints.selectors import launch_initial_params
from blueprints.services import blueprint_launch
from genesis.exceptions import DomainError
from history.models import HistoryEntry
from missions.models import Mission
from tasks.models import Dependency, Phase, Task
from tests.blueprints.conftest import HEALTHCARE_TABLES, healthcare_spec_text, load_shipped
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# The healthcare pipeline: build-marts with the healthcare spec file (one mapping task per target).
TWELVE = [
    ("initialize", "Initialize tooling and agents", []),
    ("inventory_sources", "Inventory source fields", ["initialize"]),
    ("map_claim_summary", "Define CLAIM_SUMMARY mapping spec", ["inventory_sources"]),
    ("map_provider_summary", "Define PROVIDER_SUMMARY mapping spec", ["inventory_sources"]),
    ("map_patient_summary", "Define PATIENT_SUMMARY mapping spec", ["inventory_sources"]),
    ("review_mapping_specs", "Review and approve mapping specs",
     ["map_claim_summary", "map_patient_summary", "map_provider_summary"]),
    ("implement_dbt_models", "Implement dbt models", ["review_mapping_specs"]),
    ("add_data_quality_checks", "Add data quality and reconciliation checks", ["implement_dbt_models"]),
    ("validate_models", "Validate models via validation connection", ["add_data_quality_checks"]),
    ("backfill_history", "Historical backfill and verification", ["validate_models"]),
    ("schedule_refresh", "Schedule refresh and alerts", ["backfill_history"]),
    ("handoff", "Attach artifacts and handoff notes", ["schedule_refresh"]),
]


def test_healthcare_launch_yields_exactly_the_twelve_steps_and_their_edges(healthcare, healthcare_spec, connections,
                                                                           lead):
    mission = blueprint_launch(version=healthcare, name="Healthcare", objective="", owner=lead, spec=healthcare_spec)
    tasks = list(Task.objects.filter(mission=mission).order_by("position"))
    edges = {}
    for task_id, dep_key in Dependency.objects.filter(task__mission=mission).values_list("task_id",
                                                                                          "depends_on__key"):
        edges.setdefault(task_id, []).append(dep_key)
    assert [(t.key, t.title, sorted(edges.get(t.pk, []))) for t in tasks] == TWELVE
    assert Dependency.objects.filter(task__mission=mission).count() == 13
    assert [t.position for t in tasks] == list(range(1, 13))
    assert mission.status == "draft" and all(t.status == "pending" for t in tasks)


def test_owners_are_agents_of_their_kind_or_the_person_holding_the_role(healthcare, healthcare_spec, connections,
                                                                        lead):
    mission = blueprint_launch(version=healthcare, name="Healthcare", objective="", owner=lead, spec=healthcare_spec)
    owners = {t.key: (t.owner_user.username if t.owner_user else t.owner_agent.name) for t in
              mission.tasks.select_related("owner_user", "owner_agent")}
    assert owners == {
        "initialize": "InitializeAgent", "inventory_sources": "ProfilingAgent",
        "map_claim_summary": "FieldMappingAgent", "map_provider_summary": "FieldMappingAgent",
        "map_patient_summary": "FieldMappingAgent", "review_mapping_specs": "lead",
        "implement_dbt_models": "DbtBuildAgent", "add_data_quality_checks": "DataQualityAgent",
        "validate_models": "ValidationAgent", "backfill_history": "BackfillAgent",
        "schedule_refresh": "ScheduleAgent", "handoff": "HandoffAgent",
    }
    assert Agent.objects.get(name="FieldMappingAgent").kind == "field_mapping"
    # A second launch reuses the agents instead of creating more.
    blueprint_launch(version=healthcare, name="Healthcare 2", objective="", owner=lead, spec=healthcare_spec)
    assert Agent.objects.filter(kind="field_mapping").count() == 1


def test_phases_exit_criteria_and_acceptance_criteria_are_copied_with_values(healthcare, healthcare_spec, connections,
                                                                             lead):
    mission = blueprint_launch(version=healthcare, name="Healthcare", objective="", owner=lead, spec=healthcare_spec)
    phases = list(Phase.objects.filter(mission=mission).order_by("order"))
    assert [(p.order, p.name, p.tasks.count()) for p in phases] == [
        (1, "Setup and discovery", 2), (2, "Mapping", 4), (3, "Build", 2), (4, "Validation and backfill", 2),
        (5, "Operate and hand off", 2),
    ]
    assert phases[0].exit_criteria[1] == {
        "type": "table_exists", "params": {"connection": "BRONZE", "tables": HEALTHCARE_TABLES},
        "description": "The source tables exist",
    }
    build = mission.tasks.get(key="implement_dbt_models")
    # An acceptance check naming no task is about its own task.
    assert build.acceptance_criteria == [{"type": "dbt_succeeded", "params": {"task": "implement_dbt_models"},
                                          "description": "dbt build succeeded"}]
    assert mission.tasks.get(key="initialize").acceptance_criteria[0] == "The dbt project compiles."
    # The backfill is verified by its agent, target by target, against the source: no check names a table's key.
    assert mission.success_criteria[3]["params"] == {
        "task": "backfill_history", "kind": "report", "name": "backfill_report.json"}
    assert (mission.source_connection.name, mission.target_connection.name) == ("BRONZE", "WAREHOUSE")
    assert build.timeout_seconds == 1800 and build.max_attempts == 3


def test_parameters_are_substituted_into_titles_descriptions_configs_and_objective(connections, lead):
    version = load_shipped("source-onboarding")
    mission = blueprint_launch(
        version=version, name="Billing", objective="", owner=lead,
        params={"source_name": "billing", "source_tables": "invoices, payments", "min_rows": "10"},
    )
    ingest = mission.tasks.get(key="ingest")
    assert ingest.title == "Ingest billing raw tables"
    assert ingest.description == "Copy invoices, payments from BRONZE into WAREHOUSE unchanged."
    assert ingest.config == {"source_connection": "BRONZE", "connection": "WAREHOUSE",
                             "tables": ["invoices", "payments"]}
    assert mission.tasks.get(key="stage").config["select"] == "staging.billing"
    assert mission.objective == ("The billing tables invoices, payments land in WAREHOUSE, are staged, modelled "
                                 "and validated, and refresh on schedule.")
    origin = MissionOrigin.objects.get(mission=mission)
    assert origin.params == {"source_name": "billing", "source_connection": "BRONZE",
                             "target_connection": "WAREHOUSE", "source_tables": ["invoices", "payments"],
                             "min_rows": 10, "refresh_cron": "0 5 * * *"}
    entry = HistoryEntry.objects.get(mission=mission, event="mission.from_blueprint")
    assert entry.data["version"] == 1 and entry.data["params"]["min_rows"] == 10


def test_connections_are_prefilled_from_context_only_when_there_is_one_fitting(healthcare, bronze, lead):
    assert launch_initial_params(version=healthcare) == {
        "source_connection": "BRONZE", "dbt_project": "marts", "full_refresh": False, "refresh_cron": "0 6 * * *",
    }
    Connection.objects.create(name="BRONZE_2", engine="sqlite", location="/tmp/x.sqlite3", purpose="source")
    assert "source_connection" not in launch_initial_params(version=healthcare)


def test_a_refused_launch_creates_no_mission(healthcare, healthcare_spec, bronze, lead):
    before = (Mission.objects.count(), Task.objects.count(), HistoryEntry.objects.count(), Agent.objects.count())
    with pytest.raises(DomainError) as caught:
        blueprint_launch(version=healthcare, name="HC", objective="", owner=lead, spec=healthcare_spec)
    assert caught.value.field == "params.target_connection"
    assert "Parameter target_connection is required" in caught.value.message
    with pytest.raises(DomainError, match="no connection is named 'NOPE'"):
        blueprint_launch(version=healthcare, name="HC", objective="", owner=lead, spec=healthcare_spec,
                         params={"target_connection": "NOPE", "validation_connection": "BRONZE"})
    with pytest.raises(DomainError, match="has no parameter\\(s\\) colour") as caught:
        blueprint_launch(version=healthcare, name="HC", objective="", owner=lead, spec=healthcare_spec,
                         params={"colour": "red"})
    assert caught.value.field == "params.colour"
    with pytest.raises(DomainError, match="requires a spec file") as caught:
        blueprint_launch(version=healthcare, name="HC", objective="", owner=lead,
                         params={"target_connection": "BRONZE", "validation_connection": "BRONZE"})
    assert caught.value.field == "spec_file"
    after = (Mission.objects.count(), Task.objects.count(), HistoryEntry.objects.count(), Agent.objects.count())
    assert after == before


def test_a_failure_midway_rolls_the_whole_launch_back(healthcare, healthcare_spec, connections, lead, monkeypatch):
    from blueprints import services

    real = services.dependency_add

    def failing(*, task, depends_on, actor=None):
        if task.key == "handoff":
            raise DomainError("boom", field="depends_on")
        return real(task=task, depends_on=depends_on, actor=actor)

    monkeypatch.setattr(services, "dependency_add", failing)
    with pytest.raises(DomainError, match="boom"):
        blueprint_launch(version=healthcare, name="HC", objective="", owner=lead, spec=healthcare_spec)
    assert not Mission.objects.exists() and not Task.objects.exists() and not MissionOrigin.objects.exists()


def test_typed_parameter_values_are_checked(connections, lead):
    version = load_shipped("source-onboarding")
    with pytest.raises(DomainError, match="must be a whole number, not 'many'") as caught:
        blueprint_launch(version=version, name="B", objective="", owner=lead,
                         params={"source_name": "b", "source_tables": "x", "min_rows": "many"})
    assert caught.value.field == "params.min_rows"


def test_task_owner_actions_go_to_the_task_owner(connections, lead):
    version = load_shipped("field-mapping")
    analyst = UserFactory(username="ari")
    mission = blueprint_launch(version=version, name="Map", objective="", owner=lead, task_owner=analyst,
                               params={"source_tables": ["claims"], "target_spec": "CLAIM_SUMMARY"})
    review = mission.tasks.get(key="review_mapping")
    assert review.owner_user == analyst and review.title == "Review the CLAIM_SUMMARY mapping"
    assert mission.memberships.get(user=analyst).role == "task_owner"
    alone = blueprint_launch(version=version, name="Map 2", objective="Mine", owner=lead,
                             params={"source_tables": ["claims"], "target_spec": "X"})
    assert alone.tasks.get(key="review_mapping").owner_user == lead and alone.objective == "Mine"


def test_launch_mission_command_prints_the_new_mission_id(healthcare, connections, lead, tmp_path):
    spec_file = tmp_path / "project.yml"
    spec_file.write_text(healthcare_spec_text())
    out = StringIO()
    call_command("launch_mission", "--blueprint", "build-marts", "--name", "From the shell",
                 "--owner", "lead", "--param", "dbt_project=claims_dbt", "--spec-file", str(spec_file),
                 "--mode", "continuous", stdout=out)
    mission = Mission.objects.get(pk=int(out.getvalue().strip()))
    assert (mission.name, mission.mode, mission.owner) == ("From the shell", "continuous", lead)
    assert mission.tasks.count() == 12
    assert mission.tasks.get(key="initialize").config["dbt_project"] == "claims_dbt"
    assert mission.phases.get(order=1).exit_criteria[1]["params"]["tables"] == HEALTHCARE_TABLES
    with pytest.raises(CommandError, match="write it as key=value"):
        call_command("launch_mission", "--blueprint", "build-marts", "--name", "x", "--owner", "lead",
                     "--spec-file", str(spec_file), "--param", "novalue")
    with pytest.raises(CommandError, match="No blueprint 'nope'"):
        call_command("launch_mission", "--blueprint", "nope", "--name", "x", "--owner", "lead")
    with pytest.raises(CommandError, match="Parameter dbt_project must be text|no parameter"):
        call_command("launch_mission", "--blueprint", "build-marts", "--name", "x", "--owner", "lead",
                     "--spec-file", str(spec_file), "--param", "team=x")
    assert Mission.objects.count() == 1


def test_a_parameter_value_that_breaks_a_check_refuses_the_launch(connections, lead):
    version = load_shipped("source-onboarding")
    with pytest.raises(DomainError) as caught:
        blueprint_launch(version=version, name="B", objective="", owner=lead,
                         params={"source_name": "b", "source_tables": "invoices, bad name"})
    assert caught.value.field == "params"
    assert caught.value.message == (
        "phases[0].exit_criteria[0].params.tables[1]: 'bad name' has the wrong form "
        "(expected ^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$) (after putting in the parameter values).")
    assert not Mission.objects.exists()
