import uuid

import pytest

from genesis.exceptions import DomainError, InvalidTransition
from history.models import HistoryEntry
from tasks import services
from tasks.choices import PHASE_TRANSITIONS, RUN_TRANSITIONS, TASK_TRANSITIONS, PhaseStatus, RunStatus, TaskStatus
from tasks.models import Phase, Run, Task
from tests.factories import PhaseFactory, TaskFactory

pytestmark = pytest.mark.django_db


def pairs(values):
    return [(a, b) for a in values for b in values if a != b]


@pytest.mark.parametrize(("start", "to"), pairs(TaskStatus.values))
def test_task_transition_follows_the_table(agent, start, to):
    task = TaskFactory(owner_agent=agent)
    Task.objects.filter(pk=task.pk).update(status=start)
    task.refresh_from_db()
    if to in TASK_TRANSITIONS[start]:
        services.task_transition(task=task, to=to, message="because")
        task.refresh_from_db()
        assert task.status == to
        entry = HistoryEntry.objects.get(task=task)
        assert (entry.event, entry.from_status, entry.to_status, entry.message) == (
            f"task.{to}", start, to, "because"
        )
    else:
        with pytest.raises(InvalidTransition) as error:
            services.task_transition(task=task, to=to)
        assert f"from {start} to {to}" in error.value.message
        task.refresh_from_db()
        assert task.status == start
        assert not HistoryEntry.objects.filter(task=task).exists()


@pytest.mark.parametrize(("start", "to"), pairs(RunStatus.values))
def test_run_transition_follows_the_table(agent, start, to):
    run = Run.objects.create(task=TaskFactory(owner_agent=agent), attempt=1, status=start)
    if to in RUN_TRANSITIONS[start]:
        services.run_transition(run=run, to=to)
        run.refresh_from_db()
        assert run.status == to
        assert HistoryEntry.objects.get(run=run).to_status == to
    else:
        with pytest.raises(InvalidTransition):
            services.run_transition(run=run, to=to)
        run.refresh_from_db()
        assert run.status == start
        assert not HistoryEntry.objects.filter(run=run).exists()


@pytest.mark.parametrize(("start", "to"), pairs(PhaseStatus.values))
def test_phase_transition_follows_the_table(start, to):
    phase = PhaseFactory()
    Phase.objects.filter(pk=phase.pk).update(status=start)
    phase.refresh_from_db()
    if to in PHASE_TRANSITIONS.get(start, ()):
        services.phase_transition(phase=phase, to=to)
        phase.refresh_from_db()
        assert phase.status == to
    else:
        with pytest.raises(InvalidTransition):
            services.phase_transition(phase=phase, to=to)
        phase.refresh_from_db()
        assert phase.status == start


def test_a_stale_expectation_is_refused_instead_of_overwriting(agent):
    task = TaskFactory(owner_agent=agent, status=TaskStatus.READY)
    services.task_transition(task=task, to=TaskStatus.QUEUED, expected=TaskStatus.READY)
    with pytest.raises(DomainError, match="changed meanwhile"):
        services.task_transition(task=task, to=TaskStatus.RUNNING, expected=TaskStatus.READY)
    task.refresh_from_db()
    assert task.status == TaskStatus.QUEUED


def test_a_run_result_without_the_current_lease_is_refused_and_recorded(agent):
    task = TaskFactory(owner_agent=agent)
    run = services.run_create(task=task)
    token = uuid.uuid4()
    services.run_transition(run=run, to=RunStatus.RUNNING, worker="w1", lease_token=token)
    with pytest.raises(DomainError, match="no longer held"):
        services.run_transition(run=run, to=RunStatus.SUCCEEDED, held_token=uuid.uuid4(), require_token=True)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert HistoryEntry.objects.filter(run=run, event="run.stale_result_refused").count() == 1
    services.run_transition(run=run, to=RunStatus.SUCCEEDED, held_token=token, require_token=True,
                            result={"rows": 3})
    run.refresh_from_db()
    assert (run.status, run.result, run.lease_token) == (RunStatus.SUCCEEDED, {"rows": 3}, None)
    assert run.started_at and run.finished_at


def test_run_create_numbers_attempts_and_refuses_a_second_live_run(agent):
    task = TaskFactory(owner_agent=agent)
    first = services.run_create(task=task)
    with pytest.raises(DomainError, match="already has a live run"):
        services.run_create(task=task)
    services.run_transition(run=first, to=RunStatus.LOST)
    second = services.run_create(task=task)
    assert (first.attempt, second.attempt) == (1, 2)


def test_no_code_outside_services_assigns_status():
    """The convention, checked: ``.status =`` appears only in services (and migrations/tests)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for app in ("genesis", "missions", "tasks", "agents", "blueprints"):
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "services.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\.status\s*=(?!=)", line):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []
