"""Sign-off in the pages and the admin: the owner closes from the cockpit (and the admin) with a note, a stakeholder
signs off from the dashboard, the missions list shows who signed and when; and the cockpit's one live poller answers
204 while nothing changed and every changing panel when something did, in a bounded number of queries."""

import re

import pytest
from django.urls import reverse

from history.models import HistoryEntry
from history.services import history_record
from missions import services as mission_services
from missions.choices import MissionStatus, Role
from missions.models import Mission, MissionSignoff
from tests.factories import MissionFactory, UserFactory
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db


def test_the_owner_sees_the_signoffs_and_closes_from_the_cockpit_with_a_note(client_for, completed, lead, viewer):
    mission_workflows.mission_signoff(mission=completed, actor=viewer, decision="concern", note="March is missing.")
    client = client_for(lead)
    page = client.get(reverse("missions:cockpit", args=[completed.pk])).content.decode()
    assert "Raised a concern" in page and "Vic Viewer" in page and "March is missing." in page
    assert 'name="note"' in page and "Sign off and close the mission" in page
    response = client.post(reverse("missions:control", args=[completed.pk, "close"]),
                           {"note": "Accepted with the March gap noted."}, follow=True)
    assert "Mission closed: signed off." in response.content.decode()
    completed.refresh_from_db()
    assert completed.status == MissionStatus.CLOSED
    entry = HistoryEntry.objects.get(mission=completed, event="mission.closed")
    assert entry.actor_user == lead and entry.message == "Accepted with the March gap noted."
    page = client.get(reverse("missions:cockpit", args=[completed.pk])).content.decode()
    assert "signed off by lead" in page and "Accepted with the March gap noted." in page
    assert "Sign off and close the mission" not in page


def test_the_cockpit_says_who_must_still_sign_and_the_close_is_refused(client_for, completed, lead, viewer):
    mission_services.membership_set(mission=completed, user=viewer, role=Role.STAKEHOLDER, actor=lead,
                                    signoff_required=True)
    client = client_for(lead)
    page = client.get(reverse("missions:cockpit", args=[completed.pk])).content.decode()
    assert re.search(r"Required before closing, not yet approved: <strong>Vic Viewer</strong>", page)
    response = client.post(reverse("missions:control", args=[completed.pk, "close"]), {"note": "Done"}, follow=True)
    assert "the sign-off of Vic Viewer is required" in response.content.decode()
    assert Mission.objects.get(pk=completed.pk).status == MissionStatus.COMPLETED


def test_a_stakeholder_cannot_close_from_the_pages(client_for, completed, viewer):
    response = client_for(viewer).post(reverse("missions:control", args=[completed.pk, "close"]), {"note": "x"})
    assert response.status_code == 403
    assert Mission.objects.get(pk=completed.pk).status == MissionStatus.COMPLETED


def test_a_stakeholder_signs_off_from_the_dashboard(client_for, completed, viewer, lead):
    mission_services.membership_set(mission=completed, user=viewer, role=Role.STAKEHOLDER, actor=lead,
                                    signoff_required=True)
    client = client_for(viewer)
    page = client.get(reverse("missions:dashboard")).content.decode()
    assert "Your sign-off (required before the mission can close)" in page
    assert f'action="{reverse("missions:signoff", args=[completed.pk])}"' in page
    response = client.post(reverse("missions:signoff", args=[completed.pk]),
                           {"decision": "approve", "note": "Matches the finance report."}, follow=True)
    content = response.content.decode()
    assert "Sign-off recorded" in content and "Matches the finance report." in content
    signoff = MissionSignoff.objects.get()
    assert (signoff.user, signoff.decision, signoff.note) == (viewer, "approve", "Matches the finance report.")
    assert HistoryEntry.objects.filter(mission=completed, event="signoff.approve", actor_user=viewer).exists()


def test_a_concern_without_a_note_is_explained_on_the_dashboard(client_for, completed, viewer):
    response = client_for(viewer).post(reverse("missions:signoff", args=[completed.pk]), {"decision": "concern"},
                                       follow=True)
    assert "note: say what the concern is." in response.content.decode()
    assert not MissionSignoff.objects.exists()


