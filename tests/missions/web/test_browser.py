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
from tests.browser import requires_chromium, screenshot, sign_in
from tests.conftest import leads_group
from tests.factories import ConnectionFactory, UserFactory

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
    page.wait_for_function("() => window.genesisGraph.nodes('[key]').every(n => n.data('status') === 'done')")
    nodes = page.evaluate("() => window.genesisGraph.nodes('[key]').map(n => [n.data('key'), n.data('status')])")
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
    # Every text drawn on a canvas is recorded: the chart's axis titles, month labels and printed values.
    page.add_init_script("""(() => { window.__canvasTexts = [];
        const draw = CanvasRenderingContext2D.prototype.fillText;
        CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
            window.__canvasTexts.push(String(text)); return draw.call(this, text, ...rest); }; })()""")
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
                tooltip: c.tooltip.body.map(b => b.lines.join(" ")), width: c.width, height: c.height,
                printed: c.config.plugins.map(p => p.id)}; }""")
    assert chart["x"] == "Month" and chart["y"] == "Rows"
    assert chart["ticks"] == ["2024-01", "2024-02", "2024-03"] and "120" in chart["yticks"]
    assert chart["data"] == [["Rows built", [120, 131, 127]], ["Rows in the source", [120, 134, 127]]]
    assert any("Rows built: 131" in line for line in chart["tooltip"])
    assert "genesisBarValues" in chart["printed"]
    drawn = page.evaluate("() => window.__canvasTexts")
    assert {"Month", "Rows", "2024-01", "2024-02", "2024-03", "120", "131", "127"} <= set(drawn)
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
    assert response.status == 403 and "CSRF verification failed" not in response.text()  # refused by role
    response = page.request.post(f"{live_server.url}/missions/{mission.pk}/cancel/",
                                 headers={"X-CSRFToken": token, "Referer": f"{live_server.url}/"})
    assert response.status == 403
    task.refresh_from_db()
    mission.refresh_from_db()
    assert task.status == "waiting_approval" and mission.status == MissionStatus.DRAFT


def element_screenshot(locator, name: str) -> None:
    """Like ``screenshot``, of one part of a page (the task graph's card)."""
    import os

    from tests.browser import SCREENSHOTS

    if os.environ.get("GENESIS_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_task_graph_is_legible_with_its_critical_path_and_the_replay_steps_through_a_timeline(
        browser_context, live_server, people, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from agents.models import Agent
    from history.services import history_record
    from tasks.models import Run

    lead, _ = people
    agent = Agent.objects.create(name="MappingAgent", kind="noop")
    mission = mission_services.mission_create(
        name="Claims pipeline", owner=lead,
        objective="CLAIM_SUMMARY is built from the bronze claims and reconciles with the source.")
    ingest_phase = task_services.phase_create(mission=mission, order=1, name="Ingest and profile the bronze claims",
                                              actor=lead)
    build_phase = task_services.phase_create(mission=mission, order=2, name="Map, build and review", actor=lead)
    specs = [("ingest_claims", ingest_phase, []), ("profile_claims", ingest_phase, ["ingest_claims"]),
             ("ingest_providers", ingest_phase, []),
             ("map_claims", build_phase, ["profile_claims", "ingest_providers"]),
             ("build_models", build_phase, ["map_claims"]), ("review_mapping", build_phase, ["build_models"])]
    tasks = {}
    for key, phase, deps in specs:
        tasks[key] = task_services.task_create(mission=mission, key=key, title=key.replace("_", " ").capitalize(),
                                               owner_agent=agent, phase=phase, actor=lead)
        for dep in deps:
            task_services.dependency_add(task=tasks[key], depends_on=tasks[dep])
    start = timezone.now() - timedelta(hours=3)

    def at(minutes):
        return start + timedelta(minutes=minutes)

    def ran(key, attempt, begin, end, status="succeeded"):
        Run.objects.create(task=tasks[key], attempt=attempt, status=status, started_at=at(begin), finished_at=at(end))

    ran("ingest_claims", 1, 0, 4)
    ran("ingest_providers", 1, 0, 1)
    ran("profile_claims", 1, 4, 6)
    ran("map_claims", 1, 6, 9, status="answered")
    ran("map_claims", 2, 49, 52)
    ran("build_models", 1, 52, 60)
    with monkeypatch.context() as clock:
        for minutes, key, event, who, message in [(9, "map_claims", "question.asked", agent, "Primary diagnosis?"),
                                                  (49, "map_claims", "question.answered", lead, "DX2"),
                                                  (60, "review_mapping", "task.waiting_approval", agent, ""),
                                                  (75, "review_mapping", "task.approved", lead, "Approved.")]:
            clock.setattr(timezone, "now", lambda m=minutes: at(m))
            history_record(mission=mission, task=tasks[key], event=event, actor=who, message=message)
    for key in ("ingest_claims", "ingest_providers", "profile_claims", "map_claims", "build_models"):
        task_services.task_transition(task=tasks[key], to="ready", actor=lead)
        task_services.task_transition(task=tasks[key], to="queued", actor=lead)
        task_services.task_transition(task=tasks[key], to="running", actor=lead)
        task_services.task_transition(task=tasks[key], to="done", actor=lead)

    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    page.wait_for_function("() => window.genesisGraph && window.genesisGraph.nodes('[key]').length === 6")
    graph = page.evaluate("""() => { const cy = window.genesisGraph, box = document.getElementById('task-graph');
        const n = cy.nodes('[key]');
        return {zoom: cy.zoom(), font: parseFloat(n[0].style('font-size')), height: box.clientHeight,
                laid: cy.elements().renderedBoundingBox().h,
                critical: cy.nodes('.critical').map(x => x.data('key')),
                labels: Object.fromEntries(n.map(x => [x.data('key'), x.data('label')])),
                phases: cy.nodes('[?phase]').map(p => p.data('label'))}; }""")
    assert graph["zoom"] == 1 and graph["font"] >= 12  # labels drawn at 13px
    assert graph["laid"] <= graph["height"] <= graph["laid"] + 60  # the box fits its content
    assert sorted(graph["critical"]) == ["build_models", "ingest_claims", "map_claims", "profile_claims",
                                         "review_mapping"]
    assert graph["labels"]["map_claims"] == "map_claims\nDone · 6 min 00 s"
    assert graph["labels"]["review_mapping"] == "review_mapping\nPending"
    assert sorted(graph["phases"]) == ["1. Ingest and profile the bronze claims", "2. Map, build and review"]
    page.get_by_text("ingest_claims → profile_claims → map_claims → build_models → review_mapping").wait_for()
    element_screenshot(page.locator("section[aria-labelledby=h-graph]"), "task-graph")

    page.get_by_role("link", name="Replay runs and decisions").click()
    page.get_by_role("heading", name="Timeline").wait_for()
    gantt = page.locator("#gantt")
    assert gantt.locator('.gantt-row[data-key="map_claims"] .gantt-bar').count() == 2
    assert gantt.locator('.gantt-row[data-key="build_models"] .gantt-bar').count() == 1
    assert gantt.locator(".gantt-mark").count() == 4
    assert gantt.locator(".gantt-gap.waiting").count() == 2  # the question's 40 minutes and the approval's 15
    screenshot(page, "replay")
    caption = page.locator("#gantt-caption")
    page.get_by_role("button", name="First step").click()
    assert caption.inner_text().startswith("Step 1 of 16: ")
    visible = "() => [...document.querySelectorAll('#gantt .gantt-bar')].filter(b => !b.hidden).length"
    assert page.evaluate(visible) == 1
    page.get_by_role("button", name="Step forward").click()
    page.get_by_role("button", name="Step forward").click()
    assert caption.inner_text().startswith("Step 3 of 16: ")
    assert page.evaluate(visible) == 2
    for _ in range(6):
        page.get_by_role("button", name="Step forward").click()
    assert re.fullmatch(r"Step 9 of 16: \d\d:\d\d:\d\d map_claims: Question asked by MappingAgent: Primary diagnosis\?",
                        caption.inner_text())
    assert gantt.locator('.gantt-row[data-key="map_claims"] .gantt-mark').first.is_visible()
    assert not gantt.locator('.gantt-row[data-key="map_claims"] .gantt-mark').last.is_visible()
    # The idle time collapsed (the default) or drawn to scale: the second attempt of the mapping moves.
    bar = gantt.locator('.gantt-row[data-key="map_claims"] .gantt-bar').last
    collapsed_left = float(bar.get_attribute("data-left-c"))
    page.get_by_label("Collapse the time when nothing ran").uncheck()
    assert bar.evaluate("b => parseFloat(b.style.left)") == float(bar.get_attribute("data-left")) != collapsed_left
    page.get_by_role("button", name="Show all").click()
    assert caption.inner_text() == "All 16 steps shown." and page.evaluate(visible) == 6
