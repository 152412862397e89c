"""The sign-off over the API: stakeholders approve or raise a concern (their one write), the owner closes with a
note, and a required stakeholder's missing approval is a 409 that names them."""

import pytest

from history.models import HistoryEntry
from missions.choices import MissionStatus
from missions.models import Membership, Mission, MissionSignoff

pytestmark = pytest.mark.django_db


def test_a_stakeholder_signs_off_and_everyone_in_the_mission_reads_it(as_user, completed, viewer, analyst):
    url = f"/api/v1/missions/{completed.pk}/signoff/"
    response = as_user(viewer).post(url, {"decision": "approve", "note": "Numbers match."}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["user"], body["decision"], body["note"]) == ("viewer", "approve", "Numbers match.")
    assert MissionSignoff.objects.get().pk == body["id"]
    assert HistoryEntry.objects.filter(mission=completed, event="signoff.approve", actor_user=viewer).exists()
    listed = as_user(analyst).get(url).json()
    assert [(s["user"], s["decision"]) for s in listed] == [("viewer", "approve")]


@pytest.mark.parametrize("who, expected", [("lead", 403), ("analyst", 403), ("admin_user", 403), ("outsider", 404)])
def test_only_stakeholders_may_sign_off(as_user, completed, who, expected, request):
    response = as_user(request.getfixturevalue(who)).post(f"/api/v1/missions/{completed.pk}/signoff/",
                                                          {"decision": "approve"}, format="json")
    assert response.status_code == expected
    assert not MissionSignoff.objects.exists()


def test_bad_sign_off_input_names_the_field(as_user, completed, viewer):
    url = f"/api/v1/missions/{completed.pk}/signoff/"
    response = as_user(viewer).post(url, {"decision": "maybe"}, format="json")
    assert response.status_code == 400 and "decision" in response.json()["errors"]
    response = as_user(viewer).post(url, {"decision": "concern"}, format="json")
    assert response.status_code == 400 and "note" in response.json()["errors"]
    assert not MissionSignoff.objects.exists()


def test_a_draft_is_not_signed_off(as_user, mission, viewer):
    response = as_user(viewer).post(f"/api/v1/missions/{mission.pk}/signoff/", {"decision": "approve"},
                                    format="json")
    assert response.status_code == 409 and "completed" in response.json()["detail"]


def test_a_stakeholder_still_writes_nothing_else(as_user, completed, viewer):
    client = as_user(viewer)
    assert client.post(f"/api/v1/missions/{completed.pk}/close/", {"note": "x"}).status_code == 403
    assert client.patch(f"/api/v1/missions/{completed.pk}/", {"scope": "x"}).status_code == 403
    assert client.post(f"/api/v1/missions/{completed.pk}/members/",
                       {"user": "viewer", "role": "stakeholder", "signoff_required": False}).status_code == 403
    assert Mission.objects.get(pk=completed.pk).status == MissionStatus.COMPLETED


def test_close_takes_the_note_and_waits_for_required_signoffs(as_user, completed, lead, viewer):
    client = as_user(lead)
    set_member = client.post(f"/api/v1/missions/{completed.pk}/members/",
                             {"user": "viewer", "role": "stakeholder", "signoff_required": True}, format="json")
    assert set_member.status_code == 200 and set_member.json()["signoff_required"] is True
    assert Membership.objects.get(mission=completed, user=viewer).signoff_required
    refused = client.post(f"/api/v1/missions/{completed.pk}/close/", {"note": "Shipped."}, format="json")
    assert refused.status_code == 409
    assert refused.json()["code"] == "signoff_missing" and "Vic Viewer" in refused.json()["detail"]
    as_user(viewer).post(f"/api/v1/missions/{completed.pk}/signoff/", {"decision": "approve"}, format="json")
    closed = client.post(f"/api/v1/missions/{completed.pk}/close/", {"note": "Shipped."}, format="json")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    entry = HistoryEntry.objects.get(mission=completed, event="mission.closed")
    assert entry.message == "Shipped." and entry.data == {"note": "Shipped."}


def test_a_task_owner_cannot_be_required_to_sign_off(as_user, mission, lead, analyst):
    response = as_user(lead).post(f"/api/v1/missions/{mission.pk}/members/",
                                  {"user": "analyst", "role": "task_owner", "signoff_required": True}, format="json")
    assert response.status_code == 400 and "signoff_required" in response.json()["errors"]
    assert Membership.objects.get(mission=mission, user=analyst).signoff_required is False
