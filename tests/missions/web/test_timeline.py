"""The replay timeline: each task's runs as bars on a time axis, decisions and questions as marks, the stretches
when nothing ran (waiting for people) found and collapsible, the steps in time order, in a fixed number of queries."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from history.services import history_record
from tasks import services as task_services
from tasks.models import Run
from tasks.timeline import mission_timeline
from tests.factories import MissionFactory, build_mission_graph

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    """Writes history as of a moment: ``clock(minutes)`` sets "now" that many minutes after a fixed start."""
    start = timezone.now().replace(microsecond=0) - timedelta(days=1)

    def at(minutes: float):
        moment = start + timedelta(minutes=minutes)
        monkeypatch.setattr(timezone, "now", lambda: moment)
        return moment

    at.start = start
    return at


def run(task, attempt, start, end, status="succeeded"):
    return Run.objects.create(task=task, attempt=attempt, status=status, started_at=start, finished_at=end)


def replayed_mission(mission, agent, lead, clock):
    """ingest runs 0-2 min; map runs 2-5 min, asks a question, waits for the lead until 65 min, runs again 65-67;
    review waits for approval and is approved at 70 min."""
    ingest = task_services.task_create(mission=mission, key="ingest", title="Ingest bronze", owner_agent=agent)
    mapping = task_services.task_create(mission=mission, key="map", title="Map claims", owner_agent=agent)
    review = task_services.task_create(mission=mission, key="review", title="Review the mapping", owner_user=lead)
    run(ingest, 1, clock(0), clock(2))
    run(mapping, 1, clock(2), clock(5), status="answered")
    clock(5)
    history_record(mission=mission, task=mapping, event="question.asked", actor=agent,
                   message="Which column is the primary diagnosis?")
    clock(65)
    history_record(mission=mission, task=mapping, event="question.answered", actor=lead, message="DX2")
    run(mapping, 2, clock(65), clock(67))
    clock(67)
    history_record(mission=mission, task=review, event="task.waiting_approval", actor=agent)
    clock(70)
    history_record(mission=mission, task=review, event="task.approved", actor=lead, message="Looks right.")
    return ingest, mapping, review


def test_timeline_places_runs_marks_and_the_wait_for_people(mission, agent, lead, clock):
    replayed_mission(mission, agent, lead, clock)
    timeline = mission_timeline(mission)
    assert [row.key for row in timeline.rows] == ["ingest", "map", "review"]
    ingest, mapping, review = timeline.rows
    assert [(b.attempt, b.status, b.duration) for b in mapping.bars] == [(1, "answered", "3 min 00 s"),
                                                                          (2, "succeeded", "2 min 00 s")]
    assert (ingest.bars[0].left, ingest.bars[0].width) == (0.0, round(2 / 70 * 100, 3))
    assert [m.symbol for m in mapping.marks] == ["?", "A"] and [m.label for m in review.marks] == [
        "Waiting for approval", "Approved"]
    # 5 -> 65 min nothing ran while the question waited; 67 -> 70 min the approval waited.
    assert [(g.start - clock.start, g.waiting, g.duration) for g in timeline.gaps] == [
        (timedelta(minutes=5), True, "1 h 00 min"), (timedelta(minutes=67), True, "3 min 00 s")]
    assert timeline.waiting == "1 h 03 min"
    # Collapsed, each wait takes 4% of the axis and the 7 minutes of runs the rest.
    second = mapping.bars[1]
    assert second.left == round(65 / 70 * 100, 3) and second.left_collapsed == pytest.approx(5 / 7 * 92 + 4, abs=.01)
    assert mapping.marks[0].left_collapsed == pytest.approx(5 / 7 * 92, abs=.01)
    texts = [s.text for s in timeline.steps]
    assert texts[0] == "ingest: attempt 1 started" and texts[-1] == "review: Approved by lead: Looks right."
    assert texts.index("map: Question asked by NoopAgent: Which column is the primary diagnosis?") < texts.index(
        "map: attempt 2 started")
    assert [s.at for s in timeline.steps] == sorted(s.at for s in timeline.steps)
    assert mapping.bars[1].start_step < mapping.bars[1].end_step and mapping.marks[1].step < mapping.bars[1].start_step


def test_replay_page_draws_bars_per_task_marks_and_controls(client_for, mission, agent, lead, viewer, clock):
    replayed_mission(mission, agent, lead, clock)
    url = reverse("missions:history", args=[mission.pk])
    content = client_for(viewer).get(url, {"view": "replay"}).content.decode()
    gantt = content.split('<section class="card gantt-card"', 1)[1].split("</section>", 1)[0]
    assert gantt.count('class="gantt-bar run-') == 3 and gantt.count('class="gantt-mark ') == 4
    assert 'data-key="map"' in gantt and "map, attempt 2: Succeeded, 2 min 00 s" in gantt
    assert "Nothing ran for 1 h 03 min, all of it waiting for people." in gantt
    assert 'data-gantt="forward"' in gantt and 'id="gantt-collapse" checked' in gantt
    assert "genesis/timeline.js" in content
    plain = client_for(viewer).get(reverse("missions:history", args=[mission.pk])).content.decode()
    assert "gantt-card" not in plain  # the full timeline (newest first) stays a list


def test_replay_of_a_mission_that_has_not_run_says_so(client_for, mission, lead):
    content = client_for(lead).get(reverse("missions:history", args=[mission.pk]), {"view": "replay"}).content.decode()
    assert "Nothing has run yet" in content and "timeline.js" not in content


def test_replay_of_a_500_task_mission_runs_a_bounded_number_of_queries(client_for, lead, agent,
                                                                       django_assert_max_num_queries):
    mission = MissionFactory(owner=lead)
    created = build_mission_graph(mission, tasks=500, phases=5, agent=agent)
    start = timezone.now() - timedelta(hours=5)
    Run.objects.bulk_create([Run(task=t, attempt=1, status="succeeded", started_at=start + timedelta(seconds=30 * i),
                                 finished_at=start + timedelta(seconds=30 * i + 20)) for i, t in enumerate(created)])
    for task in created[:50]:
        history_record(mission=mission, task=task, event="task.approved", actor=lead)
    client = client_for(lead)
    with django_assert_max_num_queries(12):
        content = client.get(reverse("missions:history", args=[mission.pk]), {"view": "replay"}).content.decode()
    assert content.count('class="gantt-bar run-succeeded"') == 500 and content.count("mark-taskapproved") == 50


def test_a_running_run_reaches_now_and_mission_milestones_have_their_own_row(mission, agent, lead, clock):
    task = task_services.task_create(mission=mission, key="build", title="Build models", owner_agent=agent)
    clock(0)
    history_record(mission=mission, event="mission.active", actor=lead)
    Run.objects.create(task=task, attempt=1, status="running", started_at=clock(0.5))
    clock(3.5)  # now: the run has gone on for 3 minutes
    timeline = mission_timeline(mission)
    assert [row.key for row in timeline.rows] == ["Mission", "build"]
    assert [m.label for m in timeline.rows[0].marks] == ["Mission started"]
    bar = timeline.rows[1].bars[0]
    assert bar.finished is None and bar.duration == "3 min 00 s" and bar.left + bar.width == 100.0
    assert bar.end_step == len(timeline.steps) - 1 and [s.text for s in timeline.steps] == [
        "Mission: Mission started by lead", "build: attempt 1 started"]
    assert timeline.gaps == []  # half a minute before the run is not idle time worth collapsing
