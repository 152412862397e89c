"""Tasks (and todos) over the API: create, edit, the people-in-the-loop verbs, filters, and who may do what."""

import pytest

from history.models import HistoryEntry
from tasks import services
from tasks.models import Task
from tests.factories import MissionFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def approval_task(mission, analyst):
    """A task owned by the analyst, waiting for approval in an active mission."""
    from workflows.missions import mission_launch

    mission_launch(mission=mission, actor=None)
    task = TaskFactory(mission=mission, key="review", owner_user=analyst, owner_agent=None)
    services.task_transition(task=task, to="ready")
    services.task_transition(task=task, to="waiting_approval")
    return task


def test_the_mission_owner_creates_a_task_with_history(as_user, lead, mission, agent):
    response = as_user(lead).post("/api/v1/tasks/", {
        "mission": mission.pk, "key": "inventory", "title": "Inventory source fields",
        "acceptance_criteria": ["Every bronze column profiled"], "owner_agent": "NoopAgent",
        "config": {"sleep_ms": 5},
    })
    assert response.status_code == 201, response.json()
    body = response.json()
    task = Task.objects.get(pk=body["id"])
    assert (task.key, task.owner_agent, task.config, task.status) == ("inventory", agent, {"sleep_ms": 5}, "pending")
    assert body["owner_agent"] == "NoopAgent" and body["owner_user"] is None and body["depends_on"] == []
    assert HistoryEntry.objects.filter(task=task, event="task.created").count() == 1


def test_a_task_needs_exactly_one_owner(as_user, lead, mission, analyst, agent):
    response = as_user(lead).post("/api/v1/tasks/", {
        "mission": mission.pk, "key": "both", "title": "Two owners", "owner_agent": "NoopAgent",
        "owner_user": "analyst",
    })
    assert response.status_code == 400
    assert "owner_user" in response.json()["errors"]
    assert not Task.objects.filter(key="both").exists()


def test_a_duplicate_key_is_refused_on_the_key_field(as_user, lead, mission, agent):
    TaskFactory(mission=mission, key="inventory", owner_agent=agent)
    response = as_user(lead).post("/api/v1/tasks/", {
        "mission": mission.pk, "key": "inventory", "title": "Again", "owner_agent": "NoopAgent",
    })
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_a_task_cannot_be_added_to_a_mission_the_caller_cannot_see(as_user, lead, agent):
    hidden = MissionFactory()
    response = as_user(lead).post("/api/v1/tasks/", {
        "mission": hidden.pk, "key": "x", "title": "X", "owner_agent": "NoopAgent",
    })
    assert response.status_code == 400
    assert response.json()["errors"] == {"mission": [f'Invalid pk "{hidden.pk}" - object does not exist.']}


@pytest.mark.parametrize("who", ["analyst", "viewer"])
def test_only_the_mission_owner_adds_or_edits_tasks(as_user, mission, agent, who, request):
    client = as_user(request.getfixturevalue(who))
    created = client.post("/api/v1/tasks/", {"mission": mission.pk, "key": "x", "title": "X",
                                             "owner_agent": "NoopAgent"})
    assert created.status_code == 403
    task = TaskFactory(mission=mission, owner_agent=agent, title="Original")
    assert client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "Changed"}).status_code == 403
    task.refresh_from_db()
    assert task.title == "Original"


def test_edit_changes_the_definition_but_never_the_status(as_user, lead, mission, agent):
    task = TaskFactory(mission=mission, owner_agent=agent)
    response = as_user(lead).patch(f"/api/v1/tasks/{task.pk}/", {"title": "Renamed", "status": "done"})
    assert response.status_code == 200
    task.refresh_from_db()
    assert (task.title, task.status) == ("Renamed", "pending")
    moved = as_user(lead).patch(f"/api/v1/tasks/{task.pk}/", {"mission": MissionFactory(owner=lead).pk})
    assert moved.status_code == 400
    assert moved.json()["errors"] == {"mission": ["A task cannot move to another mission."]}


def test_the_task_owner_approves_and_the_task_is_done(as_user, analyst, approval_task):
    response = as_user(analyst).post(f"/api/v1/tasks/{approval_task.pk}/approve/", {"note": "Looks right"})
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "done"
    approval_task.refresh_from_db()
    assert approval_task.status == "done"
    assert HistoryEntry.objects.filter(task=approval_task, event="task.approved", message="Looks right").exists()


def test_a_stakeholder_cannot_approve(as_user, viewer, approval_task):
    response = as_user(viewer).post(f"/api/v1/tasks/{approval_task.pk}/approve/")
    assert response.status_code == 403
    approval_task.refresh_from_db()
    assert approval_task.status == "waiting_approval"


def test_reject_needs_feedback_and_puts_the_work_back(as_user, lead, approval_task):
    client = as_user(lead)
    missing = client.post(f"/api/v1/tasks/{approval_task.pk}/reject/", {})
    assert missing.status_code == 400
    assert missing.json()["errors"] == {"feedback": ["This field is required."]}
    blank = client.post(f"/api/v1/tasks/{approval_task.pk}/reject/", {"feedback": "   "})
    assert blank.status_code == 400 and "feedback" in blank.json()["errors"]
    response = client.post(f"/api/v1/tasks/{approval_task.pk}/reject/", {"feedback": "Use the service date"})
    assert response.status_code == 200, response.json()
    assert HistoryEntry.objects.filter(task=approval_task, event="task.rejected",
                                       data__feedback="Use the service date").exists()


