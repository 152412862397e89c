"""Approve-all over the API: the same verb as the pages' "Approve all shown" (``workflows.tasks.tasks_approve_all``):
each task approved on its own, refusals reported task by task with their reason, stakeholders refused, and the
same history written whichever surface is used."""

import pytest
from django.urls import reverse

from history.models import HistoryEntry
from missions import services as mission_services
from missions.choices import Role
from tasks.choices import TaskStatus
from tasks.models import Task
from tests.factories import MissionFactory, TaskFactory
from tests.pipeline.cards import mapping_task

pytestmark = pytest.mark.django_db


def _url(mission, noun="missions"):
    return f"/api/v1/{noun}/{mission.pk}/approve-all/"


def _statuses(*tasks):
    return dict(Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("key", "status"))


def test_named_tasks_are_approved_each_and_the_refused_reported_in_the_order_asked(as_user, mission, lead):
    first = mapping_task(mission, key="map_claim_summary")
    second = mapping_task(mission, key="map_patient_summary")
    done = mapping_task(mission, key="map_done", status=TaskStatus.DONE)
    foreign = TaskFactory(mission=MissionFactory(owner=lead), status=TaskStatus.WAITING_APPROVAL)
    response = as_user(lead).post(_url(mission), {
        "tasks": [first.pk, "map_patient_summary", "map_done", foreign.pk, "no_such_key", first.pk],
        "note": "Checked the dry runs."}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["approved"], body["refused"]) == (2, 3)
    assert [(r["key"], r["result"], r["code"]) for r in body["results"]] == [
        ("map_claim_summary", "approved", ""),
        ("map_patient_summary", "approved", ""),
        ("map_done", "refused", "invalid_transition"),
        (f"#{foreign.pk}", "refused", "not_found"),  # another mission's task, even one the caller owns
        ("no_such_key", "refused", "not_found"),
    ]
    assert body["results"][0]["task"] == first.pk and body["results"][3]["task"] is None
    assert body["results"][2]["reason"] == "Task map_done is done; only a task waiting for approval can be approved."
    assert _statuses(first, second, done, foreign) == {
        "map_claim_summary": "done", "map_patient_summary": "done", "map_done": "done", foreign.key: "waiting_approval"}
    notes = HistoryEntry.objects.filter(mission=mission, event="task.approved").values_list("data__note", flat=True)
    assert list(notes) == ["Checked the dry runs.", "Checked the dry runs."]


def test_without_a_list_every_task_waiting_that_the_caller_may_approve(as_user, mission, lead, analyst):
    agents = mapping_task(mission, key="map_claim_summary")
    own = TaskFactory(mission=mission, key="review", owner_agent=None, owner_user=analyst,
                      status=TaskStatus.WAITING_APPROVAL)
    pending = mapping_task(mission, key="map_later", status=TaskStatus.PENDING)
    # The Task Owner approves their own task only; the agent's proposal is the Mission Owner's to approve.
    body = as_user(analyst).post(_url(mission), {}, format="json").json()
    assert [(r["key"], r["result"]) for r in body["results"]] == [("review", "approved")]
    assert _statuses(agents, own, pending) == {"map_claim_summary": "waiting_approval", "review": "done",
                                               "map_later": "pending"}
    body = as_user(lead).post(_url(mission, "projects"), format="json").json()
    assert [(r["key"], r["result"]) for r in body["results"]] == [("map_claim_summary", "approved")]
    assert as_user(lead).post(_url(mission), {}, format="json").json() == {"approved": 0, "refused": 0,
                                                                           "results": []}


def test_a_task_owner_naming_an_agents_task_gets_it_refused_not_approved(as_user, mission, analyst):
    agents = mapping_task(mission, key="map_claim_summary")
    body = as_user(analyst).post(_url(mission), {"tasks": ["map_claim_summary"]}, format="json").json()
    assert body["results"][0]["result"] == "refused" and body["results"][0]["code"] == "forbidden"
    assert "analyst may not approve task map_claim_summary" in body["results"][0]["reason"]
    assert _statuses(agents) == {"map_claim_summary": "waiting_approval"}


