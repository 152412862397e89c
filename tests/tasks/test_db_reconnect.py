"""A worker whose database connection fails under it (killed, a failover, a server restart) reconnects and records
the run itself, instead of leaving it to expire as lost and spending one of the task's attempts. Here the failure
is simulated (an ``OperationalError`` from the statements that record or claim the run); a connection really
killed under a cluster worker (``pg_terminate_backend``) is in test_worker_faults.py."""

import pytest
from django.db import OperationalError, connection

from history.models import HistoryEntry
from missions.choices import MissionStatus
from missions.models import Mission
from tasks import runtime, services
from tasks.choices import RunStatus, TaskStatus
from tasks.models import Artifact, Run, Task
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db(transaction=True)  # the worker reconnects: no test transaction around it


class Drops:
    """A database connection that fails the first ``times`` statements that set a run to ``status``, as a killed
    connection fails the first statement sent on it."""

    def __init__(self, status: str, times: int, *, table: str = Run._meta.db_table, verb: str = "UPDATE"):
        self.status, self.times, self.table, self.verb, self.dropped = status, times, table, verb, 0

    def __call__(self, execute, sql, params, many, context):
        if (self.dropped < self.times and sql.lstrip().upper().startswith(self.verb)
                and self.table in sql and (not self.status or self.status in (params or ()))):
            self.dropped += 1
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


def one_task(mission, agent, **fields) -> Task:
    return services.task_create(mission=mission, key="work", title="work", owner_agent=agent, **fields)


def test_a_connection_lost_while_recording_a_success_is_reconnected_and_the_attempt_kept(mission, agent, lead):
    task = one_task(mission, agent)
    drops = Drops(RunStatus.SUCCEEDED, times=2)
    with connection.execute_wrapper(drops):
        mission_workflows.mission_launch(mission=mission, actor=lead)  # sync mode: the run executes here
    assert drops.dropped == 2
    runs = list(Run.objects.filter(task=task))
    assert [(r.attempt, r.status) for r in runs] == [(1, RunStatus.SUCCEEDED)]
    assert Task.objects.get(pk=task.pk).status == TaskStatus.DONE
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED
    note = HistoryEntry.objects.get(run=runs[0], event="run.db_reconnected")
    assert note.data["recorded"] == "succeeded" and len(note.data["failures"]) == 2
    assert "server closed the connection unexpectedly" in note.message and "on try 3" in note.message
    # Recorded once: the rolled-back tries left nothing behind.
    assert HistoryEntry.objects.filter(run=runs[0], event="run.succeeded").count() == 1
    assert HistoryEntry.objects.filter(task=task, event="task.done").count() == 1


def test_a_connection_lost_while_recording_a_failure_spends_only_the_failed_attempt(mission, agent, lead):
    task = one_task(mission, agent, max_attempts=3, config={"fail_attempts": 1})
    drops = Drops(RunStatus.FAILED, times=1)
    with connection.execute_wrapper(drops):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert drops.dropped == 1
    runs = list(Run.objects.filter(task=task).order_by("attempt").values_list("attempt", "status"))
    assert runs == [(1, RunStatus.FAILED), (2, RunStatus.SUCCEEDED)]
    assert HistoryEntry.objects.filter(task=task, event="run.db_reconnected").count() == 1
    assert not Run.objects.filter(task=task, status=RunStatus.LOST).exists()


def test_a_connection_lost_while_claiming_is_reconnected(mission, agent, lead):
    task = one_task(mission, agent)
    drops = Drops(RunStatus.RUNNING, times=1)
    with connection.execute_wrapper(drops):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert drops.dropped == 1
    assert list(Run.objects.filter(task=task).values_list("attempt", "status")) == [(1, RunStatus.SUCCEEDED)]


def test_a_connection_lost_under_the_agent_is_reconnected_for_it(mission, agent, lead):
    task = one_task(mission, agent, max_attempts=1, config={"artifact": "the report"})
    drops = Drops("", times=1, table=Artifact._meta.db_table, verb="INSERT")
    with connection.execute_wrapper(drops):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert drops.dropped == 1
    assert list(Run.objects.filter(task=task).values_list("attempt", "status")) == [(1, RunStatus.SUCCEEDED)]
    assert list(Artifact.objects.filter(task=task).values_list("name", flat=True)) == ["work-report.txt"]


def test_a_connection_that_stays_lost_is_not_tried_forever(mission, agent, lead, monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # the run waits in the ORM broker's table; this test executes it
    task = one_task(mission, agent)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = Run.objects.get(task=task)
    drops = Drops(RunStatus.SUCCEEDED, times=runtime.DB_ATTEMPTS)
    with connection.execute_wrapper(drops), pytest.raises(OperationalError):
        runtime.execute_run(run.pk)
    assert drops.dropped == runtime.DB_ATTEMPTS
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING  # left to its lease: the sweep marks it lost
