"""The mission cockpit: what it shows, who may see and act, its live fragments, and its query count."""

import json
import re

import pytest
from django.urls import reverse

from history.models import HistoryEntry
from history.services import history_record
from missions.choices import MissionStatus
from tasks import services as task_services
from tasks.choices import TaskStatus
from tasks.models import Task
from tests.factories import MissionFactory, PhaseFactory, TaskFactory, build_mission_graph
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db

WRITE_MARKERS = ("Launch</button>", "Pause</button>", "Cancel mission", "Approve</button>", "Reject with feedback",
                 "Send answer", "Waive</button>", "Re-run checks", "Retry this task")


@pytest.fixture
def planned(mission, agent, analyst):
    """The shared mission with two phases, three tasks and dependencies."""
    first = PhaseFactory(mission=mission, order=1, name="Mapping", exit_criteria=["Specs approved"])
    second = PhaseFactory(mission=mission, order=2, name="Build")
    inventory = task_services.task_create(mission=mission, key="inventory", title="Inventory source fields",
                                          owner_agent=agent, phase=first)
    review = task_services.task_create(mission=mission, key="review", title="Review mapping specs",
                                       owner_user=analyst, phase=first)
    build = task_services.task_create(mission=mission, key="build", title="Implement dbt models",
                                      owner_agent=agent, phase=second)
    task_services.dependency_add(task=review, depends_on=inventory)
    task_services.dependency_add(task=build, depends_on=review)
    return mission


def test_cockpit_shows_objective_scope_criteria_phases_board_and_graph(client_for, planned, lead):
    content = client_for(lead).get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    assert planned.objective in content
    assert "Mapping specs approved" in content and "dbt models materialize" in content
    assert "1. Mapping" in content and "2. Build" in content and "Specs approved" in content
    assert "Inventory source fields" in content and "Implement dbt models" in content
    assert "0 of 3 tasks done" in content
    graph = json.loads(re.search(r'<script id="task-graph-data" type="application/json">(.*?)</script>', content,
                                 re.S).group(1))
    assert {n["key"] for n in graph["nodes"]} == {"inventory", "review", "build"}
    keys = {n["id"]: n["key"] for n in graph["nodes"]}
    assert {(keys[e["source"]], keys[e["target"]]) for e in graph["edges"]} == {("inventory", "review"),
                                                                               ("review", "build")}
    assert "vendor/cytoscape/cytoscape.min.js" in content and "vendor/htmx/htmx.min.js" in content
    assert "task.created" in content  # the recent history lists what happened


def test_cockpit_headings_are_in_order_and_status_is_written(client_for, planned, lead):
    content = client_for(lead).get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    levels = [int(h) for h in re.findall(r"<h([1-6])[\s>]", content)]
    assert levels[0] == 1
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False))
    assert ">Pending<" in content and ">Mission draft<" in content


def test_another_missions_cockpit_is_404_for_an_outsider(client_for, planned, outsider):
    client = client_for(outsider)
    assert client.get(reverse("missions:cockpit", args=[planned.pk])).status_code == 404
    assert client.get(reverse("missions:history", args=[planned.pk])).status_code == 404
    assert client.post(reverse("missions:control", args=[planned.pk, "launch"])).status_code == 404


def test_stakeholder_sees_the_cockpit_without_any_write_control(client_for, planned, viewer):
    content = client_for(viewer).get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    assert "Inventory source fields" in content
    for marker in WRITE_MARKERS:
        assert marker not in content
    assert 'method="post"' not in content.split("<main", 1)[1]


@pytest.mark.parametrize("action", ["launch", "pause", "resume", "cancel"])
def test_stakeholder_and_task_owner_are_refused_mission_controls(client_for, planned, viewer, analyst, action):
    for person in (viewer, analyst):
        response = client_for(person).post(reverse("missions:control", args=[planned.pk, action]))
        assert response.status_code == 403
    planned.refresh_from_db()
    assert planned.status == MissionStatus.DRAFT


def test_owner_launches_then_pauses_and_history_records_it(client_for, planned, lead):
    client = client_for(lead)
    response = client.post(reverse("missions:control", args=[planned.pk, "launch"]))
    assert response.status_code == 302
    planned.refresh_from_db()
    assert planned.status == MissionStatus.ACTIVE
    response = client.post(reverse("missions:control", args=[planned.pk, "pause"]), follow=True)
    planned.refresh_from_db()
    assert planned.status == MissionStatus.PAUSED
    assert "Mission paused." in response.content.decode()
    events = list(HistoryEntry.objects.filter(mission=planned, event__startswith="mission.").values_list(
        "event", "actor_user__username"))
    assert ("mission.active", "lead") in events and ("mission.paused", "lead") in events


