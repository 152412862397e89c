"""Exit criteria gate phases: a failing check holds later phases back, the owner is told, and can re-run or
waive; acceptance and success criteria are computed by the same checks."""

import textwrap
from pathlib import Path

import pytest

from blueprints.models import CheckEvaluation
from blueprints.services import blueprint_import, blueprint_launch
from genesis.exceptions import DomainError
from history.models import HistoryEntry
from tasks.acceptance import evaluate_acceptance, evaluate_success
from tasks.models import Phase
from tasks.phase_gate import phases_advance
from tasks.services import artifact_create, run_create, run_transition, task_transition
from tests.blueprints.conftest import make_sqlite
from workflows.checks import check_waive, phase_recheck

pytestmark = pytest.mark.django_db


def finish(task, *, by_person=None):
    """Move a task to done the way the engine would: an agent's run, or a person's approval."""
    task_transition(task=task, to="ready")
    if by_person is not None:
        task_transition(task=task, to="waiting_approval")
        task_transition(task=task, to="done", actor=by_person)
    else:
        task_transition(task=task, to="running")
        task_transition(task=task, to="done")


def phase_states(mission):
    return [p.status for p in Phase.objects.filter(mission=mission).order_by("order")]


@pytest.fixture
def hc_mission(healthcare, healthcare_spec, connections, lead):
    """The healthcare pipeline (build-marts with the healthcare spec) on BRONZE, which also gets the claim lines
    table the spec allows."""
    make_sqlite(Path(connections["source"].location), ["CREATE TABLE claim_details (claim_id TEXT, line INTEGER)"])
    return blueprint_launch(version=healthcare, name="Healthcare", objective="", owner=lead, spec=healthcare_spec)


def test_a_phase_whose_checks_fail_holds_back_later_phases(hc_mission, lead):
    mission = hc_mission
    tasks = {t.key: t for t in mission.tasks.all()}
    phases_advance(mission=mission)
    assert phase_states(mission) == ["open", "pending", "pending", "pending", "pending"]
    finish(tasks["initialize"])
    assert phases_advance(mission=mission).passed == []  # one task of the phase is still pending
    finish(tasks["inventory_sources"])
    advance = phases_advance(mission=mission)
    assert [p.name for p in advance.passed] == ["Setup and discovery"]
    assert [p.name for p in advance.opened] == ["Mapping"]
    passed = CheckEvaluation.objects.filter(phase__order=1).order_by("criterion_index")
    assert [(e.check_type, e.passed) for e in passed] == [("all_tasks_done", True), ("table_exists", True)]
    assert passed[1].evidence["found"] == {"PATIENTS": "patients", "PROVIDERS": "providers", "CLAIMS": "claims",
                                           "CLAIM_DETAILS": "claim_details"}

    # Mapping: every task done and approved, but no spec was ever attached.
    for key in ("map_claim_summary", "map_provider_summary", "map_patient_summary"):
        finish(tasks[key])
    finish(tasks["review_mapping_specs"], by_person=lead)
    advance = phases_advance(mission=mission)
    assert [p.name for p in advance.failed] == ["Mapping"]
    assert phase_states(mission) == ["passed", "failed", "pending", "pending", "pending"]
    evaluations = {e.check_type: e for e in CheckEvaluation.objects.filter(phase__order=2)}
    assert evaluations["approval_recorded"].passed
    assert evaluations["approval_recorded"].evidence["approved_by"] == "lead"
    specs = evaluations["artifact_exists"]
    assert not specs.passed and specs.evidence["count"] == 0
    assert specs.message == "Found 0 artifact(s) matching kind=spec; 3 needed."
    # Later phases stay blocked however often the gate is asked.
    assert phases_advance(mission=mission).opened == []
    assert phase_states(mission)[2:] == ["pending", "pending", "pending"]
    # History holds each evaluation with its evidence, and a summary for the Mission Owner.
    failed_entry = HistoryEntry.objects.get(mission=mission, event="check.failed")
    assert failed_entry.data["evidence"]["count"] == 0 and failed_entry.data["type"] == "artifact_exists"
    summary = HistoryEntry.objects.get(mission=mission, event="phase.checks_failed")
    assert summary.data["owner"] == "lead"
    assert summary.data["failures"] == ["A mapping spec per target is attached: Found 0 artifact(s) matching "
                                        "kind=spec; 3 needed."]

    # Fixed: the specs are attached and the owner re-runs the checks; the next phase opens.
    for key, name in (("map_claim_summary", "CLAIM_SUMMARY.yml"), ("map_provider_summary", "PROVIDER_SUMMARY.yml"),
                      ("map_patient_summary", "PATIENT_SUMMARY.yml")):
        artifact_create(mission=mission, task=tasks[key], kind="spec", name=name, file=b"columns: []")
    advance = phase_recheck(phase=Phase.objects.get(mission=mission, order=2), actor=lead)
    assert [p.name for p in advance.opened] == ["Build"]
    assert phase_states(mission) == ["passed", "passed", "open", "pending", "pending"]
    assert CheckEvaluation.objects.filter(phase__order=2, round=2, passed=True).count() == 2