@pytest.mark.parametrize("who, expected", [("viewer", 403), ("outsider", 404)])
def test_stakeholders_are_refused_and_outsiders_do_not_see_the_mission(as_user, mission, who, expected, request):
    task = mapping_task(mission, key="map_claim_summary")
    response = as_user(request.getfixturevalue(who)).post(_url(mission), {"tasks": [task.pk]}, format="json")
    assert response.status_code == expected
    assert _statuses(task) == {"map_claim_summary": "waiting_approval"}
    assert not HistoryEntry.objects.filter(event="task.approved").exists()


@pytest.mark.parametrize("body, message", [
    ({"tasks": "map_a"}, "Expected a list of items"),
    ({"tasks": []}, "This list may not be empty."),
    ({"tasks": [True]}, "Name a task by its id (a number) or its key (a string)."),
    ({"tasks": [{"id": 1}]}, "Name a task by its id (a number) or its key (a string)."),
    ({"tasks": [0]}, "Name a task by its id (a number) or its key (a string)."),
    ({"tasks": ["  "]}, "A task key cannot be blank."),
    ({"tasks": ["k" * 65]}, "A task key has at most 64 characters."),
    ({"tasks": list(range(1, 502))}, "Ensure this field has no more than 500 elements."),
])
def test_a_malformed_list_is_a_400_naming_the_field(as_user, mission, lead, body, message):
    task = mapping_task(mission, key="map_a")
    response = as_user(lead).post(_url(mission), body, format="json")
    assert response.status_code == 400
    assert message in str(response.json()["errors"]["tasks"])
    assert _statuses(task) == {"map_a": "waiting_approval"}


def _approvals_recorded(mission):
    """What approving wrote to the mission's history, surface-independent: event, task, actor, message, data."""
    return sorted(
        (e.event, e.task.key if e.task else None, e.actor_user.username if e.actor_user else None, e.message,
         str(sorted((e.data or {}).items())))
        for e in HistoryEntry.objects.filter(mission=mission).select_related("task", "actor_user")
        .exclude(event__in=["mission.created", "membership.set"])
    )


def test_the_page_and_the_api_write_the_same_history(as_user, client_for, lead, analyst):
    def set_up():
        mission = mission_services.mission_create(name="Same history", objective="Approve two, refuse one.",
                                                  owner=lead, actor=lead)
        mission_services.membership_set(mission=mission, user=analyst, role=Role.TASK_OWNER, actor=lead)
        tasks = [mapping_task(mission, key="map_claim_summary"), mapping_task(mission, key="map_patient_summary"),
                 mapping_task(mission, key="map_done", status=TaskStatus.DONE)]
        return mission, tasks

    by_page, page_tasks = set_up()
    by_api, api_tasks = set_up()
    response = client_for(lead).post(reverse("tasks:approve_all"), {"task": [t.pk for t in page_tasks]},
                                     HTTP_HX_REQUEST="true")
    assert "Approved (2): map_claim_summary, map_patient_summary." in response.content.decode()
    body = as_user(lead).post(_url(by_api), {"tasks": [t.pk for t in api_tasks]}, format="json").json()
    assert (body["approved"], body["refused"]) == (2, 1)
    recorded = _approvals_recorded(by_page)
    assert [r[:3] for r in recorded if r[0] == "task.approved"] == [
        ("task.approved", "map_claim_summary", "lead"), ("task.approved", "map_patient_summary", "lead")]
    assert recorded == _approvals_recorded(by_api)
    assert _statuses(*page_tasks) == _statuses(*api_tasks)


def test_the_schema_describes_the_verb(as_user, lead):
    schema = as_user(lead).get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/missions/{id}/approve-all/"]["post"]
    assert operation["summary"] == "Approve several tasks at once"
    assert "Stakeholders get 403" in operation["description"]
    assert "/api/v1/projects/{id}/approve-all/" in schema["paths"]
    request_schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    tasks_item = schema["components"]["schemas"][request_schema]["properties"]["tasks"]["items"]
    assert [o["type"] for o in tasks_item["oneOf"]] == ["integer", "string"]
    result = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][result]["properties"]) == {"approved", "refused", "results"}
