"""In a real browser (Debian's Chromium through Playwright) against a live server: a lead launches a mission from
a blueprint, answers the agent's question, watches the task finish, rejects the review with feedback and then
approves it, all without reloading; a stakeholder sees the dashboard with no write control and is refused a
write."""

import re

import pytest

from blueprints.services import blueprint_import
from history.models import HistoryEntry
from missions import services as mission_services
from missions.choices import MissionStatus, Role
from missions.models import Mission
from tasks import services as task_services
from tasks.models import Task
from tests.conftest import leads_group
from tests.factories import ConnectionFactory, UserFactory
from tests.web.browser import requires_chromium, screenshot, sign_in

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BLUEPRINT = """
slug: claim-mapping
name: Claim mapping
description: Map the bronze claims onto CLAIM_SUMMARY and have the mapping reviewed by the Mission Owner.
tags: [claims, mapping, review]
parameters:
- name: source_connection
  type: connection
  purpose: source
  help: The bronze database.
- name: target_spec
  type: string
  default: CLAIM_SUMMARY
  help: The target table the fields are mapped onto.
objective: Every column of {{ target_spec }} is mapped from the bronze claims and the mapping is approved.
phases:
- name: Map
  actions:
  - key: map_claims
    title: Define {{ target_spec }} mapping spec
    owner: noop
    config:
      ask: Which source column is the primary diagnosis?
      options: [DIAGNOSIS_CODE, DX2]
      default: DIAGNOSIS_CODE
      artifact: "CLAIM_ID <- CLAIMS.CLAIM_ID"
- name: Review
  actions:
  - key: review_mapping
    title: Review and approve the {{ target_spec }} mapping
    owner: mission_owner
    depends_on: [map_claims]
"""


@pytest.fixture
def people(transactional_db):
    lead = UserFactory(username="lead", first_name="Lena", last_name="Lead")
    lead.groups.add(leads_group())  # may launch missions and give them the leads' connections
    viewer = UserFactory(username="viewer", first_name="Vic", last_name="Viewer")
    ConnectionFactory(name="HCLS_DEMO_1_SOURCES", purpose="source")
    blueprint_import(text=BLUEPRINT, filename="claim-mapping.yaml", actor=lead)
    return lead, viewer


def card_status(page, key):
    return page.locator(f'#board .task-card:has(.key:text-is("{key}")) .status')


