"""genesis.fastsql writes and reads rows exactly as the ORM would (on SQLite and on PostgreSQL)."""

import uuid
from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from genesis import fastsql
from history.models import HistoryEntry
from tasks import runtime, services
from tasks.choices import RunStatus, TaskStatus
from tasks.models import Run, Task
from tests.factories import AgentFactory, MissionFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_insert_writes_every_column_in_order_with_its_defaults_and_types():
    mission = MissionFactory()
    agent = AgentFactory()
    task = services.task_create(mission=mission, key="a", title="a", owner_agent=agent)
    before = timezone.now()
    entries = [
        HistoryEntry(mission_id=mission.pk, task_id=task.pk, event=f"test.{i}", actor_kind="agent",
                     actor_agent=agent, message=f"entry {i} “quoted”", data={"i": i, "nested": {"ok": [1, None]}})
        for i in range(fastsql.INSERT_ROWS + 5)  # more than one statement's worth
    ]
    fastsql.insert(entries)
    stored = list(HistoryEntry.objects.filter(event__startswith="test.").order_by("id"))
    assert [e.event for e in stored] == [f"test.{i}" for i in range(fastsql.INSERT_ROWS + 5)]
    assert stored[7].data == {"i": 7, "nested": {"ok": [1, None]}}
    assert stored[7].message == "entry 7 “quoted”"
    assert stored[7].actor_agent_id == agent.pk and stored[7].run_id is None
    assert all(e.created_at >= before for e in stored)  # auto_now_add applied
    assert all(a.created_at <= b.created_at for a, b in zip(stored, stored[1:], strict=False))


def test_save_fields_writes_only_over_the_row_it_expects():
    mission = MissionFactory()
    task = services.task_create(mission=mission, key="a", title="a", owner_agent=AgentFactory())
    run = Run.objects.create(task=task, attempt=1)
    token = uuid.uuid4()
    stamp = timezone.now() + timedelta(seconds=30)
    run.status, run.lease_token, run.lease_expires_at, run.result = RunStatus.RUNNING, token, stamp, {"a": [1]}
    assert fastsql.save_fields(run, ["status", "lease_token", "lease_expires_at", "result"],
                               where={"status": RunStatus.QUEUED}) == 1
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.lease_token, stored.lease_expires_at, stored.result) == (
        RunStatus.RUNNING, token, stamp, {"a": [1]})
    # The guard no longer matches: nothing is written.
    run.status = RunStatus.SUCCEEDED
    assert fastsql.save_fields(run, ["status"], where={"status": RunStatus.QUEUED}) == 0
    assert fastsql.save_fields(run, ["status"], where={"lease_token": uuid.uuid4()}) == 0
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert fastsql.save_fields(run, ["status"], where={"status": RunStatus.RUNNING, "lease_token": token}) == 1
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    with pytest.raises(ValueError, match="NULL"):
        fastsql.save_fields(run, ["status"], where={"lease_token": None})


def test_save_fields_refreshes_auto_now_fields():
    task = services.task_create(mission=MissionFactory(), key="a", title="a", owner_agent=AgentFactory())
    old = Task.objects.get(pk=task.pk).updated_at
    task.status = TaskStatus.READY
    assert fastsql.save_fields(task, ["status", "updated_at"]) == 1
    stored = Task.objects.get(pk=task.pk)
    assert stored.status == TaskStatus.READY and stored.updated_at > old


@pytest.mark.parametrize("with_agent", [True, False])
def test_the_claims_joined_read_equals_the_orms(with_agent):
    owner = UserFactory()
    mission = MissionFactory(owner=owner, success_criteria=["rows > 0"])
    agent = AgentFactory(config={"sleep_ms": 5}) if with_agent else None
    task = services.task_create(mission=mission, key="a", title="a", owner_agent=agent,
                                owner_user=None if with_agent else owner, config={"k": ["v"]})
    run = Run.objects.create(task=task, attempt=1, lease_token=uuid.uuid4(), heartbeat_at=timezone.now(),
                             result={"x": 1.5})
    read = runtime._claim_select(run.pk)
    orm = Run.objects.select_related("task__mission", "task__owner_agent").get(pk=run.pk)
    assert model_to_dict(read) == model_to_dict(orm)
    assert (read.lease_token, read.heartbeat_at, read.created_at) == (orm.lease_token, orm.heartbeat_at,
                                                                       orm.created_at)
    assert model_to_dict(read.task) == model_to_dict(orm.task)
    assert model_to_dict(read.task.mission) == model_to_dict(orm.task.mission)
    assert read.task.mission.created_at == orm.task.mission.created_at
    if with_agent:
        assert model_to_dict(read.task.owner_agent) == model_to_dict(orm.task.owner_agent)
    else:
        assert read.task.owner_agent is None
    assert runtime._claim_select(run.pk + 1000) is None
