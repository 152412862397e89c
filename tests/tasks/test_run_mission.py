"""``manage.py run_mission``: headless runs through the workers' code path."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from missions.choices import MissionStatus
from tasks import services
from tasks.choices import TaskStatus
from tasks.models import Artifact, Question, Run

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