def test_approving_twice_is_a_409_that_says_why(as_user, lead, approval_task):
    client = as_user(lead)
    assert client.post(f"/api/v1/tasks/{approval_task.pk}/approve/").status_code == 200
    again = client.post(f"/api/v1/tasks/{approval_task.pk}/approve/")
    assert again.status_code == 409
    assert again.json()["detail"] == "Task review is done; only a task waiting for approval can be approved."


def test_cancel_and_retry(as_user, lead, mission, analyst):
    task = TaskFactory(mission=mission, key="manual", owner_user=analyst, owner_agent=None)
    client = as_user(lead)
    cancelled = client.post(f"/api/v1/tasks/{task.pk}/cancel/", {"reason": "Not needed"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    retried = client.post(f"/api/v1/tasks/{task.pk}/retry/")
    assert retried.status_code == 200, retried.json()
    task.refresh_from_db()
    assert task.status == "waiting_approval"
    assert HistoryEntry.objects.filter(task=task, event="task.cancelled", message="Not needed").exists()


def test_todos_are_the_tasks_with_project_where_tasks_say_mission(as_user, lead, mission, agent):
    task = TaskFactory(mission=mission, owner_agent=agent)
    client = as_user(lead)
    as_task = client.get(f"/api/v1/tasks/{task.pk}/").json()
    as_todo = client.get(f"/api/v1/todos/{task.pk}/").json()
    assert "mission" not in as_todo and as_todo["project"] == mission.pk
    assert as_todo == {("project" if name == "mission" else name): value for name, value in as_task.items()}
    assert list(as_todo) == ["project" if name == "mission" else name for name in as_task]  # same order
    listed = client.get("/api/v1/todos/", {"project": mission.pk}).json()["results"]
    assert [(t["id"], t["project"]) for t in listed] == [(task.pk, mission.pk)]
    # The todos list reads project, not mission: the tasks' word is an unknown parameter there.
    wrong_word = client.get("/api/v1/todos/", {"mission": mission.pk})
    assert wrong_word.status_code == 400 and list(wrong_word.json()["errors"]) == ["mission"]
    assert "project" in wrong_word.json()["known"]


def test_a_todo_is_added_to_a_project_and_errors_name_the_project(as_user, lead, mission, agent):
    client = as_user(lead)
    created = client.post("/api/v1/todos/", {"project": mission.pk, "key": "inventory", "title": "Inventory",
                                             "owner_agent": "NoopAgent"})
    assert created.status_code == 201, created.json()
    assert created.json()["project"] == mission.pk and "mission" not in created.json()
    assert Task.objects.get(pk=created.json()["id"]).mission == mission
    missing = client.post("/api/v1/todos/", {"key": "x", "title": "X", "owner_agent": "NoopAgent"})
    assert missing.json()["errors"] == {"project": ["This field is required."]}
    hidden = MissionFactory()
    refused = client.post("/api/v1/todos/", {"project": hidden.pk, "key": "x", "title": "X",
                                             "owner_agent": "NoopAgent"})
    assert refused.json()["errors"] == {"project": [f'Invalid pk "{hidden.pk}" - object does not exist.']}
    moved = client.patch(f"/api/v1/todos/{created.json()['id']}/", {"project": MissionFactory(owner=lead).pk})
    assert moved.status_code == 400
    assert moved.json()["errors"] == {"project": ["A todo cannot move to another project."]}
    assert not Task.objects.filter(key="x").exists()


def test_a_todo_verb_answers_with_the_todo(as_user, analyst, approval_task):
    response = as_user(analyst).post(f"/api/v1/todos/{approval_task.pk}/approve/", {"note": "ok"})
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["project"]) == ("done", approval_task.mission_id)
    assert "mission" not in response.json()


def test_the_schema_documents_todos_with_project_and_tasks_with_mission():
    import yaml
    from rest_framework.test import APIClient

    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    components = schema["components"]["schemas"]
    assert "project" in components["Todo"]["properties"] and "mission" not in components["Todo"]["properties"]
    assert "project" in components["TodoRequest"]["required"]
    assert "mission" in components["Task"]["properties"]
    for path, item in schema["paths"].items():
        if path.startswith("/api/v1/todos/"):
            for method, operation in item.items():
                response = operation["responses"].get("200") or operation["responses"].get("201")
                ref = str(response["content"]["application/json"]["schema"])
                assert "Todo" in ref and "Task" not in ref, (method, path, ref)
                names = [p["name"] for p in operation.get("parameters", [])]
                assert "mission" not in names, (method, path)


def test_filters_by_mission_status_owner_and_agent(as_user, lead, mission, analyst, agent):
    mine = TaskFactory(mission=mission, key="a", owner_agent=agent)
    person = TaskFactory(mission=mission, key="b", owner_user=analyst, owner_agent=None)
    TaskFactory(mission=MissionFactory(owner=lead), key="c", owner_agent=agent)
    services.task_transition(task=person, to="ready")
    client = as_user(lead)

    def keys(**params):
        response = client.get("/api/v1/tasks/", params)
        assert response.status_code == 200, response.json()
        return [t["key"] for t in response.json()["results"]]

    assert keys(mission=mission.pk) == ["a", "b"]
    assert keys(mission=mission.pk, status="ready") == ["b"]
    assert keys(owner="analyst") == ["b"]
    assert keys(agent="NoopAgent", mission=mission.pk) == ["a"]
    assert keys(mission=mission.pk, ordering="-key") == ["b", "a"]
    assert keys(mission=999999) == []
    assert mine.pk
    bad = client.get("/api/v1/tasks/", {"mission": "abc", "status": "asleep"})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"mission", "status"}