def test_the_dashboard_offers_no_signoff_before_completion(client_for, mission, viewer):
    page = client_for(viewer).get(reverse("missions:dashboard")).content.decode()
    assert "You can sign off on the outputs once the mission has completed." in page
    assert reverse("missions:signoff", args=[mission.pk]) not in page


@pytest.mark.parametrize("who, expected", [("lead", 403), ("analyst", 403), ("outsider", 404)])
def test_only_stakeholders_post_a_signoff(client_for, completed, who, expected, request):
    response = client_for(request.getfixturevalue(who)).post(reverse("missions:signoff", args=[completed.pk]),
                                                             {"decision": "approve"})
    assert response.status_code == expected
    assert not MissionSignoff.objects.exists()


def test_the_missions_list_shows_who_signed_off_and_when(client_for, completed, viewer, lead):
    signoff = mission_workflows.mission_signoff(mission=completed, actor=viewer, decision="approve")
    page = client_for(lead).get(reverse("missions:list")).content.decode()
    assert "Signed off by Vic Viewer" in page
    assert f'datetime="{signoff.created_at.isoformat()}"' in page
    mission_workflows.mission_close(mission=completed, actor=lead)
    page = client_for(lead).get(reverse("missions:list")).content.decode()
    assert "Closed <time" in page


def test_the_missions_list_with_signoffs_runs_a_bounded_number_of_queries(client_for, lead,
                                                                         django_assert_max_num_queries):
    stakeholders = [UserFactory(username=f"s{i}") for i in range(3)]
    for i in range(20):
        mission = MissionFactory(owner=lead, name=f"Mission {i}")
        for user in stakeholders:
            mission_services.membership_set(mission=mission, user=user, role=Role.STAKEHOLDER, actor=lead)
        for status in (MissionStatus.ACTIVE, MissionStatus.COMPLETED):
            mission_services.mission_transition(mission=mission, to=status)
        for user in stakeholders:
            mission_workflows.mission_signoff(mission=mission, actor=user, decision="approve")
    client = client_for(lead)
    with django_assert_max_num_queries(15):  # the list's own, the flags' four grouped queries, the sign-offs
        page = client.get(reverse("missions:list")).content.decode()
    assert page.count("Signed off by") == 60


def test_the_dashboard_with_signoffs_runs_a_bounded_number_of_queries(client_for, lead,
                                                                     django_assert_max_num_queries):
    reader = UserFactory(username="reader")
    for i in range(12):
        mission = MissionFactory(owner=lead, name=f"Followed {i}")
        mission_services.membership_set(mission=mission, user=reader, role=Role.STAKEHOLDER, actor=lead,
                                        signoff_required=True)
        for status in (MissionStatus.ACTIVE, MissionStatus.COMPLETED):
            mission_services.mission_transition(mission=mission, to=status)
        mission_workflows.mission_signoff(mission=mission, actor=reader, decision="approve", note=f"ok {i}")
    client = client_for(reader)
    with django_assert_max_num_queries(13):  # the dashboard's own, plus the sign-offs and who must sign
        page = client.get(reverse("missions:dashboard")).content.decode()
    assert page.count('class="signoff-form"') == 12 and "ok 11" in page


# --- the live poller --------------------------------------------------------------------------------------


def _version(page: str) -> str:
    return re.search(r'id="cockpit-live" hidden data-version="([\d-]+)"', page).group(1)


