"""Sign-in, the missions list (visibility, progress per phase, filters, search) and its query count."""

import pytest
from django.urls import reverse

from history.services import history_record
from missions import services as mission_services
from missions.choices import Role
from tasks.choices import TaskStatus
from tasks.models import Task
from tests.factories import MissionFactory, UserFactory, build_mission_graph
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
    with django_assert_max_num_queries(14):
        response = client.get(reverse("missions:list"))
    assert response.content.decode().count('class="progress"') == 25
    client = client_for(viewer)
    with django_assert_max_num_queries(14):
        response = client.get(reverse("missions:list"))
    assert response.content.decode().count('class="progress"') == 10


def test_missions_list_flags_what_needs_you_and_what_is_blocked(client_for, lead, analyst, viewer, agent):
    from tasks.models import Phase, Question

    waiting = MissionFactory(owner=lead, name="Claims pipeline", status="active")
    twin = MissionFactory(owner=lead, name="Claims pipeline", status="active")
    for key in ("map_a", "map_b"):
        Task.objects.create(mission=waiting, key=key, title=key, owner_agent=agent, status=TaskStatus.WAITING_APPROVAL)
    asking = Task.objects.create(mission=waiting, key="ask", title="ask", owner_agent=agent,
                                 status=TaskStatus.WAITING_INPUT)
    Question.objects.create(mission=waiting, task=asking, addressed_to=lead, text="Which code?")
    mission_services.membership_set(mission=waiting, user=viewer, role=Role.STAKEHOLDER, actor=lead)
    Phase.objects.create(mission=twin, order=1, name="Mapping and review of the specs", status="failed")
    history_record(mission=twin, event="phase.failed", actor=None)

    content = client_for(lead).get(reverse("missions:list")).content.decode()
    assert "Needs you (3 decisions waiting)" in content
    assert "Blocked (failed gate: Mapping and review of the specs)" in content
    assert f">#{waiting.pk}<" in content and f">#{twin.pk}<" in content  # the same name, told apart
    assert content.count("Created <time") == 2 and "last activity <time" in content
    # A stakeholder decides nothing: the same mission waits on people, not on them.
    content = client_for(viewer).get(reverse("missions:list")).content.decode()
    assert "Needs you" not in content and "Waiting on people (3 decisions)" in content


def test_missions_list_with_flags_runs_a_bounded_number_of_queries(client_for, lead, agent,
                                                                   django_assert_max_num_queries):
    from tasks.models import Phase

    for _ in range(25):
        mission = MissionFactory(owner=lead, name="Same name", status="active")
        build_mission_graph(mission, tasks=6, phases=2, agent=agent)
        Task.objects.filter(mission=mission, key="t0000").update(status=TaskStatus.WAITING_APPROVAL)
        Phase.objects.filter(mission=mission, order=1).update(status="failed")
        history_record(mission=mission, event="task.waiting_approval", actor=None)
    client = client_for(lead)
    with django_assert_max_num_queries(14):  # four grouped queries for the flags and dates, whatever the page
        content = client.get(reverse("missions:list")).content.decode()
    assert content.count("Needs you (1 decision waiting)") == 25
    assert content.count("Blocked (failed gate: Phase 1)") == 25
