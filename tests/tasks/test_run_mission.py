"""``manage.py run_mission``: headless runs through the workers' code path."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from history.models import HistoryEntry
from missions.choices import MissionStatus
from tasks import services
from tasks.choices import TaskStatus
from tasks.models import Artifact, Question, Run, Task
from workflows import driver

pytestmark = pytest.mark.django_db


def test_run_mission_auto_approves_answers_and_completes(mission, agent, lead):
    spec = services.task_create(mission=mission, key="spec", title="Spec", owner_agent=agent,
                                config={"needs_approval": "spec v1", "artifact": "mapping"})
    ask = services.task_create(mission=mission, key="ask", title="Ask", owner_agent=agent,
                               config={"ask": "Which key?", "options": ["A", "B"], "default": "B"})
    services.dependency_add(task=ask, depends_on=spec)
    out = StringIO()
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "30", "--auto-approve", stdout=out)
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED
    assert Question.objects.get(task=ask).answer == "B"
    assert Run.objects.filter(task=ask, status="succeeded").get().result["answer"] == "B"
    assert Artifact.objects.filter(task=spec, kind="report").count() == 1
    text = out.getvalue()
    assert "completed" in text and "spec" in text and "Artifacts: 1" in text


def test_run_mission_stops_at_a_decision_without_auto_approve(mission, agent, lead):
    task = services.task_create(mission=mission, key="spec", title="Spec", owner_agent=agent,
                                config={"needs_approval": "spec v1"})
    out = StringIO()
    call_command("run_mission", mission.name, "--wait", "--timeout", "30", stdout=out)
    task.refresh_from_db()
    assert task.status == TaskStatus.WAITING_APPROVAL
    assert "Waiting for a person: spec" in out.getvalue()


def test_run_mission_exits_non_zero_when_the_mission_fails(mission, agent, lead):
    services.task_create(mission=mission, key="bad", title="Bad", owner_agent=agent, config={"fail_always": True})
    with pytest.raises(CommandError, match="failed"):
        call_command("run_mission", str(mission.pk), "--wait", "--timeout", "30", stdout=StringIO())


def test_run_mission_names_an_unknown_mission():
    with pytest.raises(CommandError, match="No mission"):
        call_command("run_mission", "nope", stdout=StringIO())


# Run within the test's transaction, as a caller's own transaction would hold it: no other connection sees the runs,
# so the lease is kept on the caller's connection (a lease thread on its own connection would find no run to renew
# and take it as lost, cancelling the agent at its first heartbeat).


@pytest.fixture
def beats(settings):
    settings.GENESIS_HEARTBEAT_SECONDS = 0.05
    settings.GENESIS_CANCEL_GRACE_SECONDS = 0.3
    return settings


def test_run_mission_in_a_transaction_runs_work_longer_than_many_heartbeats(mission, agent, lead, beats):
    task = services.task_create(mission=mission, key="long", title="Long", owner_agent=agent, max_attempts=1,
                                config={"sleep_ms": 600, "artifact": "done"})
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "30", stdout=StringIO())
    assert list(Run.objects.filter(task=task).values_list("attempt", "status")) == [(1, "succeeded")]
    assert Artifact.objects.filter(task=task).count() == 1
    assert not HistoryEntry.objects.filter(task=task, event__in=[
        "run.cancelled", "run.lost", "run.cancel_ignored", "run.stale_result_refused"]).exists()


@pytest.mark.parametrize("ignore_cancel", [False, True], ids=["honoured", "ignored"])
def test_run_mission_in_a_transaction_fails_a_run_past_its_timeout_as_a_timeout(mission, agent, lead, beats,
                                                                                ignore_cancel):
    task = services.task_create(mission=mission, key="slow", title="Slow", owner_agent=agent, max_attempts=1,
                                timeout_seconds=1, config={"sleep_ms": 2500, "ignore_cancel": ignore_cancel})
    started = time.monotonic()
    with pytest.raises(CommandError, match="failed"):
        call_command("run_mission", str(mission.pk), "--wait", "--timeout", "30", stdout=StringIO())
    (run,) = Run.objects.filter(task=task)
    assert (run.status, run.error, run.result["failure"]) == ("failed", "Timed out after 1 s.", "timeout")
    assert Task.objects.get(pk=task.pk).status == TaskStatus.FAILED
    ignored = HistoryEntry.objects.filter(run=run, event="run.cancel_ignored")
    if ignore_cancel:
        assert time.monotonic() - started >= 2.5  # it slept its full time; nothing killed this process
        assert ignored.get().data["reason"] == "timed out"
    else:
        assert time.monotonic() - started < 2.5
        assert not ignored.exists()


# Outside a test transaction (the runs' threads work on their own connections, as cluster workers would), with the
# queue's jobs recorded, not run (``enqueued``): only the command works on the runs.


def _fan_out(mission, agent, *, sleep_ms: int):
    first = services.task_create(mission=mission, key="first", title="First", owner_agent=agent)
    branches = [services.task_create(mission=mission, key=f"branch{i}", title=f"Branch {i}", owner_agent=agent,
                                     config={"sleep_ms": sleep_ms, "artifact": f"b{i}"}) for i in range(3)]
    last = services.task_create(mission=mission, key="last", title="Last", owner_agent=agent)
    for branch in branches:
        services.dependency_add(task=branch, depends_on=first)
        services.dependency_add(task=last, depends_on=branch)
    return branches


def _spans(tasks):
    runs = Run.objects.filter(task__in=tasks, status="succeeded")
    return sorted((run.started_at, run.finished_at) for run in runs)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("given", [True, False], ids=["--workers", "the cluster's count"])
def test_run_mission_with_workers_runs_independent_runs_side_by_side(mission, agent, lead, enqueued, settings, given):
    if connection.vendor == "sqlite":
        pytest.skip("the in-memory test database's shared cache takes table locks that fail at once (SQLITE_LOCKED) "
                    "instead of waiting as the platform's WAL file does; the 1M benchmark runs this on SQLite")
    branches = _fan_out(mission, agent, sleep_ms=700)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False, "workers": 3}
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "60", *(["--workers", "3"] if given else []),
                 stdout=StringIO())
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED
    spans = _spans(branches)
    assert len(spans) == 3
    # Each branch started before any other finished: the three worked at once, each run claimed once.
    assert max(start for start, _ in spans) < min(end for _, end in spans)
    assert Run.objects.filter(task__mission=mission).count() == 5
    assert Artifact.objects.filter(task__in=branches).count() == 3
    assert not HistoryEntry.objects.filter(task__mission=mission, event__in=[
        "run.claim_refused", "run.lost", "run.stale_result_refused", "run.cancelled"]).exists()


@pytest.mark.django_db(transaction=True)
def test_run_mission_with_one_worker_runs_one_run_at_a_time(mission, agent, lead, enqueued):
    branches = _fan_out(mission, agent, sleep_ms=200)
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "60", "--workers", "1", stdout=StringIO())
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED
    spans = _spans(branches)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))


def test_run_mission_refuses_no_workers(mission):
    with pytest.raises(CommandError, match="--workers"):
        call_command("run_mission", str(mission.pk), "--workers", "-1", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_run_mission_with_workers_looks_again_when_the_history_moves(mission, agent, lead, enqueued, monkeypatch):
    if connection.vendor == "sqlite":
        pytest.skip("the in-memory test database's shared cache takes table locks that fail at once (SQLITE_LOCKED) "
                    "instead of waiting as the platform's WAL file does; the 1M benchmark runs this on SQLite")
    slow = services.task_create(mission=mission, key="slow", title="Slow", owner_agent=agent,
                                config={"sleep_ms": 2500})
    spec = services.task_create(mission=mission, key="spec", title="Spec", owner_agent=agent,
                                config={"needs_approval": "spec v1"})
    after = services.task_create(mission=mission, key="after", title="After", owner_agent=agent)
    services.dependency_add(task=after, depends_on=spec)
    looks = []
    decide = driver.auto_decide
    monkeypatch.setattr(driver, "auto_decide", lambda m: looks.append(time.monotonic()) or decide(m))
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "60", "--workers", "2", "--auto-approve",
                 stdout=StringIO())
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED
    # The approval and the run after it happened while the slow run still worked: the spec's run changed the
    # history, and the driver looked at once instead of waiting for a thread to finish.
    slow_run, after_run = (Run.objects.get(task=t, status="succeeded") for t in (slow, after))
    assert after_run.finished_at < slow_run.finished_at
    # While nothing changed it looked twice a second, not twenty times (once per 50 ms wait).
    assert len(looks) <= 14, len(looks)