GATED = textwrap.dedent("""\
    slug: gated
    name: Gated
    phases:
    - name: Load
      actions:
      - {key: load, title: Load, owner: noop}
      exit_criteria:
      - type: all_tasks_done
      - type: sql_assert
        params: {connection: BRONZE, query: SELECT COUNT(*) FROM claims, operator: '>=', expected: 100}
        description: Enough claims loaded
    - name: Use
      actions:
      - {key: use, title: Use, owner: noop, depends_on: [load]}
    """)


@pytest.fixture
def gated(bronze, lead):
    version = blueprint_import(text=GATED, filename="gated.yaml")
    mission = blueprint_launch(version=version, name="Gated", objective="Claims are loaded.", owner=lead)
    phases_advance(mission=mission)
    finish(mission.tasks.get(key="load"))
    phases_advance(mission=mission)
    assert phase_states(mission) == ["failed", "pending"]
    return mission


def test_a_waiver_is_recorded_and_lets_the_mission_go_on(gated, lead):
    failed = CheckEvaluation.objects.get(mission=gated, passed=False)
    assert failed.evidence == {"connection": "BRONZE", "query": "SELECT COUNT(*) FROM claims", "value": 5,
                               "operator": ">=", "expected": 100}
    check_waive(result=failed, actor=lead, reason="Test extract: 5 claims is expected here.")
    failed.refresh_from_db()
    assert failed.waived and failed.waived_by == lead and failed.outcome == "failed (waived)"
    assert failed.waiver_reason == "Test extract: 5 claims is expected here."
    assert phase_states(gated) == ["waived", "open"]
    entry = HistoryEntry.objects.get(mission=gated, event="check.waived")
    assert entry.actor_user == lead and entry.data["reason"] == "Test extract: 5 claims is expected here."
    assert "Enough claims loaded" in entry.message
    # Re-running keeps the waiver: the same failure is shown as waived, the phase stays passable.
    phase_recheck(phase=Phase.objects.get(mission=gated, order=1), actor=lead)
    latest = CheckEvaluation.objects.filter(mission=gated, check_type="sql_assert").order_by("-round").first()
    assert latest.round == 2 and not latest.passed and latest.waived
    assert HistoryEntry.objects.filter(mission=gated, event="check.failed_waived").count() == 1
    assert phase_states(gated) == ["passed", "open"]


def test_only_the_mission_owner_waives_and_only_with_a_reason(gated, lead, analyst):
    failed = CheckEvaluation.objects.get(mission=gated, passed=False)
    with pytest.raises(DomainError, match="Only the Mission Owner"):
        check_waive(result=failed, actor=analyst, reason="Looks fine to me")
    with pytest.raises(DomainError, match="needs a reason") as caught:
        check_waive(result=failed, actor=lead, reason="  ")
    assert caught.value.field == "reason"
    passed = CheckEvaluation.objects.get(mission=gated, passed=True)
    with pytest.raises(DomainError, match="nothing to waive"):
        check_waive(result=passed, actor=lead, reason="x")
    with pytest.raises(DomainError, match="Only the Mission Owner"):
        phase_recheck(phase=failed.phase, actor=analyst)
    failed.refresh_from_db()
    assert not failed.waived and phase_states(gated) == ["failed", "pending"]
    assert not HistoryEntry.objects.filter(event="check.waived").exists()


def test_an_older_result_cannot_be_waived_after_a_re_run(gated, lead):
    first = CheckEvaluation.objects.get(mission=gated, passed=False)
    phase_recheck(phase=first.phase, actor=lead)
    with pytest.raises(DomainError, match="waive the latest result"):
        check_waive(result=first, actor=lead, reason="old")


