"""In Chromium against a live server: the owner signs a completed mission off from the cockpit with a note; a
stakeholder signs off from the dashboard while the owner's cockpit shows it without a reload; and a mission that
completes while its cockpit is open updates the success criteria and hides Pause and Cancel without a reload."""

import pytest

from history.models import HistoryEntry
from missions import services as mission_services
from missions.choices import MissionStatus, Role
from missions.models import Mission, MissionSignoff
from tasks import services as task_services
from tests.browser import requires_chromium, screenshot, sign_in
from tests.factories import UserFactory
from workflows import tasks as task_workflows

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(transactional_db):
    lead = UserFactory(username="lead", first_name="Lena", last_name="Lead")
    viewer = UserFactory(username="viewer", first_name="Vic", last_name="Viewer")
    return lead, viewer


def _mission(lead, viewer, *, required=False, status=MissionStatus.COMPLETED):
    mission = mission_services.mission_create(
        name="Provider summary", owner=lead,
        objective="PROVIDER_SUMMARY is refreshed monthly and its denial rates reconcile with the claims.",
        mode="continuous",
        success_criteria=[{"type": "all_tasks_done", "description": "Every task of the mission is done"}])
    mission_services.membership_set(mission=mission, user=viewer, role=Role.STAKEHOLDER, actor=lead,
                                    signoff_required=required)
    phase = task_services.phase_create(mission=mission, order=1, name="Build", actor=lead)
    task = task_services.task_create(mission=mission, key="review", title="Review the provider model",
                                     owner_user=lead, phase=phase, actor=lead)
    mission_services.mission_transition(mission=mission, to=MissionStatus.ACTIVE)
    for to in ("ready", "waiting_approval"):
        task_services.task_transition(task=task, to=to, actor=lead)
    if status == MissionStatus.COMPLETED:
        task_workflows.task_approve(task=task, actor=lead)
        mission.refresh_from_db()
        assert mission.status == MissionStatus.COMPLETED
    return mission, task


def test_owner_signs_off_from_the_cockpit(browser_context, live_server, people):
    lead, viewer = people
    mission, _ = _mission(lead, viewer)
    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    panel = page.locator("#signoff")
    panel.get_by_label("Sign-off note").fill("Delivered: the provider summary reconciles with finance.")
    panel.get_by_role("button", name="Sign off and close the mission").click()
    page.get_by_text("Mission closed: signed off.").wait_for()
    page.locator("#mission-status").get_by_text("Mission closed").wait_for()
    panel.get_by_text("signed off by lead").wait_for()
    assert panel.get_by_role("button").count() == 0
    mission.refresh_from_db()
    assert mission.status == MissionStatus.CLOSED
    entry = HistoryEntry.objects.get(mission=mission, event="mission.closed")
    assert entry.actor_user == lead and entry.message == "Delivered: the provider summary reconciles with finance."


def test_stakeholder_signs_off_from_the_dashboard_and_the_owner_sees_it_live(browser_context, live_server, people):
    lead, viewer = people
    mission, _ = _mission(lead, viewer, required=True)
    owner = sign_in(browser_context, live_server, "lead")
    owner.goto(f"{live_server.url}/missions/{mission.pk}/")
    owner.locator("#signoffs-missing").get_by_text("Vic Viewer").wait_for()
    marker = owner.evaluate("() => (window.__noReload = Math.random())")

    other = browser_context.browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = sign_in(other, live_server, "viewer")
        page.get_by_role("link", name="Dashboard").click()
        form = page.locator(f"#signoff-{mission.pk}")
        form.get_by_text("Your sign-off (required before the mission can close)").wait_for()
        form.get_by_label("Raise a concern").check()
        form.get_by_role("button", name="Give sign-off").click()  # a concern needs a note
        page.get_by_text("note: say what the concern is.").wait_for()
        form = page.locator(f"#signoff-{mission.pk}")
        form.get_by_label("Approve the outputs").check()
        form.get_by_label("Note (needed with a concern)").fill("Denial rates match the finance report.")
        form.get_by_role("button", name="Give sign-off").click()
        page.get_by_text("Sign-off recorded").wait_for()
        signoffs = page.locator(f"#signoff-{mission.pk} .signoffs")
        signoffs.get_by_text("Denial rates match the finance report.").wait_for()
        screenshot(page, "dashboard-signoff")
    finally:
        other.close()
    signoff = MissionSignoff.objects.get()
    assert (signoff.user, signoff.decision) == (viewer, "approve")

    # The owner's open cockpit shows the sign-off and drops the warning, without a reload.
    owner.locator("#signoff .signoffs").get_by_text("Denial rates match the finance report.").wait_for()
    owner.locator("#signoffs-missing").wait_for(state="detached")
    assert owner.evaluate("() => window.__noReload") == marker
    screenshot(owner, "cockpit-signoff")


def test_a_mission_completing_while_the_cockpit_is_open_updates_it_without_reload(browser_context, live_server,
                                                                                  people):
    lead, viewer = people
    mission, task = _mission(lead, viewer, status=MissionStatus.ACTIVE)
    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    criteria = page.locator("#success-criteria")
    criteria.get_by_text("Not checked yet").wait_for()
    controls = page.locator("#mission-controls")
    assert controls.get_by_role("button", name="Pause").is_visible()
    assert controls.get_by_role("button", name="Cancel mission").is_visible()
    marker = page.evaluate("() => (window.__noReload = Math.random())")

    task_workflows.task_approve(task=task, actor=lead)  # elsewhere (another tab, the API): the mission completes
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED

    page.locator("#mission-status").get_by_text("Mission completed").wait_for()
    criteria.get_by_text("Passed").wait_for()
    assert criteria.get_by_text("Not checked yet").count() == 0
    controls.get_by_role("button", name="Pause").wait_for(state="detached")
    assert controls.get_by_role("button", name="Cancel mission").count() == 0
    page.locator("#signoff").get_by_role("button", name="Sign off and close the mission").wait_for()
    page.locator("#decisions").get_by_text("Nothing is waiting for a person.").wait_for()
    page.wait_for_function("""() => [...document.querySelectorAll('#board .task-card')].every(
        c => c.dataset.status === 'done')""")
    page.locator("#phases .phase-passed").first.wait_for()
    assert page.evaluate("() => window.__noReload") == marker
    screenshot(page, "cockpit-completed")
