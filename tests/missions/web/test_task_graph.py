"""The cockpit's task graph data: each task's status and run time, its phase, and the critical path (the chain of
dependencies with the most run time) marked and summed; the query count stays flat with runs on every task."""

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tasks import services as task_services
from tasks.models import Run, Task
from tasks.selectors import duration_text
from tests.factories import MissionFactory, PhaseFactory, build_mission_graph

pytestmark = pytest.mark.django_db


def graph_of(content: str) -> dict:
    return json.loads(re.search(r'<script id="task-graph-data" type="application/json">(.*?)</script>', content,
                                re.S).group(1))


def ran(task, seconds, *, attempt=1, status="succeeded"):
    start = timezone.now() - timedelta(hours=2)
    return Run.objects.create(task=task, attempt=attempt, status=status, started_at=start,
                              finished_at=start + timedelta(seconds=seconds))


def test_duration_text_reads_as_a_person_would_say_it():
    assert [duration_text(s) for s in (4.24, 123, 3720, None)] == ["4.2 s", "2 min 03 s", "1 h 02 min", ""]


def test_graph_marks_the_critical_path_by_run_time_with_durations_and_phases(client_for, mission, agent, lead):
    ingest_phase = PhaseFactory(mission=mission, order=1, name="Ingest the bronze claims and providers tables")
    build_phase = PhaseFactory(mission=mission, order=2, name="Build")
    tasks = {key: task_services.task_create(mission=mission, key=key, title=key.title(), owner_agent=agent,
                                            phase=ingest_phase if key in ("ingest", "profile", "map") else build_phase)
             for key in ("ingest", "profile", "map", "build")}
    for key, deps in {"profile": ["ingest"], "map": ["ingest"], "build": ["profile", "map"]}.items():
        for dep in deps:
            task_services.dependency_add(task=tasks[key], depends_on=tasks[dep])
    ran(tasks["ingest"], 10)
    ran(tasks["profile"], 5)
    ran(tasks["map"], 60, attempt=1, status="rejected")
    ran(tasks["map"], 63, attempt=2)
    content = client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    graph = graph_of(content)
    nodes = {n["key"]: n for n in graph["nodes"]}
    assert nodes["map"]["duration"] == "2 min 03 s" and nodes["ingest"]["duration"] == "10.0 s"
    assert nodes["build"]["duration"] == "" and nodes["build"]["status_label"] == "Pending"
    assert graph["critical"] == {"keys": ["ingest", "map", "build"], "duration": "2 min 13 s"}
    assert {k for k, n in nodes.items() if n["critical"]} == {"ingest", "map", "build"}
    keys = {n["id"]: n["key"] for n in graph["nodes"]}
    assert {(keys[e["source"]], keys[e["target"]]) for e in graph["edges"] if e["critical"]} == {
        ("ingest", "map"), ("map", "build")}
    assert graph["phases"] == [{"id": f"phase-{ingest_phase.pk}", "label": "1. Ingest the bronze claims and providers "
                                                                          "tables"},
                               {"id": f"phase-{build_phase.pk}", "label": "2. Build"}]
    assert nodes["map"]["phase"] == f"phase-{ingest_phase.pk}"
    assert "Critical path</strong> (the chain of dependencies with the most run time, 2 min 13 s)" in content
    assert "ingest → map → build" in content


def test_graph_of_a_500_task_mission_with_runs_keeps_the_query_count_flat(client_for, lead, agent):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    client = client_for(lead)
    client.get(reverse("missions:list"))  # the session and caches are warm before counting
    for size in (10, 500):
        mission = MissionFactory(owner=lead)
        created = build_mission_graph(mission, tasks=size, phases=5, agent=agent)
        start = timezone.now() - timedelta(hours=1)
        Run.objects.bulk_create([Run(task=t, attempt=1, status="succeeded", started_at=start,
                                     finished_at=start + timedelta(seconds=i % 7 + 1)) for i, t in enumerate(created)])
        Task.objects.filter(mission=mission).update(status="done")
        with CaptureQueriesContext(connection) as queries:
            content = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
        counts.append(len(queries))
        graph = graph_of(content)
        assert len(graph["critical"]["keys"]) == size  # one chain: every task is on it
    assert counts[0] == counts[1]


def test_before_anything_ran_the_critical_path_is_the_longest_chain(client_for, lead, agent):
    mission = MissionFactory(owner=lead)
    build_mission_graph(mission, tasks=3, phases=1, agent=agent)
    content = client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert graph_of(content)["critical"] == {"keys": ["t0000", "t0001", "t0002"], "duration": ""}
    assert "the longest chain of dependencies; none of its tasks has run yet" in content


def state_of(content: str) -> dict:
    return json.loads(re.search(r'<script id="task-graph-state-data" type="application/json">(.*?)</script>',
                                content, re.S).group(1))


def test_the_live_poller_brings_the_graphs_statuses_run_times_and_critical_path(client_for, mission, agent, lead,
                                                                                django_capture_on_commit_callbacks):
    from workflows import missions as mission_workflows

    extract = task_services.task_create(mission=mission, key="extract", title="Extract", owner_agent=agent,
                                        config={"sleep_ms": 150})
    load = task_services.task_create(mission=mission, key="load", title="Load", owner_agent=agent,
                                     config={"sleep_ms": 20})
    task_services.dependency_add(task=load, depends_on=extract)
    client = client_for(lead)
    page = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert "task-graph-state-data" not in page  # the page draws from the graph's own data
    assert {n["key"]: (n["status"], n["duration"]) for n in graph_of(page)["nodes"]} == {
        "extract": ("pending", ""), "load": ("pending", "")}
    since = re.search(r'id="cockpit-live" hidden data-version="([\d-]+)"', page).group(1)
    live = reverse("missions:live", args=[mission.pk])

    with django_capture_on_commit_callbacks(execute=True):
        mission_workflows.mission_launch(mission=mission, actor=lead)  # both runs, one after the other, to the end
    response = client.get(live, {"since": since}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    content = response.content.decode()
    assert re.search(r'id="task-graph-state" hx-swap-oob="true"', content)
    state = state_of(content)

    def ran_for(task):
        return sum((r.finished_at - r.started_at).total_seconds() for r in Run.objects.filter(task=task))

    assert ran_for(extract) >= 0.15
    assert state["nodes"] == {
        str(extract.pk): {"status": "done", "status_label": "Done", "duration": duration_text(ran_for(extract)),
                          "critical": True},
        str(load.pk): {"status": "done", "status_label": "Done", "duration": duration_text(ran_for(load)),
                       "critical": True},
    }
    assert state["critical_edges"] == [[str(extract.pk), str(load.pk)]]
    total = duration_text(ran_for(extract) + ran_for(load))
    assert f"the chain of dependencies with the most run time, {total}" in content
