"""Missions over the API: create, read, edit, the workflow verbs, members, filters, and the projects alias."""

import pytest

from history.models import HistoryEntry
from missions.models import Membership, Mission
from tests.factories import MissionFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_makes_a_draft_owned_by_the_caller_with_history(as_user, lead):
    response = as_user(lead).post("/api/v1/missions/", {
        "name": "Provider onboarding", "objective": "Provider data lands daily.",
        "success_criteria": ["Rows reconcile", {"check": "all_tasks_done"}], "mode": "continuous",
        "escalation_emails": ["ops@example.com"],
    })
    assert response.status_code == 201, response.json()
    body = response.json()
    mission = Mission.objects.get(pk=body["id"])
    assert (mission.owner, mission.status, mission.mode) == (lead, "draft", "continuous")
    assert mission.success_criteria == ["Rows reconcile", {"check": "all_tasks_done"}]
    assert body["owner"] == "lead" and body["my_role"] == "mission_owner" and body["status"] == "draft"
    assert body["progress"] == {"done": 0, "total": 0, "percent": 0}
    assert Membership.objects.get(mission=mission, user=lead).role == "mission_owner"
    assert HistoryEntry.objects.get(mission=mission).event == "mission.created"


def test_create_refuses_bad_fields_with_errors_keyed_by_field(as_user, lead):
    response = as_user(lead).post("/api/v1/missions/", {
        "objective": "x", "mode": "sometimes", "success_criteria": "not a list",
        "escalation_emails": ["not-an-email"],
    })
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {"name", "mode", "success_criteria", "escalation_emails"}
    assert Mission.objects.count() == 0


def test_only_staff_may_create_a_mission_for_someone_else(as_user, lead, analyst, admin_user):
    data = {"name": "M", "objective": "O", "owner": "analyst"}
    refused = as_user(lead).post("/api/v1/missions/", data)
    assert refused.status_code == 403
    created = as_user(admin_user).post("/api/v1/missions/", data)
    assert created.status_code == 201
    assert Mission.objects.get().owner == analyst


def test_list_shows_only_missions_the_caller_belongs_to(as_user, mission, analyst, outsider, admin_user):
    other = MissionFactory(name="Someone else's")
    assert [m["id"] for m in as_user(analyst).get("/api/v1/missions/").json()["results"]] == [mission.pk]
    assert as_user(outsider).get("/api/v1/missions/").json() == {
        "count": 0, "next": None, "previous": None, "results": [],
    }
    assert {m["id"] for m in as_user(admin_user).get("/api/v1/missions/").json()["results"]} == {
        mission.pk, other.pk,
    }


def test_another_missions_object_is_404_not_403(as_user, mission, outsider):
    response = as_user(outsider).get(f"/api/v1/missions/{mission.pk}/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found.", "errors": {}}
    assert as_user(outsider).post(f"/api/v1/missions/{mission.pk}/launch/").status_code == 404


def test_the_owner_edits_and_history_records_what_changed(as_user, lead, mission):
    response = as_user(lead).patch(f"/api/v1/missions/{mission.pk}/", {"scope": "Bronze tables only"})
    assert response.status_code == 200
    assert response.json()["scope"] == "Bronze tables only"
    entry = HistoryEntry.objects.filter(mission=mission, event="mission.updated").get()
    assert entry.data["changed"]["scope"] == {"from": "", "to": "Bronze tables only"}


@pytest.mark.parametrize("who", ["analyst", "viewer"])
def test_task_owners_and_stakeholders_cannot_edit_or_launch(as_user, mission, who, request):
    client = as_user(request.getfixturevalue(who))
    assert client.patch(f"/api/v1/missions/{mission.pk}/", {"name": "Mine now"}).status_code == 403
    response = client.post(f"/api/v1/missions/{mission.pk}/launch/")
    assert response.status_code == 403
    assert response.json()["detail"] == "Only the Mission Owner may do this."
    mission.refresh_from_db()
    assert (mission.name, mission.status) == ("Healthcare Data Pipeline", "draft")


def test_verbs_move_the_mission_and_record_history(as_user, lead, mission):
    client = as_user(lead)
    url = f"/api/v1/missions/{mission.pk}"
    assert client.post(f"{url}/launch/").json()["status"] == "active"
    paused = client.post(f"{url}/pause/", {"reason": "Waiting for the source team"})
    assert paused.json()["status"] == "paused"
    assert client.post(f"{url}/resume/").json()["status"] == "active"
    assert client.post(f"{url}/cancel/", {"reason": "Scope moved"}).json()["status"] == "cancelled"
    events = list(HistoryEntry.objects.filter(mission=mission).values_list("event", "message"))
    assert ("mission.paused", "Waiting for the source team") in events
    assert ("mission.cancelled", "Scope moved") in events
    assert [e for e, _ in events if e.startswith("mission.")][-4:] == [
        "mission.active", "mission.paused", "mission.active", "mission.cancelled",
    ]


