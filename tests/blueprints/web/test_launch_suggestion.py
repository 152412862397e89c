"""The launch page's language-model suggestion (off unless configured): a blueprint and parameters from a free-text
objective, checked against the blueprint before they pre-fill the form; nothing is launched until the person does."""

import pytest
from django.urls import reverse

from missions.models import Mission
from tests.agents.llm_stub import StubLLM
from tests.blueprints.web.test_launch_and_dashboard import blueprints, source  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

OBJECTIVE = "Keep two years of weather observations loaded, fed from the bronze connection"


@pytest.fixture
def stub(settings):
    with StubLLM() as server:
        settings.GENESIS_LLM_BASE_URL = server.base_url
        settings.GENESIS_LLM_MODEL = "stub-model"
        settings.GENESIS_LLM_TIMEOUT_SECONDS = 2.0
        yield server


def test_without_a_model_there_is_no_suggest_button(client_for, lead, blueprints):  # noqa: F811
    content = client_for(lead).get(reverse("blueprints:launch"), {"objective": OBJECTIVE}).content.decode()
    assert 'name="suggest"' not in content


def test_a_checked_suggestion_prefills_the_form_and_launches_nothing(client_for, lead, blueprints, source,  # noqa: F811
                                                                     stub):
    stub.reply(json={"blueprint": "weather-feed", "name": "Weather, two years",
                     "params": {"months": 24, "source_connection": "BRONZE", "colour": "blue"},
                     "reasoning": "The objective is about weather observations over two years."})
    client = client_for(lead)
    page = client.get(reverse("blueprints:launch"), {"objective": OBJECTIVE})
    assert 'name="suggest"' in page.content.decode()
    content = client.get(reverse("blueprints:launch"), {"objective": OBJECTIVE, "suggest": "1"}).content.decode()
    assert "Suggested: Weather feed" in content and "weather observations over two years" in content
    assert 'value="Weather, two years"' in content and 'name="param__months"' in content and 'value="24"' in content
    assert "left out, they did not fit the blueprint: colour" in content
    sent = stub.requests[0]["body"]["messages"][1]["content"]
    assert "weather-feed" in sent and "claims-refresh" in sent and OBJECTIVE in sent
    assert not Mission.objects.exists()


@pytest.mark.parametrize("reply", [{"json": {"blueprint": "no-such-blueprint"}}, {"status": 500, "body": b"x"},
                                   {"content": "weather-feed"}])
def test_an_unusable_suggestion_leaves_the_form_to_the_person(client_for, lead, blueprints, stub, reply):  # noqa: F811
    for _ in range(3):
        stub.reply(**reply)
    response = client_for(lead).get(reverse("blueprints:launch"), {"objective": OBJECTIVE, "suggest": "1"})
    assert response.status_code == 200
    assert "No suggestion this time" in response.content.decode()
