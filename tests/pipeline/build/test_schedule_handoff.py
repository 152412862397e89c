"""The refresh schedule and its job (recorded, alerting on failure), environments (permission-checked builds into
another target) and the handoff bundle."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile

import pytest
from django_q.models import Schedule

from agents.base import Failed, Succeeded
from genesis.exceptions import DomainError
from history.models import HistoryEntry
from missions.choices import Role
from missions.models import Membership
from pipeline.dbt import runner
from pipeline.dbt import services as dbt_services
from pipeline.jobs import refresh_mission
from tasks.models import Artifact, Notification
from tests.conftest import leads_connection
from tests.pipeline.build.conftest import Pipeline, bronze_with_orphans

pytestmark = pytest.mark.django_db


def test_schedule_creates_a_cron_refresh_that_is_proven_by_a_first_refresh(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    pipeline.task("dbt_build")  # the refresh reuses the build task's config
    outcome, context = pipeline.run("schedule", cron="30 4 * * *", verify="full")
    assert isinstance(outcome, Succeeded), outcome
    schedule = Schedule.objects.get(name=f"genesis-refresh-mission-{pipeline.mission.pk}")
    assert schedule.func == "pipeline.jobs.refresh_mission" and schedule.cron == "30 4 * * *"
    assert schedule.schedule_type == Schedule.CRON and schedule.next_run is not None
    assert eval(schedule.args) == (pipeline.mission.pk,)  # noqa: S307 - django-q2 stores args as repr
    assert outcome.outputs["first_refresh"]["ok"] is True
    assert outcome.outputs["first_refresh"]["rows"]["CLAIM_SUMMARY"] == 450
    events = list(HistoryEntry.objects.filter(mission=pipeline.mission).values_list("event", flat=True))
    assert "schedule.created" in events and "refresh.succeeded" in events
    assert Artifact.objects.filter(run=context.run, name="schedule.json").exists()

    # The job the schedule runs: a new recorded refresh.
    result = refresh_mission(pipeline.mission.pk)
    assert result["ok"] is True and result["rows"]["PATIENT_SUMMARY"] > 0
    assert HistoryEntry.objects.filter(mission=pipeline.mission, event="refresh.succeeded").count() == 2

    # Without a cron in config or spec file, the schedule is daily; re-running updates the same schedule.
    outcome, _ = pipeline.run("schedule", key="schedule_again", verify=False)
    assert outcome.outputs["cron"] == "0 2 * * *" and outcome.outputs["cron_from"] == "default (daily)"
    assert Schedule.objects.filter(name__startswith="genesis-refresh-mission-").count() == 1


def test_schedule_checks_its_refresh_without_rebuilding_by_default(tmp_path, dbt_dir, bronze_b):
    """By default the schedule step checks what the job needs (the function, the project compiling, the targets)
    and rebuilds nothing; before any build the check fails, naming the missing target."""
    pipeline = Pipeline(tmp_path, bronze_b)
    pipeline.task("dbt_build", key="build_config")  # the refresh reuses the build task's config
    outcome, _ = pipeline.run("schedule", key="schedule_before_build")
    assert isinstance(outcome, Failed) and "its check failed" in outcome.error
    assert "CLAIM_SUMMARY" in outcome.error
    assert HistoryEntry.objects.filter(mission=pipeline.mission, event="refresh.check_failed").count() == 1

    assert isinstance(pipeline.run("dbt_build")[0], Succeeded)
    built_at = pipeline.target_path.stat().st_mtime_ns
    outcome, context = pipeline.run("schedule")
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["check"]["ok"] is True and outcome.outputs["check"]["rows"]["CLAIM_SUMMARY"] == 450
    assert "first_refresh" not in outcome.outputs
    assert pipeline.target_path.stat().st_mtime_ns == built_at  # nothing was rebuilt
    events = list(HistoryEntry.objects.filter(mission=pipeline.mission).values_list("event", flat=True))
    assert "refresh.checked" in events and "refresh.succeeded" not in events
    # This process has just run every model at this revision against this target: not compiled again. Another
    # worker (no such run in its process) compiles them.
    assert outcome.outputs["check"]["built_here"] is True
    checked = HistoryEntry.objects.filter(mission=pipeline.mission, event="refresh.checked").latest("id")
    assert "was built by this worker at revision" in checked.message
    runner.clear_cache()
    outcome, _ = pipeline.run("schedule", key="schedule_elsewhere")
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["check"]["built_here"] is False and outcome.outputs["check"]["ok"] is True
    checked = HistoryEntry.objects.filter(mission=pipeline.mission, event="refresh.checked").latest("id")
    assert "compiles at revision" in checked.message

    outcome, _ = pipeline.run("schedule", key="schedule_typo", verify="chek")
    assert isinstance(outcome, Failed) and "config verify: 'chek'" in outcome.error


def test_a_failing_refresh_is_recorded_and_alerts_the_escalation_channels(tmp_path, dbt_dir):
    pipeline = Pipeline(tmp_path, bronze_with_orphans(tmp_path, missing_provider_ids=(9100,)))
    pipeline.mission.escalation_emails = ["oncall@example.com"]
    pipeline.mission.save(update_fields=["escalation_emails"])
    pipeline.task("dbt_build")
    result = refresh_mission(pipeline.mission.pk)
    assert result["ok"] is False and "9100" in result["error"]
    entry = HistoryEntry.objects.get(mission=pipeline.mission, event="refresh.failed")
    assert "9100" in entry.message
    note = Notification.objects.get(mission=pipeline.mission, event="refresh.failed")
    assert note.target == "oncall@example.com" and "9100" in note.body


def test_environments_build_the_project_into_their_own_target_with_permission_checks(
        tmp_path, dbt_dir, bronze_b, lead, analyst, viewer, django_capture_on_commit_callbacks):
    pipeline = Pipeline(tmp_path, bronze_b)
    for user, role in ((lead, Role.MISSION_OWNER), (analyst, Role.TASK_OWNER), (viewer, Role.STAKEHOLDER)):
        Membership.objects.update_or_create(mission=pipeline.mission, user=user, defaults={"role": role})
    pipeline.task("dbt_build")
    stage_db = tmp_path / "stage.sqlite3"
    stage = leads_connection(name="HCLS_STAGE", engine="sqlite", location=str(stage_db), purpose="target")
    with pytest.raises(DomainError, match="may not change environments"):
        dbt_services.environment_set(mission=pipeline.mission, name="stage", target=stage, actor=analyst)
    env = dbt_services.environment_set(mission=pipeline.mission, name="stage", target=stage, actor=lead)
    prod = dbt_services.environment_set(mission=pipeline.mission, name="prod", target=stage, actor=lead)
    with pytest.raises(DomainError, match="may not build in prod"):
        dbt_services.environment_build_request(environment=prod, actor=analyst)
    with pytest.raises(DomainError, match="may not build in stage"):
        dbt_services.environment_build_request(environment=env, actor=viewer)
    with django_capture_on_commit_callbacks(execute=True):
        dbt_services.environment_build_request(environment=env, actor=analyst)
    env.refresh_from_db()
    assert env.last_revision and env.last_built_at
    db = sqlite3.connect(stage_db)
    assert db.execute('SELECT COUNT(*) FROM "CLAIM_SUMMARY"').fetchone()[0] == 450
    db.close()
    events = list(HistoryEntry.objects.filter(mission=pipeline.mission).values_list("event", "actor_user"))
    assert ("environment.build_requested", analyst.pk) in events
    assert ("refresh.succeeded", analyst.pk) in events


def test_an_environment_build_before_any_approved_project_fails_with_a_recorded_message(
        tmp_path, dbt_dir, bronze_b, lead):
    """No approved mapping spec (so no dbt project revision) yet: the job records a clear failure, never crashes,
    and the environment keeps saying it was never built."""
    from pipeline.jobs import environment_build as environment_build_job

    pipeline = Pipeline(tmp_path, bronze_b)
    Membership.objects.update_or_create(mission=pipeline.mission, user=lead, defaults={"role": Role.MISSION_OWNER})
    pipeline.mission.escalation_emails = ["oncall@example.com"]
    pipeline.mission.save(update_fields=["escalation_emails"])
    stage = leads_connection(name="HCLS_STAGE", engine="sqlite", location=str(tmp_path / "stage.sqlite3"),
                                  purpose="target")
    env = dbt_services.environment_set(mission=pipeline.mission, name="stage", target=stage, actor=lead)

    result = environment_build_job(env.pk, lead.pk)

    expected = "No approved mapping spec for this mission: approve the mapping specs before building."
    assert result["ok"] is False and result["error"] == expected and result["revision"] == ""
    failed = HistoryEntry.objects.get(mission=pipeline.mission, event="refresh.failed")
    assert (failed.actor_user, failed.message) == (lead, f"Stage build failed: {expected}")
    assert failed.data["label"] == "stage build"
    env.refresh_from_db()
    assert env.last_built_at is None and env.last_revision == ""
    assert not (tmp_path / "stage.sqlite3").exists()  # nothing was built into the target
    note = Notification.objects.get(mission=pipeline.mission, event="refresh.failed")
    assert note.target == "oncall@example.com" and expected in note.body
    pk = env.pk
    env.delete()  # deleted between the request and the job: said, not raised
    assert environment_build_job(pk, lead.pk) == {"ok": False, "error": f"Environment {pk} no longer exists."}


def test_handoff_bundles_specs_project_queries_logs_backfill_and_notes(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    for kind, extra in (("dbt_build", {}), ("data_quality", {}), ("backfill", {"months": ["2023-03"]})):
        outcome, _ = pipeline.run(kind, **extra)
        assert isinstance(outcome, Succeeded), (kind, outcome)
    outcome, context = pipeline.run("handoff")
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["missing"] == ["validation_report.md"]
    assert outcome.outputs["rows"]["CLAIM_SUMMARY"] == 450
    archive = zipfile.ZipFile(io.BytesIO(Artifact.objects.get(run=context.run, name="handoff.zip").file.read()))
    names = set(archive.namelist())
    assert {"handoff/mapping_specs.json", "handoff/dbt_project.zip", "handoff/dq_queries.sql", "handoff/run_logs.txt",
            "handoff/backfill_report.md", "handoff/handoff_notes.md"} <= names
    project = zipfile.ZipFile(io.BytesIO(archive.read("handoff/dbt_project.zip")))
    assert any(n.endswith("models/CLAIM_SUMMARY.sql") for n in project.namelist())
    assert not any("profiles" in n for n in project.namelist())  # no connection details or secrets
    notes = archive.read("handoff/handoff_notes.md").decode()
    assert "CLAIM_SUMMARY" in notes and "450 rows" in notes and "How to re-run" in notes
    specs = json.loads(archive.read("handoff/mapping_specs.json"))
    assert {s["target"] for s in specs} == {"CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"}
    assert Artifact.objects.filter(run=context.run, name="handoff-handoff_notes.md").exists()


def test_handoff_without_a_build_fails_cleanly(tmp_path, dbt_dir, bronze_b):
    pipeline = Pipeline(tmp_path, bronze_b)
    outcome, _ = pipeline.run("handoff")
    assert isinstance(outcome, Failed)
