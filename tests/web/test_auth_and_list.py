"""Sign-in, the missions list (visibility, progress per phase, filters, search) and its query count."""

import pytest
from django.urls import reverse

from missions import services as mission_services
from missions.choices import Role
from tasks.choices import TaskStatus
from tasks.models import Task
from tests.factories import MissionFactory, UserFactory
from tests.web.conftest import build_mission_graph
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(reverse("missions:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_sign_in_lands_on_missions_and_sign_out_ends_the_session(client, lead):
    page = client.get(reverse("login"))
    assert b'<label for="id_username">Username</label>' in page.content
    response = client.post(reverse("login"), {"username": "lead", "password": "pw-for-tests-1"})
    assert response.status_code == 302 and response["Location"] == reverse("missions:list")
    assert client.get(reverse("missions:list")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("missions:list")).status_code == 302


def test_wrong_password_is_refused_with_a_message(client, lead):
    response = client.post(reverse("login"), {"username": "lead", "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_root_points_at_the_missions_page(client):
    assert client.get("/")["Location"] == reverse("missions:list")


def test_list_shows_only_missions_the_person_belongs_to(client_for, mission, outsider, lead):
    other = MissionFactory(name="Someone else's mission")
    content = client_for(lead).get(reverse("missions:list")).content.decode()
    assert "Healthcare Data Pipeline" in content
    assert other.name not in content
    content = client_for(outsider).get(reverse("missions:list")).content.decode()
    assert "Healthcare Data Pipeline" not in content
    assert "No mission matches." in content


def test_list_shows_status_owner_role_and_progress_per_phase(client_for, lead, agent):
    mission = MissionFactory(owner=lead, name="Progressing")
    tasks = build_mission_graph(mission, tasks=6, phases=2, agent=agent)
    Task.objects.filter(pk__in=[tasks[0].pk, tasks[1].pk]).update(status=TaskStatus.DONE)  # fixture data only
    content = client_for(lead).get(reverse("missions:list")).content.decode()
    assert "Progressing" in content
    assert "Phase 1: 2/3" in content and "Phase 2: 0/3" in content
    assert "2 of 6 done" in content
    assert "Mission Owner" in content
    assert 'class="status status-draft">Draft<' in content


def test_filters_by_status_and_searches_name_and_objective(client_for, lead):
    draft = MissionFactory(owner=lead, name="Draft claims work")
    active = MissionFactory(owner=lead, name="Active provider work", objective="Providers reconcile monthly.")
    mission_workflows.mission_launch(mission=active, actor=lead)
    client = client_for(lead)
    content = client.get(reverse("missions:list"), {"status": "active"}).content.decode()
    assert active.name in content and draft.name not in content
    content = client.get(reverse("missions:list"), {"q": "reconcile monthly"}).content.decode()
    assert active.name in content and draft.name not in content
    content = client.get(reverse("missions:list"), {"owner": "lead", "q": "claims"}).content.decode()
    assert draft.name in content and active.name not in content


def test_htmx_request_gets_only_the_table_fragment(client_for, lead):
    MissionFactory(owner=lead, name="Fragment mission")
    response = client_for(lead).get(reverse("missions:list"), {"q": "Fragment"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="missions-table"')
    assert "<html" not in content and "Fragment mission" in content


def test_a_bad_filter_value_names_the_field_instead_of_failing(client_for, lead):
    response = client_for(lead).get(reverse("missions:list"), {"status": "exploded", "owner": "nobody"})
    assert response.status_code == 200
    content = response.content.decode()
    assert "status:" in content and "owner:" in content


def test_missions_list_runs_a_bounded_number_of_queries(client_for, lead, agent, django_assert_max_num_queries):
    for i in range(25):
        mission = MissionFactory(owner=lead, name=f"Mission {i}")
        build_mission_graph(mission, tasks=8, phases=2, agent=agent)
    viewer = UserFactory(username="reader")
    for mission in lead.owned_missions.all()[:10]:
        mission_services.membership_set(mission=mission, user=viewer, role=Role.STAKEHOLDER, actor=lead)
    client = client_for(lead)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("missions:list"))
    assert response.content.decode().count('class="progress"') == 25
    client = client_for(viewer)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("missions:list"))
    assert response.content.decode().count('class="progress"') == 10
