"""The cockpit's panels served from the page cache: a render after any change of state shows it (the page, a
fragment and the live poller alike), each viewer sees their own controls and CSRF token, what moves without history
(a running attempt's log) is kept briefly, and a cached page costs a handful of queries."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from blueprints.models import CheckEvaluation
from history.models import HistoryEntry
from history.services import history_record
from missions.selectors import history_version
from tasks import services as task_services
from tasks.choices import TaskStatus
from tasks.models import Phase, Task
from tests.factories import PhaseFactory
from tests.pipeline.cards import mapping_task, propose, provider_v2

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def cache_on(settings):
    settings.GENESIS_COCKPIT_CACHE_SECONDS = 60


@pytest.fixture
def planned(mission, agent, analyst):
    first = PhaseFactory(mission=mission, order=1, name="Mapping", exit_criteria=["Specs approved"])
    second = PhaseFactory(mission=mission, order=2, name="Build")
    inventory = task_services.task_create(mission=mission, key="inventory", title="Inventory source fields",
                                          owner_agent=agent, phase=first)
    build = task_services.task_create(mission=mission, key="build", title="Implement dbt models",
                                      owner_agent=agent, phase=second)
    task_services.dependency_add(task=build, depends_on=inventory)
    return mission


def cockpit(client, mission, **headers):
    return client.get(reverse("missions:cockpit", args=[mission.pk]), **headers)


def live(client, mission, since):
    return client.get(reverse("missions:live", args=[mission.pk]), {"since": since}, **HX)


def version_of(page: str) -> str:
    return re.search(r'id="cockpit-live" hidden data-version="([\d-]+)"', page).group(1)


def panel(page: str, element_id: str) -> str:
    """The HTML from an element's opening tag to the next panel (enough to assert on what it shows)."""
    start = page.index(f'id="{element_id}"')
    return page[start:start + 20000]


