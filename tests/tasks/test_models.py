import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tasks.models import Dependency, Run, Task
from tests.factories import AgentFactory, MissionFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_task_has_exactly_one_owner_in_the_database():
    mission = MissionFactory()
    user, agent = UserFactory(), AgentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.create(mission=mission, key="both", title="Both", owner_user=user, owner_agent=agent)
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.create(mission=mission, key="none", title="None")
    Task.objects.create(mission=mission, key="person", title="Person", owner_user=user)
    Task.objects.create(mission=mission, key="agent", title="Agent", owner_agent=agent)
    assert sorted(Task.objects.values_list("key", flat=True)) == ["agent", "person"]


def test_clean_names_the_owner_fields():
    task = TaskFactory.build(mission=MissionFactory(), owner_agent=None, owner_user=None)
    with pytest.raises(ValidationError) as error:
        task.full_clean()
    assert "owner_user" in error.value.message_dict


def test_task_keys_are_unique_within_a_mission_only():
    first = TaskFactory(key="profile")
    with pytest.raises(IntegrityError), transaction.atomic():
        TaskFactory(key="profile", mission=first.mission)
    TaskFactory(key="profile")  # another mission
    assert Task.objects.filter(key="profile").count() == 2


def test_the_database_refuses_a_dependency_across_missions():
    a, b = TaskFactory(), TaskFactory()
    assert a.mission_id != b.mission_id
    with pytest.raises(IntegrityError, match="same mission"), transaction.atomic():
        Dependency.objects.create(task=a, depends_on=b)
    assert not Dependency.objects.exists()


def test_the_database_refuses_self_and_duplicate_dependencies():
    a = TaskFactory()
    b = TaskFactory(mission=a.mission)
    with pytest.raises(IntegrityError), transaction.atomic():
        Dependency.objects.create(task=a, depends_on=a)
    Dependency.objects.create(task=a, depends_on=b)
    with pytest.raises(IntegrityError), transaction.atomic():
        Dependency.objects.create(task=a, depends_on=b)
    assert Dependency.objects.count() == 1


def test_the_database_allows_one_live_run_per_task():
    task = TaskFactory()
    Run.objects.create(task=task, attempt=1, status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(task=task, attempt=2, status="queued")
    Run.objects.create(task=task, attempt=2, status="lost")
    assert task.runs.count() == 2