def test_lead_launches_answers_rejects_then_approves_without_reloading(browser_context, live_server, people):
    lead, _ = people
    page = sign_in(browser_context, live_server, "lead")
    page.get_by_role("link", name="Launch a mission").click()
    objective = page.get_by_label("Objective (the outcome)")
    objective.fill("Claim mapping")
    page.locator("#objective-help").get_by_text("reads like a title").wait_for()
    objective.fill("Every column of CLAIM_SUMMARY is mapped from the bronze claims and the mapping is approved.")
    page.locator("#objective-help .warning").wait_for(state="detached")  # an outcome: the hint goes away
    page.locator("#objective-help").get_by_text("Claim mapping").wait_for()
    assert page.get_by_label("Target spec").input_value() == "CLAIM_SUMMARY"  # pre-filled from the blueprint
    assert page.get_by_label("Source connection").input_value() == "HCLS_DEMO_1_SOURCES"
    page.get_by_label("Mission name").fill("Claims mapping, browser test")
    page.get_by_label("Continuous").check()
    screenshot(page, "launch")
    page.get_by_role("button", name="Launch mission").click()
    page.wait_for_url(re.compile(r"/missions/\d+/$"))
    mission = Mission.objects.get(name="Claims mapping, browser test")
    assert mission.status == MissionStatus.ACTIVE

    # The agent asked a question: the task waits for input.
    assert card_status(page, "map_claims").inner_text() == "Waiting for input"
    question = page.locator("#decisions article.question")
    question.get_by_text("Which source column is the primary diagnosis?").wait_for()
    marker = page.evaluate("() => (window.__noReload = Math.random())")
    question.get_by_label("DX2").check()
    screenshot(page, "cockpit-question")
    question.get_by_role("button", name="Send answer").click()
    page.get_by_text("Answered: DX2").wait_for()
    # The board follows without a reload: the task finished and the review waits for the owner.
    page.wait_for_function("""() => [...document.querySelectorAll('#board .task-card')].some(
        c => c.querySelector('.key').textContent === 'map_claims' && c.dataset.status === 'done')""")
    assert card_status(page, "map_claims").inner_text() == "Done"
    review = page.locator('#decisions article:has-text("Review and approve the CLAIM_SUMMARY mapping")')
    review.get_by_role("button", name="Approve").wait_for()

    # Reject with feedback: refused without feedback, then the review comes back as a new attempt.
    review.get_by_role("button", name="Reject with feedback").click()
    page.get_by_text("Feedback is required").wait_for()
    review = page.locator('#decisions article:has-text("Review and approve the CLAIM_SUMMARY mapping")')
    review.get_by_label("Feedback (needed to reject)").fill("PRIMARY_DIAGNOSIS must come from DX2; re-check it.")
    review.get_by_role("button", name="Reject with feedback").click()
    page.get_by_text("Rejected with feedback").wait_for()
    assert HistoryEntry.objects.filter(mission=mission, event="task.rejected",
                                       message__startswith="PRIMARY_DIAGNOSIS").exists()
    review = page.locator('#decisions article:has-text("Review and approve the CLAIM_SUMMARY mapping")')
    review.get_by_role("button", name="Approve").wait_for()  # back in the inbox (the panel refreshed itself)
    screenshot(page, "cockpit")
    review.get_by_role("button", name="Approve").click()
    page.get_by_text("Approved by lead.").wait_for()
    page.wait_for_function("""() => [...document.querySelectorAll('#board .task-card')].every(
        c => c.dataset.status === 'done')""")
    page.locator("#mission-status").get_by_text("Mission completed").wait_for()
    assert page.evaluate("() => window.__noReload") == marker  # the same page all along
    assert dict(Task.objects.filter(mission=mission).values_list("key", "status")) == {
        "map_claims": "done", "review_mapping": "done"}
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED

    # The graph was laid out by the library, one node per task, coloured and labelled by status. It follows the
    # board once htmx has settled the swap (htmx:afterSettle, a few ms after the cards changed).
    page.wait_for_function("() => window.genesisGraph.nodes().every(n => n.data('status') === 'done')")
    nodes = page.evaluate("() => window.genesisGraph.nodes().map(n => [n.data('key'), n.data('status')])")
    assert sorted(nodes) == [["map_claims", "done"], ["review_mapping", "done"]]

    # The artifact preview and My work.
    page.goto(f"{live_server.url}/my-work/")
    page.get_by_text("Nothing to approve.").wait_for()
    screenshot(page, "my-work")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    page.get_by_role("link", name="map_claims-report.txt").first.click()
    page.get_by_text("CLAIM_ID <- CLAIMS.CLAIM_ID").wait_for()
    screenshot(page, "artifact")
    page.goto(f"{live_server.url}/missions/")
    page.get_by_text("2 of 2 done").wait_for()
    screenshot(page, "missions")