def test_a_task_whose_acceptance_checks_fail_is_not_accepted(hc_mission):
    build = hc_mission.tasks.get(key="implement_dbt_models")
    run = run_create(task=build)
    run_transition(run=run, to="running", result={})
    verdict = evaluate_acceptance(task=build, run=run)
    assert not verdict.passed
    assert verdict.failures == [{
        "name": "dbt build succeeded", "type": "dbt_succeeded", "passed": False,
        "message": "Run 1 of implement_dbt_models recorded no dbt run results.",
        "evidence": {"task": "implement_dbt_models", "run": run.pk},
        "evaluation": CheckEvaluation.objects.get(task=build).pk,
    }]
    stored = CheckEvaluation.objects.get(task=build)
    assert (stored.scope, stored.run, stored.passed) == ("acceptance", run, False)
    # The next attempt records dbt's results: accepted.
    run_transition(run=run, to="failed", error="not accepted")
    retry = run_create(task=build)
    retry = run_transition(run=retry, to="running", result={
        "run_results": {"results": [{"unique_id": "model.a", "status": "success"}]}})
    verdict = evaluate_acceptance(task=build, run=retry)
    assert verdict.passed and verdict.results[0]["message"] == "All 1 dbt node(s) of implement_dbt_models succeeded."


def test_plain_text_acceptance_criteria_are_statements_not_checks(hc_mission):
    review = hc_mission.tasks.get(key="review_mapping_specs")
    verdict = evaluate_acceptance(task=review)
    assert verdict.passed and verdict.results == []
    assert not CheckEvaluation.objects.filter(task=review).exists()


def test_a_mission_succeeds_only_when_its_success_checks_pass(hc_mission, lead):
    verdict = evaluate_success(mission=hc_mission)
    assert not verdict.passed
    outcome = {r["name"]: r["passed"] for r in verdict.results}
    assert outcome == {"Mapping specs approved": False, "dbt models materialize": True,
                       "Data-quality and reconciliation checks pass": False,
                       "Backfill verified against the source": False}
    assert CheckEvaluation.objects.filter(mission=hc_mission, scope="success").count() == 4
    assert HistoryEntry.objects.filter(mission=hc_mission, event="check.failed").count() == 3


def launched_with_a_failed_phase(lead, mode: str):
    """The gated blueprint launched (active) in ``mode``: its Load phase's exit check has failed."""
    from workflows.missions import mission_launch

    version = blueprint_import(text=GATED, filename="gated.yaml")
    mission = blueprint_launch(version=version, name="Gated", objective="Claims are loaded.", owner=lead,
                               mode=mode)
    mission_launch(mission=mission, actor=lead)
    phases_advance(mission=mission)
    finish(mission.tasks.get(key="load"))
    phases_advance(mission=mission)
    return mission


def test_after_a_waiver_the_tasks_of_the_opened_phase_start(bronze, lead, django_capture_on_commit_callbacks):
    mission = launched_with_a_failed_phase(lead, "continuous")
    use = mission.tasks.get(key="use")
    assert use.status == "pending"
    with django_capture_on_commit_callbacks(execute=False):
        check_waive(result=CheckEvaluation.objects.get(mission=mission, passed=False), actor=lead,
                          reason="Small extract")
    use.refresh_from_db()
    assert use.status in {"ready", "queued"} and use.runs.count() == 1


def test_in_step_mode_a_waiver_pauses_the_mission_at_the_boundary_until_the_owner_resumes(
        bronze, lead, django_capture_on_commit_callbacks):
    from workflows import missions as mission_workflows

    mission = launched_with_a_failed_phase(lead, "step")
    with django_capture_on_commit_callbacks(execute=False):
        check_waive(result=CheckEvaluation.objects.get(mission=mission, passed=False), actor=lead,
                          reason="Small extract")
    mission.refresh_from_db()
    use = mission.tasks.get(key="use")
    assert mission.status == "paused" and use.status == "pending" and use.runs.count() == 0
    pause = HistoryEntry.objects.filter(mission=mission, event="mission.paused").latest("id")
    assert "phase Load waived" in pause.message
    with django_capture_on_commit_callbacks(execute=False):
        mission_workflows.mission_resume(mission=mission, actor=lead)
    use.refresh_from_db()
    assert use.status in {"ready", "queued"} and use.runs.count() == 1