def test_a_refused_transition_is_409_and_says_which_and_why(as_user, lead, mission):
    response = as_user(lead).post(f"/api/v1/missions/{mission.pk}/close/", {"note": "done"})
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "invalid_transition"
    assert body["transition"] == {"entity": "Mission", "from": "draft", "to": "closed",
                                  "allowed": ["active", "cancelled"]}
    assert "cannot go from draft to closed" in body["detail"]
    assert body["errors"] == {"status": [body["detail"]]}


def test_resume_of_a_draft_is_refused_with_a_reason(as_user, lead, mission):
    response = as_user(lead).post(f"/api/v1/missions/{mission.pk}/resume/")
    assert response.status_code == 409
    assert "Only a paused mission can be resumed" in response.json()["detail"]


def test_projects_is_the_same_resource_as_missions(as_user, lead, mission):
    client = as_user(lead)
    assert client.get(f"/api/v1/projects/{mission.pk}/").json() == client.get(f"/api/v1/missions/{mission.pk}/").json()
    assert client.post(f"/api/v1/projects/{mission.pk}/launch/").json()["status"] == "active"


def test_filters_and_ordering(as_user, admin_user, lead):
    first = MissionFactory(name="Alpha claims", owner=lead)
    second = MissionFactory(name="Beta providers")
    client = as_user(admin_user)
    client.post(f"/api/v1/missions/{first.pk}/launch/")
    by_status = client.get("/api/v1/missions/", {"status": "active"}).json()["results"]
    assert [m["id"] for m in by_status] == [first.pk]
    by_owner = client.get("/api/v1/missions/", {"owner": "lead"}).json()["results"]
    assert [m["id"] for m in by_owner] == [first.pk]
    by_search = client.get("/api/v1/missions/", {"q": "provider"}).json()["results"]
    assert [m["id"] for m in by_search] == [second.pk]
    by_name = client.get("/api/v1/missions/", {"ordering": "name"}).json()["results"]
    assert [m["name"] for m in by_name] == ["Alpha claims", "Beta providers"]
    newest_first = client.get("/api/v1/missions/", {"ordering": "-name"}).json()["results"]
    assert [m["name"] for m in newest_first] == ["Beta providers", "Alpha claims"]
    launched = client.get("/api/v1/missions/", {"launched_after": "2000-01-01T00:00:00Z"}).json()["results"]
    assert [m["id"] for m in launched] == [first.pk]
    bad = client.get("/api/v1/missions/", {"status": "sleeping", "ordering": "password"})
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"status", "ordering"}


def test_progress_counts_finished_tasks(as_user, lead, mission, agent):
    TaskFactory(mission=mission, owner_agent=agent)
    from tasks.services import task_transition

    done = TaskFactory(mission=mission, owner_agent=agent)
    task_transition(task=done, to="skipped")
    body = as_user(lead).get(f"/api/v1/missions/{mission.pk}/").json()
    assert body["progress"] == {"done": 1, "total": 2, "percent": 50}


def test_members_are_listed_to_readers_and_set_by_the_owner(as_user, lead, viewer, mission):
    newcomer = UserFactory(username="newcomer")
    listed = as_user(viewer).get(f"/api/v1/missions/{mission.pk}/members/").json()
    assert [(m["user"], m["role"]) for m in listed] == [
        ("analyst", "task_owner"), ("lead", "mission_owner"), ("viewer", "stakeholder"),
    ]
    assert as_user(viewer).post(f"/api/v1/missions/{mission.pk}/members/",
                                {"user": "newcomer", "role": "task_owner"}).status_code == 403
    added = as_user(lead).post(f"/api/v1/missions/{mission.pk}/members/", {"user": "newcomer", "role": "task_owner"})
    assert added.status_code == 200
    assert Membership.objects.get(mission=mission, user=newcomer).role == "task_owner"
    removed = as_user(lead).post(f"/api/v1/missions/{mission.pk}/members/remove/", {"user": "newcomer"})
    assert removed.status_code == 204
    assert not Membership.objects.filter(mission=mission, user=newcomer).exists()
    refused = as_user(lead).post(f"/api/v1/missions/{mission.pk}/members/remove/", {"user": "lead"})
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"user": ["The Mission Owner cannot be removed; change the owner first."]}