def test_an_unchanged_mission_is_served_from_the_cache_in_a_few_queries(client_for, planned, lead):
    client = client_for(lead)
    first = cockpit(client, planned)
    assert first["X-Genesis-Cache"] == "miss"
    with CaptureQueriesContext(connection) as queries:
        again = cockpit(client, planned)
    assert again["X-Genesis-Cache"] == "hit"
    # The session, the user, the mission, the version, the environments: no panel's queries.
    assert len(queries) <= 5, [q["sql"] for q in queries]
    strip = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"|"X-CSRFToken": "[^"]+"')
    assert strip.sub("", again.content.decode()) == strip.sub("", first.content.decode())
    assert "Inventory source fields" in again.content.decode()


def test_a_500_task_cockpit_from_the_cache_costs_no_panel_query(client_for, big_mission, lead,
                                                                 django_assert_max_num_queries):
    client = client_for(lead)
    first = cockpit(client, big_mission).content.decode()
    with django_assert_max_num_queries(5):  # the session, the user, the mission, the version, the environments
        again = cockpit(client, big_mission)
    assert again["X-Genesis-Cache"] == "hit" and again.content.decode().count('class="task-card"') == 500
    with django_assert_max_num_queries(4):
        board = cockpit(client, big_mission, HTTP_HX_TARGET="board", **HX).content.decode()
    assert board.count('class="task-card"') == 500 and "0 of 500 tasks done" in first


def test_a_task_that_starts_running_shows_on_the_next_page_fragment_and_poll(client_for, planned, lead):
    client = client_for(lead)
    page = cockpit(client, planned).content.decode()
    since = version_of(page)
    assert cockpit(client, planned, HTTP_HX_TARGET="board", **HX).content.decode().count("1 in progress") == 0
    inventory = Task.objects.get(mission=planned, key="inventory")
    task_services.task_transition(task=inventory, to=TaskStatus.READY, actor=lead)
    task_services.task_transition(task=inventory, to=TaskStatus.RUNNING, actor=lead)
    assert "1 in progress" in cockpit(client, planned).content.decode()
    assert "1 in progress" in cockpit(client, planned, HTTP_HX_TARGET="board", **HX).content.decode()
    polled = live(client, planned, since)
    assert polled.status_code == 200 and "1 in progress" in polled.content.decode()
    assert version_of(polled.content.decode()) == history_version(planned.pk) != since
    assert live(client, planned, history_version(planned.pk)).status_code == 204


def test_an_approval_decided_in_place_leaves_the_cards_on_the_next_render(client_for, mission, lead):
    task = mapping_task(mission)
    propose(mission, task, provider_v2())
    client = client_for(lead)
    page = cockpit(client, mission).content.decode()
    since = version_of(page)
    assert f'id="approval-{task.pk}"' in page and "Approve</button>" in page
    assert cockpit(client, mission)["X-Genesis-Cache"] == "hit"
    response = client.post(reverse("tasks:approve", args=[task.pk]), {"feedback": ""}, **HX)
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status != TaskStatus.WAITING_APPROVAL
    page = cockpit(client, mission).content.decode()
    assert f'id="approval-{task.pk}"' not in page and "Nothing is waiting for a person." in page
    polled = live(client, mission, since).content.decode()
    assert f'id="approval-{task.pk}"' not in panel(polled, "decisions")
    assert "Nothing is waiting for a person." in polled
    assert "Task approved" in panel(polled, "recent-history")


def test_a_run_finishing_moves_the_board_graph_and_history(client_for, planned, lead):
    inventory = Task.objects.get(mission=planned, key="inventory")
    task_services.task_transition(task=inventory, to=TaskStatus.READY, actor=lead)
    run = task_services.run_create(task=inventory, actor=lead)
    task_services.task_transition(task=inventory, to=TaskStatus.QUEUED, actor=lead)
    task_services.task_transition(task=inventory, to=TaskStatus.RUNNING, actor=lead)
    task_services.run_transition(run=run, to="running", log="working")
    client = client_for(lead)
    page = cockpit(client, planned).content.decode()
    assert "0 of 2 tasks done" in page and "Running now" in page
    since = version_of(page)
    task_services.run_transition(run=run, to="succeeded", log="working\nfinished")
    task_services.task_transition(task=inventory, to=TaskStatus.DONE, actor=lead)
    page = cockpit(client, planned).content.decode()
    assert "1 of 2 tasks done" in page and "Running now" not in page
    graph = page[page.index('id="task-graph-data"'):]
    assert '"key": "inventory", "title": "Inventory source fields", "status": "done"' in graph
    assert "Run succeeded" in panel(page, "recent-history")
    polled = live(client, planned, since).content.decode()
    assert "1 of 2 tasks done" in polled and "Running now" not in polled
    state = panel(polled, "task-graph-state")
    assert f'"{inventory.pk}": {{"status": "done", "status_label": "Done"' in state


def test_an_artifact_added_appears_on_the_next_render(client_for, planned, lead):
    client = client_for(lead)
    page = cockpit(client, planned).content.decode()
    since = version_of(page)
    assert "No artifacts yet." in page
    inventory = Task.objects.get(mission=planned, key="inventory")
    task_services.artifact_create(mission=planned, task=inventory, kind="doc", name="inventory.json", file="[]",
                                  actor=lead)
    assert "inventory.json" in panel(cockpit(client, planned).content.decode(), "artifacts")
    assert "inventory.json" in panel(live(client, planned, since).content.decode(), "artifacts")
    fragment = cockpit(client, planned, HTTP_HX_TARGET="artifacts", **HX).content.decode()
    assert fragment.lstrip().startswith('<div id="artifacts"') and "inventory.json" in fragment


def test_a_failed_check_and_its_waiver_follow_on_the_next_render(client_for, planned, lead):
    phase = Phase.objects.get(mission=planned, order=1)
    client = client_for(lead)
    assert "Waive</button>" not in cockpit(client, planned).content.decode()
    for to in ("open", "checking", "failed"):
        task_services.phase_transition(phase=phase, to=to, actor=lead)
    check = CheckEvaluation.objects.create(mission=planned, phase=phase, scope="exit", criterion_index=0, round=1,
                                           check_type="row_count", description="Claims backfilled", passed=False,
                                           message="0 rows; expected at least 1.")
    history_record(mission=planned, event="check.failed", actor=None, message="Claims backfilled failed.")
    page = cockpit(client, planned).content.decode()
    assert "Claims backfilled" in page and "Waive</button>" in page
    client.post(reverse("missions:waive", args=[planned.pk, check.pk]), {"reason": "Accepted by finance."})
    page = cockpit(client, planned).content.decode()
    assert "Waived by lead: Accepted by finance." in page and "Waive</button>" not in page


def test_each_viewer_gets_their_own_controls_from_the_cache(client_for, mission, lead, viewer, analyst):
    task = mapping_task(mission)
    propose(mission, task, provider_v2())
    owner_page = cockpit(client_for(lead), mission).content.decode()
    assert "Approve</button>" in owner_page
    for person in (viewer, analyst):  # neither may decide an agent's proposal
        other = Client()
        other.force_login(person)
        page = cockpit(other, mission).content.decode()
        assert f'id="approval-{task.pk}"' in page
        assert "Approve</button>" not in page and "decision-form" not in page
    stakeholder = Client()
    stakeholder.force_login(viewer)
    assert 'method="post"' not in cockpit(stakeholder, mission).content.decode().split("<main", 1)[1]


def test_a_cached_form_carries_the_requesters_own_csrf_token(planned, lead, admin_user):
    """The phase panel with its waive form is shared by everyone who manages the mission (its owner, staff): a
    page served from the cache to another session still posts with that session's token."""
    phase = Phase.objects.get(mission=planned, order=1)
    for to in ("open", "checking", "failed"):
        task_services.phase_transition(phase=phase, to=to, actor=lead)
    check = CheckEvaluation.objects.create(mission=planned, phase=phase, scope="exit", criterion_index=0, round=1,
                                           check_type="row_count", description="Claims backfilled", passed=False,
                                           message="0 rows.")
    owner = Client(enforce_csrf_checks=True)
    owner.force_login(lead)
    assert cockpit(owner, planned)["X-Genesis-Cache"] == "miss"
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(admin_user)
    page = cockpit(staff, planned)
    assert page["X-Genesis-Cache"] == "partial"  # the decisions are staff's own; the phases come from the cache
    form = panel(page.content.decode(), "phases")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    assert "GenesisCsrf" not in page.content.decode()
    response = staff.post(reverse("missions:waive", args=[planned.pk, check.pk]),
                          {"reason": "Accepted.", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    check.refresh_from_db()
    assert check.waived_by == admin_user


def test_a_running_attempts_log_tail_is_kept_only_briefly(client_for, planned, lead, monkeypatch):
    """A log grows without history entries: the board that shows its tail is kept a few seconds, not the cache's
    lifetime, while the panels that show nothing moving stay cached."""
    from django.core.cache.backends import locmem

    inventory = Task.objects.get(mission=planned, key="inventory")
    task_services.task_transition(task=inventory, to=TaskStatus.READY, actor=lead)
    run = task_services.run_create(task=inventory, actor=lead)
    task_services.task_transition(task=inventory, to=TaskStatus.QUEUED, actor=lead)
    task_services.task_transition(task=inventory, to=TaskStatus.RUNNING, actor=lead)
    task_services.run_transition(run=run, to="running", log="first line")
    client = client_for(lead)
    assert "first line" in cockpit(client, planned).content.decode()
    type(run).objects.filter(pk=run.pk).update(log="first line\nsecond line")  # as a worker's log writes do
    assert "second line" not in cockpit(client, planned).content.decode()  # within the few seconds

    real = locmem.time.time

    class Later:
        @staticmethod
        def time():
            return real() + 10

    monkeypatch.setattr(locmem, "time", Later)
    response = cockpit(client, planned)
    assert "second line" in response.content.decode()
    assert response["X-Genesis-Cache"] == "partial"  # the board and graph again; the rest from the cache


def test_a_change_committed_under_an_older_id_still_moves_the_version(client_for, planned, lead):
    """PostgreSQL hands out ids in the order they are asked for: a transaction may commit its change and its entry
    after another transaction's newer entry. The version counts the entries too, so the page and the poller see it."""
    client = client_for(lead)
    newest = HistoryEntry.objects.filter(mission=planned).latest("id").pk
    HistoryEntry.objects.create(id=newest + 20, mission=planned, event="note.added", message="a later entry")
    page = cockpit(client, planned).content.decode()
    since = version_of(page)
    assert since.startswith(f"{newest + 20}-")
    # The slower transaction commits now: its task change, and its entry under the id it took before.
    inventory = Task.objects.get(mission=planned, key="inventory")
    Task.objects.filter(pk=inventory.pk).update(status=TaskStatus.READY)
    HistoryEntry.objects.create(id=newest + 10, mission=planned, task=inventory, event="task.ready",
                                from_status="pending", to_status="ready")
    assert HistoryEntry.objects.filter(mission=planned).latest("id").pk == newest + 20  # the newest id is the same
    polled = live(client, planned, since)
    assert polled.status_code == 200
    status_map = re.search(r'id="task-status-data" type="application/json">(.*?)</script>', polled.content.decode())
    assert f'"{inventory.pk}": "ready"' in status_map.group(1)
    assert 'data-status="ready"' in panel(cockpit(client, planned).content.decode(), "board")


def test_the_cache_off_builds_every_panel(client_for, planned, lead, settings):
    settings.GENESIS_COCKPIT_CACHE_SECONDS = 0
    client = client_for(lead)
    cockpit(client, planned)
    response = cockpit(client, planned)
    assert response["X-Genesis-Cache"] == "off"
    assert "Inventory source fields" in response.content.decode()
