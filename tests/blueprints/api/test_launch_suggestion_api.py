"""The launch suggestion over the API: the same ask, checks, storage and budget as the launch page, and the launch
endpoints taking the suggestion's id with the page's checks (only who asked, only once)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.llm import mission_usage
from blueprints.models import LaunchSuggestion
from blueprints.selectors import launch_suggestion_usage
from history.models import HistoryEntry
from missions.models import Mission
from tasks.models import Artifact
from tests.agents.llm_stub import KEY
from tests.blueprints.web.test_launch_and_dashboard import blueprints, source  # noqa: F401 - fixtures
from tests.blueprints.web.test_launch_suggestion import OBJECTIVE, SUGGESTION

pytestmark = pytest.mark.django_db

SUGGEST = "/api/v1/blueprints/suggest/"


def launch_body(**extra):
    return {"name": "Weather, two years", "objective": OBJECTIVE,
            "params": {"source_connection": "BRONZE", "months": 24}, **extra}


def test_without_a_model_the_answer_says_so_with_the_rule_based_suggestions(as_user, lead, blueprints):  # noqa: F811
    response = as_user(lead).post(SUGGEST, {"objective": "Weather observations load hourly"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["outcome"], body["suggestion"], body["blueprint"]) == (False, "off", None, None)
    assert "No language model is configured" in body["detail"]
    assert [s["blueprint"] for s in body["rule_based"]][0] == "weather-feed"
    assert not LaunchSuggestion.objects.exists()


def test_a_checked_suggestion_is_answered_stored_and_launches_nothing(as_user, lead, blueprints, source,  # noqa: F811
                                                                      llm_stub):
    llm_stub.reply(json=SUGGESTION, prompt_tokens=900, completion_tokens=60)
    response = as_user(lead).post(SUGGEST, {"objective": OBJECTIVE}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    stored = LaunchSuggestion.objects.get()
    assert body["suggestion"] == stored.pk and (body["model"], body["outcome"]) == (True, "ok")
    assert (body["blueprint"], body["version"], body["name"]) == ("weather-feed", 1, "Weather, two years")
    assert body["params"] == {"months": 24, "source_connection": "BRONZE"} and body["dropped"] == ["colour"]
    assert body["reasoning"] == SUGGESTION["reasoning"]
    assert (stored.user, stored.tokens, stored.blueprint_version) == (lead, 960, blueprints[1])
    assert KEY not in response.content.decode()
    assert not Mission.objects.exists()


def test_a_blueprint_launch_from_the_suggestion_takes_its_exchange_and_tokens(as_user, lead, blueprints,  # noqa: F811
                                                                              source, llm_stub):  # noqa: F811
    llm_stub.reply(json=SUGGESTION, prompt_tokens=900, completion_tokens=60)
    client = as_user(lead)
    suggestion = client.post(SUGGEST, {"objective": OBJECTIVE}, format="json").json()["suggestion"]
    response = client.post(f"/api/v1/blueprints/{blueprints[1].blueprint.slug}/launch/",
                           launch_body(suggestion=suggestion), format="json")
    assert response.status_code == 201, response.json()
    mission = Mission.objects.get(pk=response.json()["id"])
    stored = LaunchSuggestion.objects.get(pk=suggestion)
    assert stored.mission == mission and stored.launched_at is not None
    call = HistoryEntry.objects.get(mission=mission, event="llm.call")
    assert (call.data["tokens"], call.data["followed"], call.actor_user) == (960, True, lead)
    assert Artifact.objects.filter(mission=mission, name=f"llm-launch-suggestion-{suggestion}.json").exists()
    assert (mission_usage(mission.pk).calls, mission_usage(mission.pk).tokens) == (1, 960)


def test_a_suggestion_launches_once_and_only_for_who_asked_on_both_endpoints(as_user, lead, admin_user, llm_stub,
                                                                             blueprints, source):  # noqa: F811
    llm_stub.reply(json=SUGGESTION)
    suggestion = as_user(lead).post(SUGGEST, {"objective": OBJECTIVE}, format="json").json()["suggestion"]
    launch = f"/api/v1/blueprints/{blueprints[1].blueprint_id}/launch/"
    refused = as_user(admin_user).post(launch, launch_body(suggestion=suggestion), format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"suggestion": [f"Suggestion {suggestion} is not one you asked for; launch "
                                                       "without it."]}
    assert not Mission.objects.exists()  # all or nothing
    missions = "/api/v1/missions/"
    first = as_user(lead).post(missions, launch_body(blueprint="weather-feed", suggestion=suggestion), format="json")
    assert first.status_code == 201, first.json()
    again = as_user(lead).post(launch, launch_body(name="Weather again", suggestion=suggestion), format="json")
    assert again.status_code == 400 and "already launched a mission" in again.json()["errors"]["suggestion"][0]
    also = as_user(lead).post(missions, launch_body(name="Weather again", blueprint="weather-feed",
                                                    suggestion=suggestion), format="json")
    assert also.status_code == 400 and "already launched a mission" in also.json()["errors"]["suggestion"][0]
    bad = as_user(lead).post(launch, launch_body(name="Weather bad", suggestion="x"), format="json")
    assert bad.status_code == 400 and "suggestion" in bad.json()["errors"]
    assert list(Mission.objects.values_list("name", flat=True)) == ["Weather, two years"]
    assert LaunchSuggestion.objects.get().mission.name == "Weather, two years"


@pytest.mark.parametrize("who", ["viewer", "outsider", "analyst"])
def test_who_may_not_launch_may_not_ask(as_user, mission, actors, blueprints, llm_stub, who):  # noqa: F811
    """A stakeholder or task owner of a mission, or someone with no role, may not launch: no suggestion either."""
    response = as_user(actors[who]).post(SUGGEST, {"objective": OBJECTIVE}, format="json")
    assert response.status_code == 403
    assert llm_stub.requests == [] and not LaunchSuggestion.objects.exists()
    assert as_user(None).post(SUGGEST, {"objective": OBJECTIVE}, format="json").status_code in (401, 403)


@pytest.mark.parametrize("objective", ["", "   ", None, "x" * 100_001])
def test_a_missing_or_blank_objective_is_refused_naming_it(as_user, lead, blueprints, llm_stub,  # noqa: F811
                                                           objective):
    body = {} if objective is None else {"objective": objective}
    response = as_user(lead).post(SUGGEST, body, format="json")
    assert response.status_code == 400 and "objective" in response.json()["errors"]
    assert llm_stub.requests == []


def test_a_spent_budget_is_answered_stored_and_cannot_be_launched_from(as_user, lead, admin_user, llm_stub,
                                                                       settings, blueprints, source,  # noqa: F811
                                                                       client_for):
    settings.GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY = 1
    settings.GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY = 0
    llm_stub.reply(json=SUGGESTION).reply(json=SUGGESTION)
    client = as_user(lead)
    assert client.post(SUGGEST, {"objective": OBJECTIVE}, format="json").json()["outcome"] == "ok"
    refused = client.post(SUGGEST, {"objective": "Weather observations load hourly"}, format="json")
    body = refused.json()
    assert refused.status_code == 200 and len(llm_stub.requests) == 1  # no call made
    assert (body["outcome"], body["suggestion"]) == ("budget", None)
    assert body["detail"] == "you have had your 1 suggestions of the last 24 hours"
    assert body["rule_based"][0]["blueprint"] == "weather-feed"
    stored = LaunchSuggestion.objects.get(outcome="budget")
    assert (stored.user, stored.tokens, stored.blueprint_version, stored.model) == (lead, 0, None, "stub-model")
    assert stored.exchange["detail"] == body["detail"] and stored.exchange["sent"] is False
    # A refusal is not a call: asking again is refused for the same reason, not for a growing count.
    client.post(SUGGEST, {"objective": OBJECTIVE}, format="json")
    assert LaunchSuggestion.objects.filter(outcome="budget").count() == 2
    calls, tokens = launch_suggestion_usage(user=lead, since=timezone.now() - timedelta(days=1))
    assert (calls, tokens) == (1, LaunchSuggestion.objects.get(outcome="ok").tokens)
    launch = client.post(f"/api/v1/blueprints/{blueprints[1].blueprint_id}/launch/",
                         launch_body(suggestion=stored.pk), format="json")
    assert launch.status_code == 400 and "was refused" in launch.json()["errors"]["suggestion"][0]
    assert not Mission.objects.exists()
    listing = client_for(admin_user).get("/admin/blueprints/launchsuggestion/?outcome=budget").content.decode()
    assert "budget" in listing and "lead" in listing
    detail = client_for(admin_user).get(f"/admin/blueprints/launchsuggestion/{stored.pk}/change/")
    assert body["detail"] in detail.content.decode().replace("&#x27;", "'")


def test_the_schema_describes_the_suggestion(as_user, lead):
    schema = json.dumps(as_user(lead).get("/api/schema/", {"format": "json"}).json())
    assert "/api/v1/blueprints/suggest/" in schema and "BlueprintSuggestion" in schema
    assert "Suggest a blueprint and parameters" in schema and "rule_based" in schema


@pytest.mark.parametrize("objective", [0, ["weather"], {"text": "weather"}, True])
def test_an_objective_that_is_not_text_is_refused(as_user, lead, blueprints, llm_stub, objective):  # noqa: F811
    response = as_user(lead).post(SUGGEST, {"objective": objective}, format="json")
    assert response.status_code == 400 and response.json()["errors"]["objective"] == ["Not a valid string."]
    assert llm_stub.requests == []