def test_a_refused_transition_is_explained_not_a_500(client_for, planned, lead):
    response = client_for(lead).post(reverse("missions:control", args=[planned.pk, "resume"]), follow=True)
    assert response.status_code == 200
    assert "Only a paused mission can be resumed" in response.content.decode()


def test_board_fragment_is_served_alone_and_the_live_poller_follows_status_changes(client_for, planned, lead):
    client = client_for(lead)
    first = client.get(reverse("missions:cockpit", args=[planned.pk]), HTTP_HX_REQUEST="true",
                       HTTP_HX_TARGET="board").content.decode()
    assert first.lstrip().startswith('<div id="board"') and "<html" not in first and "hx-swap-oob" not in first
    page = client.get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    since = re.search(r'id="cockpit-live" hidden data-version="([\d-]+)"', page).group(1)
    assert 'hx-trigger="every 2s, genesis:changed from:body delay:1500ms"' in page
    live = reverse("missions:live", args=[planned.pk])
    assert client.get(live, {"since": since}, HTTP_HX_REQUEST="true").status_code == 204
    inventory = Task.objects.get(mission=planned, key="inventory")
    task_services.task_transition(task=inventory, to=TaskStatus.READY, actor=lead)
    task_services.task_transition(task=inventory, to=TaskStatus.RUNNING, actor=lead)
    content = client.get(live, {"since": since}, HTTP_HX_REQUEST="true").content.decode()
    status_map = json.loads(re.search(r'id="task-status-data" type="application/json">(.*?)</script>', content,
                                      re.S).group(1))
    assert status_map[str(inventory.pk)] == "running"
    assert "1 in progress" in content
    assert 'id="mission-status" class="status status-draft" hx-swap-oob="true"' in content
    newest = HistoryEntry.objects.filter(mission=planned).latest("id").pk
    entries = HistoryEntry.objects.filter(mission=planned).count()
    assert f'data-version="{newest}-{entries}"' in content


