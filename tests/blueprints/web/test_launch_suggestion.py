"""The launch page's language-model suggestion (off unless configured): a blueprint and parameters from a free-text
objective, checked against the blueprint before they pre-fill the form; nothing is launched until the person does.
Every suggestion is stored for the person who asked (staff see them all); a mission launched from one takes its
exchange and its tokens; each person has a daily budget, after which the page offers the rule-based suggestions."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.llm import mission_usage
from blueprints.models import LaunchSuggestion
from history.models import HistoryEntry
from missions.models import Mission
from tasks.models import Artifact
from tests.agents.llm_stub import KEY
from tests.blueprints.web.test_launch_and_dashboard import blueprints, source  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

OBJECTIVE = "Keep two years of weather observations loaded, fed from the bronze connection"
SUGGESTION = {"blueprint": "weather-feed", "name": "Weather, two years",
              "params": {"months": 24, "source_connection": "BRONZE", "colour": "blue"},
              "reasoning": "The objective is about weather observations over two years."}


def ask(client, objective=OBJECTIVE):
    return client.post(reverse("blueprints:launch"), {"objective": objective, "suggest": "1"})


def test_without_a_model_there_is_no_suggest_button(client_for, lead, blueprints):  # noqa: F811
    content = client_for(lead).get(reverse("blueprints:launch"), {"objective": OBJECTIVE}).content.decode()
    assert 'name="suggest"' not in content


def test_a_checked_suggestion_prefills_the_form_and_launches_nothing(client_for, lead, blueprints, source,  # noqa: F811
                                                                     llm_stub):
    llm_stub.reply(json=SUGGESTION, prompt_tokens=900, completion_tokens=60)
    client = client_for(lead)
    page = client.get(reverse("blueprints:launch"), {"objective": OBJECTIVE, "suggest": "1"})
    assert 'name="suggest"' in page.content.decode()
    assert llm_stub.requests == []  # a GET (a reload, a prefetch) never asks the model
    content = ask(client).content.decode()
    assert "Suggested: Weather feed" in content and "weather observations over two years" in content
    assert 'value="Weather, two years"' in content and 'name="param__months"' in content and 'value="24"' in content
    assert "left out, they did not fit the blueprint: colour" in content
    sent = llm_stub.requests[0]["body"]["messages"][1]["content"]
    assert "weather-feed" in sent and "claims-refresh" in sent and OBJECTIVE in sent
    assert not Mission.objects.exists()
    stored = LaunchSuggestion.objects.get()
    assert (stored.user, stored.outcome, stored.tokens, stored.model) == (lead, "ok", 960, "stub-model")
    assert stored.blueprint_version == blueprints[1] and stored.mission is None
    assert stored.exchange["response"] == json.dumps(SUGGESTION)
    assert stored.exchange["validation"]["dropped"] == ["colour"] and OBJECTIVE in json.dumps(stored.exchange)
    assert f'name="suggestion" value="{stored.pk}"' in content


def test_a_mission_launched_from_a_suggestion_takes_its_exchange_and_tokens(client_for, lead, llm_stub,
                                                                            blueprints, source):  # noqa: F811
    llm_stub.reply(json=SUGGESTION, prompt_tokens=900, completion_tokens=60)
    client = client_for(lead)
    ask(client)
    stored = LaunchSuggestion.objects.get()
    response = client.post(reverse("blueprints:launch"), {
        "version": blueprints[1].pk, "name": "Weather, two years", "mode": "step", "objective": OBJECTIVE,
        "param__source_connection": "BRONZE", "param__months": "24", "suggestion": stored.pk})
    mission = Mission.objects.get(name="Weather, two years")
    assert response.status_code == 302, response.content.decode()[:2000]
    stored.refresh_from_db()
    assert stored.mission == mission and stored.launched_at is not None
    call = HistoryEntry.objects.get(mission=mission, event="llm.call")
    assert call.data["tokens"] == 960 and call.data["followed"] is True and call.data["suggestion"] == stored.pk
    assert call.actor_user == lead
    record = json.loads(Artifact.objects.get(mission=mission, name=f"llm-launch-suggestion-{stored.pk}.json")
                        .file.read())
    assert record["answer"] == SUGGESTION and record["completion_tokens"] == 60 and KEY not in json.dumps(record)
    usage = mission_usage(mission.pk)
    assert (usage.calls, usage.tokens) == (1, 960)  # what the mission's budget reads
    cockpit = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert "language model: 1 call, 960 tokens" in cockpit and f"llm-launch-suggestion-{stored.pk}.json" in cockpit
    history = client.get(reverse("missions:history", args=[mission.pk])).content.decode()
    assert "suggest a blueprint before the launch" in history


def test_a_suggestion_launches_once_and_only_for_who_asked(client_for, lead, admin_user, llm_stub,
                                                           blueprints, source):  # noqa: F811
    llm_stub.reply(json=SUGGESTION)
    ask(client_for(lead))
    stored = LaunchSuggestion.objects.get()
    form = {"version": blueprints[1].pk, "name": "Weather", "mode": "step", "objective": OBJECTIVE,
            "param__source_connection": "BRONZE", "param__months": "24", "suggestion": stored.pk}
    refused = client_for(admin_user).post(reverse("blueprints:launch"), form)
    assert refused.status_code == 422
    assert f"Suggestion {stored.pk} is not one you asked for" in refused.content.decode()
    assert not Mission.objects.exists()  # all or nothing
    assert client_for(lead).post(reverse("blueprints:launch"), form).status_code == 302
    again = client_for(lead).post(reverse("blueprints:launch"), {**form, "name": "Weather again"})
    assert again.status_code == 422 and "already launched a mission" in again.content.decode()
    assert list(Mission.objects.values_list("name", flat=True)) == ["Weather"]
    bad = client_for(lead).post(reverse("blueprints:launch"), {**form, "suggestion": "x"})
    assert bad.status_code == 422 and "The suggestion must be a suggestion&#x27;s number." in bad.content.decode()


def test_unfollowed_suggestions_are_listed_for_staff(client_for, lead, admin_user, blueprints, llm_stub):  # noqa: F811
    llm_stub.reply(json=SUGGESTION).reply(json={"blueprint": "no-such-blueprint"})
    ask(client_for(lead))
    ask(client_for(lead), "Claims refreshed daily")
    assert list(LaunchSuggestion.objects.order_by("pk").values_list("outcome", "mission")) == [
        ("ok", None), ("not_listed", None)]
    url = reverse("admin:blueprints_launchsuggestion_changelist")
    assert client_for(lead).get(url).status_code == 302  # not staff: the admin's sign-in page
    listing = client_for(admin_user).get(url).content.decode()
    assert "not_listed" in listing and "lead" in listing
    detail = client_for(admin_user).get(reverse("admin:blueprints_launchsuggestion_change",
                                                args=[LaunchSuggestion.objects.get(outcome="ok").pk]))
    assert "weather observations over two years" in detail.content.decode()


def test_a_spent_daily_budget_is_refused_politely_with_the_rule_based_suggestions(client_for, lead, admin_user,
                                                                                  llm_stub, settings,
                                                                                  blueprints):  # noqa: F811
    settings.GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY = 2
    settings.GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY = 0
    for _ in range(4):
        llm_stub.reply(json=SUGGESTION)
    client = client_for(lead)
    ask(client)
    ask(client)
    refused = ask(client)
    content = refused.content.decode()
    assert refused.status_code == 200 and len(llm_stub.requests) == 2  # the third was not sent
    assert "No language-model suggestion now: you have had your 2 suggestions of the last 24 hours" in content
    assert content.index("Weather feed") < content.index("Claims refresh") and "check-passed\">Suggested" in content
    refusal = LaunchSuggestion.objects.get(outcome="budget")  # stored, with no call and no tokens
    assert (LaunchSuggestion.objects.count(), refusal.user, refusal.tokens) == (3, lead, 0)
    assert 'name="suggestion" value=' not in content  # nothing to launch from
    ask(client)  # a refusal is not a call: still refused, not for a growing count
    assert len(llm_stub.requests) == 2
    ask(client_for(admin_user))  # another person's budget is their own
    assert len(llm_stub.requests) == 3
    LaunchSuggestion.objects.filter(user=lead).exclude(outcome="budget").update(
        created_at=timezone.now() - timedelta(days=1, minutes=1))
    assert "Suggested: Weather feed" in ask(client_for(lead)).content.decode()  # a day later it is whole again
    assert len(llm_stub.requests) == 4


def test_a_spent_token_budget_stops_asking(client_for, lead, blueprints, llm_stub, settings):  # noqa: F811
    settings.GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY = 1000
    llm_stub.reply(json=SUGGESTION, prompt_tokens=950, completion_tokens=50).reply(json=SUGGESTION)
    client = client_for(lead)
    ask(client)
    content = ask(client).content.decode()
    assert "your suggestions of the last 24 hours have used their 1,000 tokens" in content
    assert len(llm_stub.requests) == 1


@pytest.mark.parametrize(("reply", "outcome"), [({"json": {"blueprint": "no-such-blueprint"}}, "not_listed"),
                                                ({"status": 500, "body": b"x"}, "server_error"),
                                                ({"content": "weather-feed"}, "malformed")])
def test_an_unusable_suggestion_leaves_the_form_to_the_person(client_for, lead, blueprints, llm_stub,  # noqa: F811
                                                              reply, outcome):
    for _ in range(3):
        llm_stub.reply(**reply)
    response = ask(client_for(lead))
    assert response.status_code == 200
    content = response.content.decode()
    assert "No suggestion this time" in content and 'name="suggestion" value=' not in content
    assert LaunchSuggestion.objects.get().outcome == outcome  # recorded all the same