def test_the_live_poller_brings_every_changing_panel_when_the_mission_completes(client_for, lead, viewer):
    mission = mission_services.mission_create(
        name="Live", objective="Everything is done.", owner=lead,
        success_criteria=[{"type": "all_tasks_done", "description": "Every task is done"}])
    mission_services.membership_set(mission=mission, user=viewer, role=Role.STAKEHOLDER, actor=lead)
    mission_services.mission_transition(mission=mission, to=MissionStatus.ACTIVE)
    client = client_for(lead)
    page = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert "Not checked yet" in page and "Pause</button>" in page
    since = _version(page)
    live = reverse("missions:live", args=[mission.pk])
    assert client.get(live, {"since": since}, HTTP_HX_REQUEST="true").status_code == 204

    from blueprints.evaluation import evaluate_mission_success

    evaluate_mission_success(mission=mission)
    mission_services.mission_transition(mission=mission, to=MissionStatus.COMPLETED)
    response = client.get(live, {"since": since}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    content = response.content.decode()
    for panel in ("mission-status", "mission-controls", "success-criteria", "decisions", "signoff", "phases",
                  "board", "artifacts", "recent-history", "environments"):
        assert re.search(rf'id="{panel}"[^>]*hx-swap-oob="true"', content), panel
    assert "Mission completed" in content and "Pause</button>" not in content and "Cancel mission" not in content
    assert "Not checked yet" not in content and "Passed" in content
    assert "Sign off and close the mission" in content
    entries = HistoryEntry.objects.filter(mission=mission)
    assert _version(content) == f"{entries.latest('id').pk}-{entries.count()}"
    assert client.get(live, {"since": _version(content)}, HTTP_HX_REQUEST="true").status_code == 204


def test_the_live_poller_is_404_for_another_mission(client_for, mission, outsider):
    assert client_for(outsider).get(reverse("missions:live", args=[mission.pk])).status_code == 404


def test_a_closed_mission_stops_polling(client_for, completed, lead):
    mission_workflows.mission_close(mission=completed, actor=lead)
    page = client_for(lead).get(reverse("missions:cockpit", args=[completed.pk])).content.decode()
    assert 'id="cockpit-live" hidden' in page and reverse("missions:live", args=[completed.pk]) not in page


def test_the_live_poller_runs_a_bounded_number_of_queries(client_for, big_mission, lead, viewer,
                                                         django_assert_max_num_queries):
    mission_services.membership_set(mission=big_mission, user=viewer, role=Role.STAKEHOLDER, actor=lead)
    for i in range(40):
        history_record(mission=big_mission, event="note.added", actor=lead, message=f"note {i}")
    client = client_for(lead)
    live = reverse("missions:live", args=[big_mission.pk])
    with django_assert_max_num_queries(18):  # 16 measured: the same panels as the page, the graph's state too
        content = client.get(live, {"since": "0"}, HTTP_HX_REQUEST="true").content.decode()
    assert content.count('class="task-card"') == 500
    since = _version(content)
    with django_assert_max_num_queries(4):  # the session, the user, the mission, the newest history id
        assert client.get(live, {"since": since}, HTTP_HX_REQUEST="true").status_code == 204


def test_the_admin_closes_with_a_note_and_names_who_is_missing(client, admin_user, completed, lead, viewer):
    mission_services.membership_set(mission=completed, user=viewer, role=Role.STAKEHOLDER, actor=lead,
                                    signoff_required=True)
    client.force_login(admin_user)
    change = client.get(reverse("admin:missions_mission_change", args=[completed.pk])).content.decode()
    close_url = reverse("admin:missions_mission_close", args=[completed.pk])
    assert close_url in change and "Sign off and close…" in change
    refused = client.post(close_url, {"note": "All good."}).content.decode()
    assert "the sign-off of Vic Viewer is required" in refused
    assert Mission.objects.get(pk=completed.pk).status == MissionStatus.COMPLETED
    mission_workflows.mission_signoff(mission=completed, actor=viewer, decision="approve", note="Fine by me.")
    change = client.get(reverse("admin:missions_mission_change", args=[completed.pk])).content.decode()
    assert "Approved" in change and "Fine by me." in change
    response = client.post(close_url, {"note": "All good."})
    assert response.status_code == 302
    entry = HistoryEntry.objects.get(mission=completed, event="mission.closed")
    assert (entry.actor_user, entry.message) == (admin_user, "All good.")
    assert Mission.objects.get(pk=completed.pk).status == MissionStatus.CLOSED


def test_the_admin_close_page_needs_the_change_permission(client, completed):
    staff = UserFactory(username="clerk", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:missions_mission_close", args=[completed.pk])).status_code == 403