def test_stakeholder_sees_a_read_only_dashboard_and_is_refused_a_write(browser_context, live_server, people):
    lead, viewer = people
    mission = mission_services.mission_create(
        name="Provider summary", owner=lead,
        objective="PROVIDER_SUMMARY is refreshed monthly and its denial rates reconcile with the claims.")
    mission_services.membership_set(mission=mission, user=viewer, role=Role.STAKEHOLDER, actor=lead)
    phase = task_services.phase_create(mission=mission, order=1, name="Build", actor=lead)
    task = task_services.task_create(mission=mission, key="review", title="Review the provider model",
                                     owner_user=lead, phase=phase, actor=lead)
    for to in ("ready", "waiting_approval"):
        task_services.task_transition(task=task, to=to, actor=lead)
    task_services.artifact_create(
        mission=mission, kind="data", name="row_counts.json", actor=lead,
        file='[{"target": "PROVIDER_SUMMARY", "month": "2024-01", "rows": 120, "expected": 120},'
             ' {"target": "PROVIDER_SUMMARY", "month": "2024-02", "rows": 131, "expected": 134},'
             ' {"target": "PROVIDER_SUMMARY", "month": "2024-03", "rows": 127, "expected": 127}]')
    task_services.artifact_create(
        mission=mission, kind="report", name="dq_results.json", actor=lead,
        file='[{"check": "not_null", "target": "PROVIDER_SUMMARY", "column": "NPI", "passed": true},'
             ' {"check": "grain", "target": "PROVIDER_SUMMARY", "column": "", "passed": false, "failing_rows": 4,'
             ' "detail": "4 duplicated key(s)"}]')

    page = sign_in(browser_context, live_server, "viewer")
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("heading", name="Provider summary").wait_for()
    page.get_by_text("PROVIDER_SUMMARY: 378 rows, 2024-01 to 2024-03").wait_for()
    page.get_by_text("grain on PROVIDER_SUMMARY: 4 failing rows (4 duplicated key(s))").wait_for()
    page.get_by_text("2024-02: 131 built, 134 in the source (-3)").wait_for()
    # Chart.js drew the chart: titled axes, the months as labels, the values in the data and in the tooltip.
    page.wait_for_function("() => window.genesisCharts && Object.keys(window.genesisCharts).length === 1")
    screenshot(page, "dashboard")
    chart = page.evaluate("""() => { const c = Object.values(window.genesisCharts)[0];
        const x = c.scales.x, y = c.scales.y;
        c.tooltip.setActiveElements([{datasetIndex: 0, index: 1}], {x: 0, y: 0}); c.update();
        return {x: x.options.title.text, y: y.options.title.text, ticks: x.ticks.map((t, i) => x.getLabelForValue(i)),
                yticks: y.ticks.map(t => t.label), data: c.data.datasets.map(d => [d.label, d.data]),
                tooltip: c.tooltip.body.map(b => b.lines.join(" ")), width: c.width, height: c.height}; }""")
    assert chart["x"] == "Month" and chart["y"] == "Rows"
    assert chart["ticks"] == ["2024-01", "2024-02", "2024-03"] and "120" in chart["yticks"]
    assert chart["data"] == [["Rows built", [120, 131, 127]], ["Rows in the source", [120, 134, 127]]]
    assert any("Rows built: 131" in line for line in chart["tooltip"])
    assert chart["width"] > 300 and chart["height"] > 150
    forms = page.locator("main form[method=post]")
    assert forms.count() == 0 and page.locator("main button").count() == 0
    page.get_by_role("link", name="Provider summary").click()
    page.get_by_text("Review the provider model").first.wait_for()
    assert page.locator("main form[method=post]").count() == 0
    assert page.get_by_role("button", name="Approve").count() == 0
    # A write sent by hand, with a valid CSRF token, is refused by role.
    token = next(c["value"] for c in browser_context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(f"{live_server.url}/tasks/{task.pk}/approve/",
                                 headers={"X-CSRFToken": token, "HX-Request": "true",
                                          "Referer": f"{live_server.url}/"})
    assert response.status == 403 and "CSRF" not in response.text()
    response = page.request.post(f"{live_server.url}/missions/{mission.pk}/cancel/",
                                 headers={"X-CSRFToken": token, "Referer": f"{live_server.url}/"})
    assert response.status == 403
    task.refresh_from_db()
    mission.refresh_from_db()
    assert task.status == "waiting_approval" and mission.status == MissionStatus.DRAFT
