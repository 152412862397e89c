"""Every list endpoint costs the same number of queries whatever the page size: no N+1 can come back."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from blueprints.models import CheckEvaluation
from blueprints.services import blueprint_import
from pipeline import services as agent_services
from tasks import services
from tests.factories import MissionFactory, PhaseFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


def _populate(owner, agent, n: int):
    """n missions owned by ``owner``, each with two tasks (one person's, one agent's), an edge, a run,
    a phase, an artifact, history and a question."""
    person = UserFactory(username="worker")
    for i in range(n):
        mission = MissionFactory(owner=owner, name=f"M{i}")
        phase = PhaseFactory(mission=mission, order=1)
        a = TaskFactory(mission=mission, key=f"a{i}", owner_agent=agent, phase=phase)
        b = TaskFactory(mission=mission, key=f"b{i}", owner_user=person, owner_agent=None)
        services.dependency_add(task=b, depends_on=a, actor=owner)
        run = services.run_create(task=a, actor=owner)
        services.artifact_create(mission=mission, task=a, run=run, kind="sql", name=f"m{i}.sql", file=b"select 1",
                                 actor=agent)
        services.question_create(task=a, run=run, addressed_to=owner, text="Which?", options=["x", "y"])
        CheckEvaluation.objects.create(mission=mission, phase=phase, scope="exit", criterion_index=0,
                                       check_type="all_tasks_done", passed=False, message="Not yet.")
        agent_services.mapping_spec_propose(
            mission=mission, target_table=f"T{i}", dialect="sqlite", sql="SELECT 1 AS X",
            content={"columns": [{"name": "X", "source": "S.X"}]},
        )
        blueprint_import(text=f"slug: bp-{i}\nname: Blueprint {i}\nphases:\n- name: One\n  actions:\n"
                              f"  - {{key: a, title: A, owner: noop}}\n", filename=f"bp-{i}.yaml")


ENDPOINTS = [
    "/api/v1/missions/", "/api/v1/projects/", "/api/v1/tasks/", "/api/v1/todos/", "/api/v1/dependencies/",
    "/api/v1/runs/", "/api/v1/artifacts/", "/api/v1/history/", "/api/v1/phases/", "/api/v1/questions/",
    "/api/v1/connections/", "/api/v1/agents/", "/api/v1/blueprints/", "/api/v1/check-results/",
    "/api/v1/mapping-specs/",
]


def _count(client, url, size):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"page_size": size})
    assert response.status_code == 200, response.content
    return len(queries), len(response.json()["results"])


@pytest.mark.parametrize("url", ENDPOINTS)
def test_list_queries_do_not_grow_with_the_page(as_user, lead, agent, url, django_assert_max_num_queries):
    _populate(lead, agent, 12)
    client = as_user(lead)
    small_queries, small_rows = _count(client, url, 2)
    large_queries, large_rows = _count(client, url, 200)
    assert large_rows > small_rows or url.endswith(("/agents/", "/connections/"))
    assert large_queries == small_queries, f"{url}: {small_queries} queries for {small_rows} rows, " \
                                           f"{large_queries} for {large_rows}"
    with django_assert_max_num_queries(6):
        client.get(url, {"page_size": 200})


def test_staff_list_of_tasks_is_bounded_too(as_user, admin_user, lead, agent, django_assert_max_num_queries):
    _populate(lead, agent, 12)
    client = as_user(admin_user)
    with django_assert_max_num_queries(4):  # token, count, tasks with owners, their edges
        response = client.get("/api/v1/tasks/", {"page_size": 200})
    assert response.json()["count"] == 24