def test_running_task_shows_its_log_tail_on_the_board(client_for, planned, lead):
    inventory = Task.objects.get(mission=planned, key="inventory")
    task_services.task_transition(task=inventory, to=TaskStatus.READY, actor=lead)
    run = task_services.run_create(task=inventory, actor=lead)
    task_services.task_transition(task=inventory, to=TaskStatus.QUEUED, actor=lead)
    task_services.task_transition(task=inventory, to=TaskStatus.RUNNING, actor=lead)
    task_services.run_transition(run=run, to="running", log="\n".join(f"line {i}" for i in range(40)))
    content = client_for(lead).get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    assert "Running now" in content and "line 39" in content and "line 10\n" not in content
    log = client_for(lead).get(reverse("tasks:run_log", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' in log and "line 0" in log


def test_finished_run_log_stops_polling(client_for, planned, lead):
    inventory = Task.objects.get(mission=planned, key="inventory")
    task_services.task_transition(task=inventory, to=TaskStatus.READY, actor=lead)
    run = task_services.run_create(task=inventory, actor=lead)
    task_services.run_transition(run=run, to="running", log="working")
    task_services.run_transition(run=run, to="succeeded", log="working\nfinished")
    content = client_for(lead).get(reverse("tasks:run_log", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in content and "finished" in content


def test_history_timeline_filters_by_kind_actor_and_task_and_replays_in_order(client_for, planned, lead, agent):
    review = Task.objects.get(mission=planned, key="review")
    history_record(mission=planned, task=review, event="run.succeeded", actor=agent, message="Agent finished.")
    client = client_for(lead)
    url = reverse("missions:history", args=[planned.pk])
    content = client.get(url, {"kind": "run"}).content.decode()
    assert "Agent finished." in content and "dependency.added" not in content
    content = client.get(url, {"actor_kind": "agent"}).content.decode()
    assert "Agent finished." in content and "mission.created" not in content
    content = client.get(url, {"task_key": "inventory"}).content.decode()
    assert "Agent finished." not in content and "task.created" in content
    replay = client.get(url, {"view": "replay"}).content.decode()
    assert replay.index("mission.created") < replay.index("run.succeeded")
    fragment = client.get(url, {"kind": "bogus"}, HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="history-list"')


def test_cockpit_of_a_500_task_mission_runs_a_bounded_number_of_queries(client_for, big_mission, lead,
                                                                        django_assert_max_num_queries):
    for i in range(40):
        history_record(mission=big_mission, event="note.added", actor=lead, message=f"note {i}")
    client = client_for(lead)
    with django_assert_max_num_queries(16):
        response = client.get(reverse("missions:cockpit", args=[big_mission.pk]))
    content = response.content.decode()
    assert "0 of 500 tasks done" in content and content.count('class="task-card"') == 500
    with django_assert_max_num_queries(5):
        client.get(reverse("missions:cockpit", args=[big_mission.pk]), HTTP_HX_REQUEST="true",
                   HTTP_HX_TARGET="board")


def test_cockpit_query_count_does_not_grow_with_the_mission(client_for, lead, agent):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    small = MissionFactory(owner=lead)
    build_mission_graph(small, tasks=10, phases=2, agent=agent)
    large = MissionFactory(owner=lead)
    build_mission_graph(large, tasks=300, phases=2, agent=agent)
    client = client_for(lead)
    counts = []
    for mission in (small, large):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("missions:cockpit", args=[mission.pk])).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_task_page_shows_runs_dependencies_and_history(client_for, planned, lead, viewer):
    review = Task.objects.get(mission=planned, key="review")
    content = client_for(lead).get(reverse("tasks:detail", args=[review.pk])).content.decode()
    assert "Review mapping specs" in content and "inventory" in content and "build" in content
    assert "Not run yet." in content
    content = client_for(viewer).get(reverse("tasks:detail", args=[review.pk])).content.decode()
    assert "Retry this task" not in content


def test_task_page_of_another_mission_is_404(client_for, outsider):
    task = TaskFactory()
    assert client_for(outsider).get(reverse("tasks:detail", args=[task.pk])).status_code == 404


def test_launching_a_mission_moves_the_status_badge(client_for, planned, lead):
    mission_workflows.mission_launch(mission=planned, actor=lead)
    content = client_for(lead).get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    assert ">Mission active<" in content and "Pause</button>" in content


def test_check_keys_and_history_events_are_shown_as_sentences(client_for, planned, lead):
    from blueprints.models import CheckEvaluation
    from tasks.models import Phase

    phase = Phase.objects.get(mission=planned, order=1)
    CheckEvaluation.objects.create(mission=planned, phase=phase, scope="exit", criterion_index=0, round=1,
                                   check_type="all_tasks_done", description="", passed=True, message="All done.")
    history_record(mission=planned, event="notification.sent", actor=None, from_status="pending", to_status="sent")
    history_record(mission=planned, event="task.waiting_approval", actor=None, from_status="running",
                   to_status="waiting_approval")
    content = client_for(lead).get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    shown = re.sub(r"<[^>]+>", " ", content)  # the text people read, without tags and their attributes
    assert "All tasks in scope are done" in shown and "Notification sent" in shown
    assert "Task waits for approval" in shown and "running → waiting for approval" in shown
    for key in ("all_tasks_done", "notification.sent", "waiting_approval", "task.created"):
        assert key not in shown


def test_artifacts_are_grouped_by_phase_then_task_with_time_size_and_versions(client_for, planned, lead):
    inventory, review, build = (Task.objects.get(mission=planned, key=k) for k in ("inventory", "review", "build"))
    for task, name, body in [(build, "claim_summary.sql", "select 1"), (inventory, "inventory.json", "[]"),
                             (review, "CLAIM_SUMMARY.spec.json", "{}"), (review, "CLAIM_SUMMARY.spec.json", "{} "),
                             (None, "handoff.md", "# Handoff")]:
        task_services.artifact_create(mission=planned, task=task, kind="doc", name=name, file=body, actor=lead)
    content = client_for(lead).get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    part = content[content.index('id="artifacts"'):content.index('id="h-history"')]
    order = [part.index(text) for text in ("1. Mapping", ">inventory<", "inventory.json", ">review<",
                                           "CLAIM_SUMMARY.spec.json", "2. Build", ">build<", "claim_summary.sql",
                                           "Not in a phase", "The mission itself", "handoff.md")]
    assert order == sorted(order)
    assert part.count("CLAIM_SUMMARY.spec.json</a>") == 1 and "v2 (2 versions)" in part
    assert "2 artifacts" in part and "1 artifact<" in part
    assert re.search(r'<time datetime="[^"]+">\d{4}-\d{2}-\d{2} \d{2}:\d{2}</time>', part)
    assert "8\xa0bytes" in part or "8 bytes" in part


@pytest.fixture
def failed_check(planned, lead):
    from blueprints.models import CheckEvaluation
    from tasks.models import Phase

    phase = Phase.objects.get(mission=planned, order=1)
    for to in ("open", "checking", "failed"):
        task_services.phase_transition(phase=phase, to=to, actor=lead)
    return CheckEvaluation.objects.create(
        mission=planned, phase=phase, scope="exit", criterion_index=0, round=1, check_type="row_count",
        description="Claims backfilled", passed=False, message="0 rows; expected at least 1.",
        evidence={"query": "select count(*) from claim_summary", "value": 0})


def test_phase_shows_failed_check_with_evidence_and_the_owner_waives_it(client_for, failed_check, lead, planned):
    client = client_for(lead)
    content = client.get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    assert "Claims backfilled" in content and "0 rows; expected at least 1." in content
    assert "select count(*) from claim_summary" in content
    assert "Waive</button>" in content and "Re-run checks" in content
    url = reverse("missions:waive", args=[planned.pk, failed_check.pk])
    response = client.post(url, {"reason": ""}, follow=True)
    assert "say why" in response.content.decode()
    client.post(url, {"reason": "Backfill runs next week; accepted by finance."})
    failed_check.refresh_from_db()
    assert failed_check.waived_by == lead and failed_check.waiver_reason.startswith("Backfill runs next week")
    content = client.get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    assert "Failed, waived" in content and "Waived by lead: Backfill runs next week" in content


def test_stakeholder_cannot_waive_or_rerun_checks(client_for, failed_check, viewer, planned):
    client = client_for(viewer)
    content = client.get(reverse("missions:cockpit", args=[planned.pk])).content.decode()
    assert "Claims backfilled" in content and "Waive</button>" not in content
    assert client.post(reverse("missions:waive", args=[planned.pk, failed_check.pk]),
                       {"reason": "x"}).status_code == 403
    assert client.post(reverse("missions:recheck", args=[planned.pk, failed_check.phase_id])).status_code == 403
    failed_check.refresh_from_db()
    assert failed_check.waived_at is None


def test_lineage_page_traces_each_target_column_to_its_sources(client_for, planned, lead, viewer, outsider):
    from pipeline.models import MappingSpec, MappingSpecVersion

    spec = MappingSpec.objects.create(mission=planned, target_table="CLAIM_SUMMARY")
    content = {"columns": [{"name": "TOTAL_CHARGE", "sources": [{"table": "CLAIM_DETAILS", "column": "CHARGE_AMOUNT"}],
                            "transformation": "sum per claim, 0 when no lines", "confidence": 0.9,
                            "rule": {"sum": "charge amount", "round": 2}}]}
    MappingSpecVersion.objects.create(spec=spec, number=1, content=content, dialect="sqlite",
                                      sql="SELECT c.CLAIM_ID FROM CLAIMS c",
                                      lineage={"CLAIM_ID": ["CLAIMS.CLAIM_ID"],
                                               "TOTAL_CHARGE": ["CLAIM_DETAILS.CHARGE_AMOUNT"]})
    url = reverse("missions:lineage", args=[planned.pk])
    page = client_for(viewer).get(url).content.decode()
    assert "Rule in the spec: Sum of charge amount, rounded to 2 " \
        "decimals." in page and ">90%<" in page
    assert "{&#x27;sum&#x27;" not in page and "'round'" not in page and ">0.9<" not in page
    assert "CLAIM_SUMMARY" in page and "<code>CLAIMS.CLAIM_ID</code>" in page
    assert "<code>CLAIM_DETAILS.CHARGE_AMOUNT</code>" in page and "sum per claim, 0 when no lines" in page
    assert '<span class="k">SELECT</span>' in page
    assert client_for(outsider).get(url).status_code == 404


def test_board_cards_escape_what_people_typed(client_for, planned, lead):
    Task.objects.filter(mission=planned, key="build").update(title='<script>alert("x")</script> & \'quotes\'')
    content = client_for(lead).get(reverse("missions:cockpit", args=[planned.pk]), HTTP_HX_REQUEST="true",
                                   HTTP_HX_TARGET="board").content.decode()
    assert "<script>alert" not in content
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quotes&#x27;</a>" in content
