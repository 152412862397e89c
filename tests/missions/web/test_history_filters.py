"""The history page and the API filter history with the same filters and parameter names."""

import pytest
from django.urls import reverse

from history.services import history_record
from tests.factories import AgentFactory, MissionFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(lead):
    mission = MissionFactory(owner=lead)
    profile = TaskFactory(mission=mission, key="profile")
    build = TaskFactory(mission=mission, key="build")
    agent = AgentFactory(name="profiler-bot")
    history_record(mission=mission, task=profile, event="run.succeeded", actor=agent, message="profiled by the agent")
    history_record(mission=mission, task=build, event="task.approved", actor=lead, message="build approved by lead")
    history_record(mission=mission, task=build, event="run.failed", actor=None, message="build failed at night")
    return mission


@pytest.mark.parametrize(("params", "shown", "hidden"), [
    ({"task_key": "profile"}, ["profiled by the agent"], ["build approved", "build failed"]),
    ({"actor_kind": "user"}, ["build approved by lead"], ["profiled", "build failed"]),
    ({"actor": "profiler-bot"}, ["profiled by the agent"], ["build approved", "build failed"]),
    ({"task_key": "build", "actor_kind": "system"}, ["build failed at night"], ["profiled", "build approved"]),
])
def test_page_and_api_take_the_same_parameters(client_for, lead, story, params, shown, hidden):
    client = client_for(lead)
    page = client.get(reverse("missions:history", args=[story.pk]), params).content.decode()
    api = client.get("/api/v1/history/", {**params, "mission": story.pk})
    assert api.status_code == 200
    api_messages = " | ".join(entry["message"] for entry in api.json()["results"])
    for text in shown:
        assert text in page and text in api_messages
    for text in hidden:
        assert text not in page and text not in api_messages


def test_a_bad_filter_value_is_named_on_the_page_not_a_500(client_for, lead, story):
    response = client_for(lead).get(reverse("missions:history", args=[story.pk]), {"actor_kind": "robot"})
    assert response.status_code == 200
    content = response.content.decode()
    assert "actor_kind" in content and "robot" in content
    assert "profiled by the agent" not in content
