"""Fixtures for the page tests: clients signed in as the named actors, and missions of several sizes."""

import pytest

from tasks.models import Dependency, Phase, Task
from tests.factories import MissionFactory, UserFactory
from tests.web.browser import browser_context  # noqa: F401  (the Playwright fixture)


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider")


@pytest.fixture
def client_for(client):
    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


def build_mission_graph(mission, *, tasks: int, phases: int = 3, agent=None, user=None) -> list[Task]:
    """``tasks`` tasks spread over ``phases`` phases, each depending on the one before (bulk, no history)."""
    phase_rows = Phase.objects.bulk_create(
        [Phase(mission=mission, order=i + 1, name=f"Phase {i + 1}") for i in range(phases)]
    )
    rows = []
    for i in range(tasks):
        owner = {"owner_agent": agent} if agent is not None else {"owner_user": user or mission.owner}
        rows.append(Task(mission=mission, key=f"t{i:04d}", title=f"Task number {i}", position=i,
                         phase=phase_rows[i * phases // tasks], **owner))
    created = Task.objects.bulk_create(rows)
    Dependency.objects.bulk_create(
        [Dependency(task=created[i], depends_on=created[i - 1]) for i in range(1, len(created))]
    )
    return created


@pytest.fixture
def big_mission(lead, agent):
    mission = MissionFactory(owner=lead, name="Large mission")
    build_mission_graph(mission, tasks=500, phases=5, agent=agent)
    return mission
