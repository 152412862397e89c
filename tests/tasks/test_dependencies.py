import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from genesis.exceptions import DependencyCycle, DomainError
from history.models import HistoryEntry
from tasks import services
from tasks.models import Dependency, Task
from tests.factories import MissionFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(agent):
    mission = MissionFactory()
    keys = ["ingest", "stage", "model", "validate", "backfill"]
    tasks = {key: TaskFactory(mission=mission, key=key, owner_agent=agent) for key in keys}
    for before, after in zip(keys, keys[1:], strict=False):
        services.dependency_add(task=tasks[after], depends_on=tasks[before])
    return tasks


def test_adding_a_dependency_records_history(chain):
    entry = HistoryEntry.objects.filter(task=chain["stage"], event="dependency.added").get()
    assert entry.data == {"depends_on": "ingest"}


def test_refuses_a_self_dependency(chain):
    with pytest.raises(DependencyCycle) as error:
        services.dependency_add(task=chain["model"], depends_on=chain["model"])
    assert error.value.path == ["model", "model"]


def test_refuses_a_direct_cycle_naming_its_path(chain):
    with pytest.raises(DependencyCycle) as error:
        services.dependency_add(task=chain["validate"], depends_on=chain["backfill"])
    assert error.value.path == ["validate", "backfill", "validate"]
    assert "validate → backfill → validate" in error.value.message


def test_refuses_an_indirect_cycle_naming_its_path(chain):
    before = Dependency.objects.count()
    with pytest.raises(DependencyCycle) as error:
        services.dependency_add(task=chain["ingest"], depends_on=chain["backfill"])
    assert error.value.path == ["ingest", "backfill", "validate", "model", "stage", "ingest"]
    assert Dependency.objects.count() == before


def test_accepts_a_shortcut_that_is_not_a_cycle(chain):
    services.dependency_add(task=chain["backfill"], depends_on=chain["ingest"])
    assert chain["backfill"].depends_on.filter(key="ingest").exists()


def test_refuses_duplicates_and_other_missions(chain, agent):
    with pytest.raises(DomainError, match="already depends"):
        services.dependency_add(task=chain["stage"], depends_on=chain["ingest"])
    stranger = TaskFactory(owner_agent=agent)
    with pytest.raises(DomainError, match="own mission") as error:
        services.dependency_add(task=chain["stage"], depends_on=stranger)
    assert error.value.field == "depends_on"


def test_a_long_chain_is_checked_with_a_bounded_number_of_queries(agent):
    mission = MissionFactory()
    n = 5000
    Task.objects.bulk_create(
        [Task(mission=mission, key=f"k{i}", title=f"Step {i}", owner_agent=agent, position=i) for i in range(n)]
    )
    ids = list(Task.objects.filter(mission=mission).order_by("position").values_list("id", flat=True))
    Dependency.objects.bulk_create(
        [Dependency(task_id=ids[i + 1], depends_on_id=ids[i]) for i in range(n - 1)]
    )
    first, last = Task.objects.get(pk=ids[0]), Task.objects.get(pk=ids[-1])
    with CaptureQueriesContext(connection) as ctx, pytest.raises(DependencyCycle) as error:
        services.dependency_add(task=first, depends_on=last)
    assert len(ctx.captured_queries) <= 8
    assert len(error.value.path) == n + 1
    assert error.value.path[0] == error.value.path[-1] == "k0"
    assert error.value.path[1] == f"k{n - 1}"
