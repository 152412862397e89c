"""The missions and tasks lists answer repeated reads from a cache keyed by the caller, the URL and the newest history
entry: a change made through the services shows at once, another caller never gets someone else's page."""

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from missions import services as mission_services
from tasks import services
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def cache_on(settings):
    settings.GENESIS_API_LIST_CACHE_SECONDS = 30
    caches["api"].clear()
    yield
    caches["api"].clear()


def test_a_repeated_read_is_served_from_the_cache_with_fewer_queries(as_user, lead, mission):
    client = as_user(lead)
    first = client.get("/api/v1/missions/")
    assert first.status_code == 200 and first["X-Genesis-Cache"] == "miss"
    with CaptureQueriesContext(connection) as ctx:
        again = client.get("/api/v1/missions/")
    assert again.status_code == 200 and again["X-Genesis-Cache"] == "hit"
    assert again.json() == first.json()
    assert len(ctx.captured_queries) <= 2  # the token, the newest history id
    assert "Authorization" in again["Vary"]


def test_a_change_through_a_service_shows_on_the_next_read(as_user, lead, mission):
    client = as_user(lead)
    before = client.get("/api/v1/missions/").json()
    assert [m["name"] for m in before["results"]] == [mission.name]
    mission_services.mission_update(mission=mission, actor=lead, name="Renamed by the owner")
    after = client.get("/api/v1/missions/")
    assert after["X-Genesis-Cache"] == "miss"
    assert [m["name"] for m in after.json()["results"]] == ["Renamed by the owner"]

    tasks_url = f"/api/v1/tasks/?mission={mission.pk}"
    assert client.get(tasks_url).json()["count"] == 0
    services.task_create(mission=mission, key="t1", title="Profile", owner_agent=AgentFactory())
    assert client.get(tasks_url).json()["count"] == 1


def test_each_caller_and_each_query_has_its_own_entry(as_user, lead, viewer, outsider, mission):
    assert as_user(lead).get("/api/v1/missions/").json()["count"] == 1
    assert as_user(outsider).get("/api/v1/missions/").json()["count"] == 0  # not the lead's cached page
    viewer_page = as_user(viewer).get("/api/v1/missions/").json()
    assert viewer_page["results"][0]["my_role"] == "stakeholder"
    assert as_user(lead).get("/api/v1/missions/?status=closed").json()["count"] == 0


def test_permissions_still_apply_to_a_cached_page(as_user, lead, mission):
    client = as_user(lead)
    assert client.get("/api/v1/missions/").status_code == 200
    assert as_user(None).get("/api/v1/missions/").status_code == 401


def test_the_cache_can_be_turned_off(settings, as_user, lead, mission):
    settings.GENESIS_API_LIST_CACHE_SECONDS = 0
    client = as_user(lead)
    client.get("/api/v1/missions/")
    assert "X-Genesis-Cache" not in client.get("/api/v1/missions/")
