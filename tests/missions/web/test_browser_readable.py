"""In a real browser (Debian's Chromium through Playwright): the missions list flags what needs the lead and what
is blocked, tells two missions of one name apart, and the cockpit reads as sentences, not keys; a page that does
not exist is the site's styled 404 with its navigation."""

import os

import pytest

from blueprints.models import CheckEvaluation
from history.services import history_record
from missions import services as mission_services
from missions.choices import Role
from tasks.choices import TaskStatus
from tasks.models import Phase, Question, Task
from tests.browser import SCREENSHOTS, requires_chromium, screenshot, sign_in
from tests.factories import AgentFactory, MissionFactory, UserFactory

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def missions(transactional_db):
    lead = UserFactory(username="lead", first_name="Lena", last_name="Lead")
    viewer = UserFactory(username="viewer")
    agent = AgentFactory(name="NoopAgent", kind="noop")
    waiting = MissionFactory(owner=lead, name="Claims pipeline", status="active")
    blocked = MissionFactory(owner=lead, name="Claims pipeline", status="active")
    mission_services.membership_set(mission=waiting, user=viewer, role=Role.STAKEHOLDER, actor=lead)
    mapping = Phase.objects.create(mission=waiting, order=1, name="Mapping", status="open")
    for key in ("map_claims", "map_providers"):
        Task.objects.create(mission=waiting, phase=mapping, key=key, title=f"Map {key[4:]}", owner_agent=agent,
                            status=TaskStatus.WAITING_APPROVAL)
    asking = Task.objects.create(mission=waiting, phase=mapping, key="ask", title="Ask the lead", owner_agent=agent,
                                 status=TaskStatus.WAITING_INPUT)
    Question.objects.create(mission=waiting, task=asking, addressed_to=lead, text="Which code is primary?")
    CheckEvaluation.objects.create(mission=waiting, phase=mapping, scope="exit", criterion_index=0, round=1,
                                   check_type="all_tasks_done", description="", passed=False,
                                   message="2 of 3 tasks of phase Mapping not done.")
    history_record(mission=waiting, event="notification.sent", actor=None, from_status="pending", to_status="sent",
                   message="Approval requested from lead.")
    gate = Phase.objects.create(mission=blocked, order=1, name="Mapping and review of the specs", status="failed")
    Task.objects.create(mission=blocked, phase=gate, key="review", title="Review", owner_user=lead,
                        status=TaskStatus.DONE)
    history_record(mission=blocked, event="phase.failed", actor=None, from_status="checking", to_status="failed")
    return waiting, blocked


def test_the_list_flags_decisions_and_gates_and_the_cockpit_reads_as_sentences(browser_context, live_server,
                                                                              missions):
    waiting, blocked = missions
    page = sign_in(browser_context, live_server, "lead")
    waiting_row = page.locator("table.missions tr", has=page.locator(f'text="#{waiting.pk}"'))
    blocked_row = page.locator("table.missions tr", has=page.locator(f'text="#{blocked.pk}"'))
    flag = waiting_row.locator(".flag-needs-you")
    assert flag.inner_text() == "Needs you (3 decisions waiting)"
    assert flag.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert blocked_row.locator(".flag-blocked").inner_text() == \
        "Blocked (failed gate: Mapping and review of the specs)"
    assert waiting_row.get_by_text("Claims pipeline").is_visible() and blocked_row.get_by_text("Claims pipeline")
    assert "last activity" in blocked_row.inner_text() and "Created" in blocked_row.inner_text()
    label = blocked_row.locator(".progress-label").first
    assert label.inner_text() == "Mapping and review of the specs: 1/1"
    assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # the phase label is not cut off
    screenshot(page, "missions-flags")

    waiting_row.get_by_role("link", name="Claims pipeline").click()
    page.wait_for_url(f"{live_server.url}/missions/{waiting.pk}/")
    phases = page.locator("#phases")
    assert phases.get_by_text("All tasks in scope are done").is_visible()
    history = page.locator("#recent-history")
    assert history.get_by_text("Notification sent").is_visible()
    shown = page.locator("main").inner_text()
    for key in ("all_tasks_done", "notification.sent", "waiting_approval", "{'"):
        assert key not in shown
    screenshot(page, "cockpit-readable")

    page.goto(f"{live_server.url}/missions/no-such-page/")
    assert page.get_by_role("heading", name="This page doesn’t exist, or isn’t shared with you").is_visible()
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="My work").is_visible()
    screenshot(page, "error-404")

    viewer_page = sign_in(browser_context, live_server, "viewer")
    row = viewer_page.locator("table.missions tr", has=viewer_page.locator(f'text="#{waiting.pk}"'))
    assert row.locator(".flag-waiting").inner_text() == "Waiting on people (3 decisions)"
    assert row.locator(".flag-needs-you").count() == 0


def test_the_graph_follows_run_times_and_statuses_without_a_reload(browser_context, live_server, transactional_db):
    import re
    import time

    from tasks import services as task_services
    from tasks.choices import RunStatus

    lead = UserFactory(username="lead")
    agent = AgentFactory(name="NoopAgent", kind="noop")
    mission = MissionFactory(owner=lead, name="Claims pipeline", status="active")
    extract = task_services.task_create(mission=mission, key="extract", title="Extract", owner_agent=agent)
    load = task_services.task_create(mission=mission, key="load", title="Load", owner_agent=agent)
    task_services.dependency_add(task=load, depends_on=extract)
    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    page.wait_for_function("() => window.genesisGraph && window.genesisGraph.nodes('[key]').length === 2")
    marker = page.evaluate("() => (window.__noReload = Math.random())")

    # Elsewhere (a worker): extract runs for a little over a second and succeeds.
    task_services.task_transition(task=extract, to=TaskStatus.READY)
    run = task_services.run_create(task=extract)
    task_services.run_transition(run=run, to=RunStatus.RUNNING)
    task_services.task_transition(task=extract, to=TaskStatus.RUNNING, run=run)
    time.sleep(1.2)
    task_services.run_transition(run=run, to=RunStatus.SUCCEEDED)
    task_services.task_transition(task=extract, to=TaskStatus.DONE, run=run)

    page.wait_for_function("""() => { const n = window.genesisGraph.nodes('[key = "extract"]');
        return n.data('status') === 'done' && n.data('duration'); }""")
    label = page.evaluate("() => window.genesisGraph.nodes('[key = \"extract\"]').data('label')")
    assert re.fullmatch(r"extract\nDone · 1\.\d s", label), label
    critical = re.compile(r"the chain of dependencies with the most run time, 1\.\d s")
    page.locator("#task-graph-state").get_by_text(critical).wait_for()
    assert page.evaluate("() => window.genesisGraph.edges('.critical').length") == 1
    assert page.evaluate("() => window.__noReload") == marker
    if os.environ.get("GENESIS_SCREENSHOTS") == "1":  # the graph's card alone, in docs/screenshots/
        page.locator("section:has(#task-graph)").screenshot(path=str(SCREENSHOTS / "task-graph-live.png"))


def test_a_malformed_request_is_the_styled_400_page(browser_context, live_server, transactional_db):
    UserFactory(username="lead")
    page = sign_in(browser_context, live_server, "lead")
    response = page.goto(f"{live_server.url}/missions/?q=a%00b")
    assert response.status == 400
    page.get_by_role("heading", name="This request could not be handled").wait_for()
    assert "The query parameter q holds a NUL character" in page.inner_text("main")
    screenshot(page, "error-400")
    page.get_by_role("link", name="Back to the missions").click()
    page.wait_for_url(f"{live_server.url}/missions/")
