"""Dependencies (cycles refused with their path), runs, history, phases and questions over the API."""

import pytest

from history.models import HistoryEntry
from tasks import services
from tasks.models import Dependency
from tests.factories import MissionFactory, PhaseFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(mission, agent):
    """extract → validate → backfill, as tasks of the shared mission."""
    extract = TaskFactory(mission=mission, key="extract", owner_agent=agent)
    validate = TaskFactory(mission=mission, key="validate", owner_agent=agent)
    backfill = TaskFactory(mission=mission, key="backfill", owner_agent=agent)
    services.dependency_add(task=validate, depends_on=extract)
    services.dependency_add(task=backfill, depends_on=validate)
    return extract, validate, backfill


def test_the_owner_adds_an_edge_and_the_task_shows_it(as_user, lead, mission, agent):
    a = TaskFactory(mission=mission, key="a", owner_agent=agent)
    b = TaskFactory(mission=mission, key="b", owner_agent=agent)
    response = as_user(lead).post("/api/v1/dependencies/", {"task": b.pk, "depends_on": a.pk})
    assert response.status_code == 201
    assert response.json()["task_key"] == "b" and response.json()["depends_on_key"] == "a"
    assert as_user(lead).get(f"/api/v1/tasks/{b.pk}/").json()["depends_on"] == [a.pk]
    assert HistoryEntry.objects.filter(task=b, event="dependency.added").exists()


def test_a_cycle_is_refused_with_its_path(as_user, lead, chain):
    extract, _, backfill = chain
    response = as_user(lead).post("/api/v1/dependencies/", {"task": extract.pk, "depends_on": backfill.pk})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "cycle"
    assert body["path"] == ["extract", "backfill", "validate", "extract"]
    assert body["errors"] == {"depends_on": [body["detail"]]}
    assert "extract → backfill → validate → extract" in body["detail"]
    assert not Dependency.objects.filter(task=extract).exists()


def test_an_edge_across_missions_and_a_duplicate_are_refused(as_user, lead, chain, agent):
    extract, validate, _ = chain
    elsewhere = TaskFactory(mission=MissionFactory(owner=lead), key="elsewhere", owner_agent=agent)
    across = as_user(lead).post("/api/v1/dependencies/", {"task": extract.pk, "depends_on": elsewhere.pk})
    assert across.status_code == 400 and across.json()["code"] == "other_mission"
    duplicate = as_user(lead).post("/api/v1/dependencies/", {"task": validate.pk, "depends_on": extract.pk})
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate"


def test_removing_an_edge_is_recorded_and_stakeholders_cannot(as_user, lead, viewer, chain):
    _, validate, _ = chain
    edge = Dependency.objects.get(task=validate)
    assert as_user(viewer).delete(f"/api/v1/dependencies/{edge.pk}/").status_code == 403
    assert as_user(lead).delete(f"/api/v1/dependencies/{edge.pk}/").status_code == 204
    assert not Dependency.objects.filter(pk=edge.pk).exists()
    assert HistoryEntry.objects.filter(task=validate, event="dependency.removed").exists()


def test_dependencies_filter_by_mission(as_user, lead, chain):
    rows = as_user(lead).get("/api/v1/dependencies/", {"mission": chain[0].mission_id}).json()["results"]
    assert [(r["task_key"], r["depends_on_key"]) for r in rows] == [("validate", "extract"), ("backfill", "validate")]


def test_runs_list_without_logs_and_detail_with(as_user, viewer, mission, agent):
    task = TaskFactory(mission=mission, owner_agent=agent)
    run = services.run_create(task=task)
    services.run_transition(run=run, to="running", log="line 1\nline 2")
    listed = as_user(viewer).get("/api/v1/runs/", {"task": task.pk}).json()["results"]
    assert [(r["id"], r["attempt"], r["status"]) for r in listed] == [(run.pk, 1, "running")]
    assert "log" not in listed[0]
    assert as_user(viewer).get(f"/api/v1/runs/{run.pk}/").json()["log"] == "line 1\nline 2"
    assert as_user(viewer).post("/api/v1/runs/", {"task": task.pk}).status_code == 405


def test_history_is_read_only_and_filtered(as_user, lead, mission):
    client = as_user(lead)
    rows = client.get("/api/v1/history/", {"mission": mission.pk, "event": "membership."}).json()["results"]
    assert [(r["event"], r["actor"]) for r in rows] == [("membership.set", "lead"), ("membership.set", "lead")]
    entry = HistoryEntry.objects.filter(mission=mission).first()
    assert client.post("/api/v1/history/", {}).status_code == 405
    assert client.patch(f"/api/v1/history/{entry.pk}/", {"message": "rewritten"}).status_code == 405
    assert client.delete(f"/api/v1/history/{entry.pk}/").status_code == 405


def test_phases_are_listed_per_mission(as_user, viewer, mission):
    PhaseFactory(mission=mission, order=1, name="Map")
    PhaseFactory(mission=mission, order=2, name="Build")
    rows = as_user(viewer).get("/api/v1/phases/", {"mission": mission.pk}).json()["results"]
    assert [(p["order"], p["name"], p["status"]) for p in rows] == [(1, "Map", "pending"), (2, "Build", "pending")]


@pytest.fixture
def question(mission, agent, lead):
    task = TaskFactory(mission=mission, key="map-claims", owner_agent=agent)
    services.task_transition(task=task, to="ready")
    run = services.run_create(task=task)
    services.task_transition(task=task, to="queued")
    services.task_transition(task=task, to="running")
    services.run_transition(run=run, to="running")
    services.run_transition(run=run, to="waiting")
    services.task_transition(task=task, to="waiting_input")
    return services.question_create(task=task, run=run, addressed_to=lead, text="Which date is CLAIM_DATE?",
                                    options=["SERVICE_DATE", "PAID_DATE"])


def test_questions_are_answered_by_the_person_asked(as_user, lead, viewer, question):
    listed = as_user(viewer).get("/api/v1/questions/", {"status": "open"}).json()["results"]
    assert [(q["id"], q["addressed_to"], q["options"]) for q in listed] == [
        (question.pk, "lead", ["SERVICE_DATE", "PAID_DATE"]),
    ]
    assert as_user(viewer).post(f"/api/v1/questions/{question.pk}/answer/",
                                {"answer": "SERVICE_DATE"}).status_code == 403
    wrong = as_user(lead).post(f"/api/v1/questions/{question.pk}/answer/", {"answer": "TODAY"})
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_choice"
    answered = as_user(lead).post(f"/api/v1/questions/{question.pk}/answer/", {"answer": "SERVICE_DATE"})
    assert answered.status_code == 200, answered.json()
    assert (answered.json()["status"], answered.json()["answer"], answered.json()["answered_by"]) == (
        "answered", "SERVICE_DATE", "lead",
    )
    again = as_user(lead).post(f"/api/v1/questions/{question.pk}/answer/", {"answer": "SERVICE_DATE"})
    assert again.status_code == 409
