"""A worker whose database connection fails under it (killed, a failover, a server restart) reconnects and records
the run itself, instead of leaving it to expire as lost and spending one of the task's attempts. Here the failure
is simulated (an ``OperationalError`` from the statements that record or claim the run); a connection really
killed under a cluster worker (``pg_terminate_backend``) is in test_worker_faults.py."""

import sqlite3
import uuid

import pytest
from django.db import OperationalError, connection

from agents.models import Agent
from genesis.exceptions import DomainError
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

    def __init__(self, status: str, times: int, *, table: str = Run._meta.db_table, verb: str = "UPDATE",
                 contains: str = ""):
        self.status, self.times, self.table, self.verb, self.dropped = status, times, table, verb, 0
        self.contains = contains

    def __call__(self, execute, sql, params, many, context):
        if (self.dropped < self.times and sql.lstrip().upper().startswith(self.verb)
                and self.table in sql and self.contains in sql
                and (not self.status or self.status in (params or ()))):
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


AGENTS_OWN_READ = f'AS "a" FROM "{Agent._meta.db_table}"'  # the noop agent's ``db_read_ms`` (an ``exists()``)


class Killed:
    """The platform database connection killed under the agent: the agent's own read (the noop agent's
    ``db_read_ms``) finds it dead, and so does every statement after it until the connection is closed and opened
    again, as with a connection the server terminated. It is killed on the first ``kills`` such reads made once a
    statement containing ``after`` has run (an artifact's validation reads the same row: ``after`` its INSERT, the
    read is the agent's own)."""

    def __init__(self, kills: int, *, after: str = ""):
        self.kills, self.killed, self.dead, self.failed = kills, 0, False, 0
        self.after, self.armed = after, not after

    def __call__(self, execute, sql, params, many, context):
        self.armed = self.armed or self.after in sql
        if self.armed and not self.dead and self.killed < self.kills and AGENTS_OWN_READ in sql:
            self.dead, self.killed = True, self.killed + 1
        if self.dead:
            self.failed += 1
            raise OperationalError("terminating connection due to administrator command")
        return execute(sql, params, many, context)

    def install(self, monkeypatch):
        close = connection.close

        def reopened():
            self.dead = False
            close()
        monkeypatch.setattr(connection, "close", reopened)
        return connection.execute_wrapper(self)


def reading_task(mission, agent, **fields) -> Task:
    return one_task(mission, agent, config={"sleep_ms": 300, "db_read_ms": 50}, **fields)


def test_a_connection_lost_under_the_agents_own_query_reruns_the_attempt_without_counting_it(mission, agent, lead,
                                                                                             monkeypatch):
    task = reading_task(mission, agent, max_attempts=1)
    killed = Killed(kills=1)
    with killed.install(monkeypatch):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert killed.killed == 1 and killed.failed >= 2  # the agent's read and the worker's probe of the connection
    runs = list(Run.objects.filter(task=task))
    assert [(r.attempt, r.status) for r in runs] == [(1, RunStatus.SUCCEEDED)]
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED
    (rerun,) = HistoryEntry.objects.filter(run=runs[0], event="run.db_rerun")
    assert rerun.data["rerun"] == 1 and rerun.data["reruns"] == runtime.DB_RERUNS
    assert "terminating connection due to administrator command" in rerun.data["errors"][0]
    assert "does not count as another attempt" in rerun.message
    assert "lost under the agent" in runs[0].log


def test_a_connection_lost_under_the_agent_again_and_again_fails_the_attempt_after_the_bound(mission, agent, lead,
                                                                                             monkeypatch):
    task = reading_task(mission, agent, max_attempts=2)
    killed = Killed(kills=runtime.DB_RERUNS + 1)
    with killed.install(monkeypatch):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert killed.killed == runtime.DB_RERUNS + 1
    first, second = Run.objects.filter(task=task).order_by("attempt")
    assert (first.status, second.status) == (RunStatus.FAILED, RunStatus.SUCCEEDED)
    assert f"lost under the agent {runtime.DB_RERUNS + 1} times" in first.error
    assert [e.data["rerun"] for e in HistoryEntry.objects.filter(run=first, event="run.db_rerun").order_by("pk")] == [
        1, 2]
    assert not HistoryEntry.objects.filter(run=second, event="run.db_rerun").exists()


def test_a_database_error_on_a_connection_that_still_works_is_the_agents_failure(mission, agent, lead):
    task = reading_task(mission, agent, max_attempts=2)
    drops = Drops("", times=1, table=Agent._meta.db_table, verb="SELECT", contains=AGENTS_OWN_READ)
    with connection.execute_wrapper(drops):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert drops.dropped == 1
    first, second = Run.objects.filter(task=task).order_by("attempt")
    assert (first.status, second.status) == (RunStatus.FAILED, RunStatus.SUCCEEDED)
    assert first.error == "OperationalError: server closed the connection unexpectedly"
    assert not HistoryEntry.objects.filter(task=task, event="run.db_rerun").exists()


