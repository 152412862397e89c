"""``manage.py run_mission``: headless runs through the workers' code path."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from history.models import HistoryEntry
from missions.choices import MissionStatus
from tasks import services
from tasks.choices import TaskStatus
from tasks.models import Artifact, Question, Run, Task

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