def test_only_the_platform_databases_own_errors_on_a_dead_connection_count_as_its_loss(monkeypatch):
    killed = Killed(kills=0)
    connection.ensure_connection()  # open, as a worker's is when its agent starts
    opened = connection.connection
    with killed.install(monkeypatch):
        # The connection the agent started on still answers: not lost.
        assert not runtime.platform_connection_lost(OperationalError("dead"), opened=opened)
        # Replaced since (Django drops a connection whose rollback failed, and may open a new one at once): lost.
        assert runtime.platform_connection_lost(OperationalError("dead"), opened=object())
        killed.dead = True
        try:
            raise RuntimeError("the agent wrapped it") from OperationalError("dead")
        except RuntimeError as wrapped:
            assert runtime.platform_connection_lost(wrapped, opened=opened)
        # A source's or warehouse's driver error (what the connectors raise) is never the platform's loss.
        assert not runtime.platform_connection_lost(sqlite3.OperationalError("database is locked"), opened=opened)
        assert not runtime.platform_connection_lost(ValueError("bad input"), opened=opened)
        connection.close()
    assert not killed.dead


def test_a_rerun_leaves_one_artifact_where_the_lost_try_stored_one(mission, agent, lead, monkeypatch):
    task = one_task(mission, agent, max_attempts=1, config={"sleep_ms": 300, "db_read_ms": 50,
                                                           "artifact": "rows: 12", "artifact_first": True})
    killed = Killed(kills=1, after=f'INSERT INTO "{Artifact._meta.db_table}"')
    with killed.install(monkeypatch):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert killed.killed == 1
    (run,) = Run.objects.filter(task=task)
    assert run.status == RunStatus.SUCCEEDED
    assert HistoryEntry.objects.filter(run=run, event="run.db_rerun").count() == 1
    # The lost try had stored the report before the loss; the rerun wrote it again and found it there.
    assert list(Artifact.objects.filter(task=task).values_list("name", "version", "run")) == [
        ("work-report.txt", 1, run.pk)]
    assert HistoryEntry.objects.filter(run=run, event="artifact.created").count() == 1


def test_a_runs_artifact_is_stored_once_per_content_and_only_under_its_lease(mission, agent, lead, monkeypatch,
                                                                           django_assert_max_num_queries):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    task = one_task(mission, agent)
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run, token = runtime._claim(Run.objects.get(task=task).pk)

    def store(content, held=token):
        return services.artifact_store_for_run(run=run, token=held, kind="report", name="out.csv", content=content)
    first = store("a,b\n1,2\n")
    assert store(b"a,b\n1,2\n").pk == first.pk  # the same bytes again: the same artifact
    second = store("a,b\n1,3\n")
    assert (first.version, second.version) == (1, 2)
    assert store("a,b\n1,3\n").pk == second.pk
    assert store("a,b\n1,2\n").version == 3  # the newest is compared: going back is a new version
    # Locks, the newest version, the new row and its history entry; not the relations and uniqueness again.
    with django_assert_max_num_queries(14):
        assert store("a,b\n1,4\n").version == 4
    with pytest.raises(DomainError) as refused:
        store("stale", held=uuid.uuid4())
    assert refused.value.code == "stale_lease"
    Run.objects.filter(pk=run.pk).update(status=RunStatus.LOST)  # swept: its next attempt may write meanwhile
    with pytest.raises(DomainError):
        store("a,b\n9,9\n")
    assert Artifact.objects.filter(task=task).count() == 4


def catching_task(mission, agent, **fields) -> Task:
    return one_task(mission, agent, config={"sleep_ms": 300, "db_read_ms": 50, "catch_db_errors": True}, **fields)


def test_an_agent_that_catches_the_lost_connection_and_fails_is_rerun_too(mission, agent, lead, monkeypatch):
    task = catching_task(mission, agent, max_attempts=1)
    killed = Killed(kills=1)
    with killed.install(monkeypatch):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert killed.killed == 1
    (run,) = Run.objects.filter(task=task)
    assert run.status == RunStatus.SUCCEEDED
    (rerun,) = HistoryEntry.objects.filter(run=run, event="run.db_rerun")
    assert "the agent failed (Could not read the platform database" in rerun.data["errors"][0]
    assert "after the platform database connection it worked on was lost" in rerun.data["errors"][0]


def test_an_agent_that_catches_the_lost_connection_every_time_fails_after_the_bound(mission, agent, lead,
                                                                                  monkeypatch):
    task = catching_task(mission, agent, max_attempts=2)
    killed = Killed(kills=runtime.DB_RERUNS + 1)
    with killed.install(monkeypatch):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    first, second = Run.objects.filter(task=task).order_by("attempt")
    assert (first.status, second.status) == (RunStatus.FAILED, RunStatus.SUCCEEDED)
    assert f"lost under the agent {runtime.DB_RERUNS + 1} times" in first.error
    assert HistoryEntry.objects.filter(run=first, event="run.db_rerun").count() == runtime.DB_RERUNS


def test_a_failure_after_the_engine_reconnected_for_the_agent_is_the_agents_own(mission, agent, lead):
    task = one_task(mission, agent, max_attempts=2, config={"artifact": "x", "artifact_first": True,
                                                           "fail_attempts": 1})
    drops = Drops("", times=1, table=Artifact._meta.db_table, verb="INSERT")
    with connection.execute_wrapper(drops):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    assert drops.dropped == 1  # the write reconnected: a new connection, but the agent saw no loss
    first, second = Run.objects.filter(task=task).order_by("attempt")
    assert (first.status, second.status) == (RunStatus.FAILED, RunStatus.SUCCEEDED)
    assert first.error == "noop told to fail attempt 1"
    assert not HistoryEntry.objects.filter(task=task, event="run.db_rerun").exists()
