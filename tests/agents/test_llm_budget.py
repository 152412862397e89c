"""Two requests of one person, or two workers of one mission, asking the language model at the same instant: the
budget holds. Each call reserves its share (one call, an upper bound of its tokens) in a short transaction that
locks the budget holder's row and commits before the call; the call's record replaces the reservation. Real
threads and real transactions here (no test transaction around them), against the stub server, which counts the
requests that reach it."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from agents.llm import Assistant, budget, mission_usage
from agents.llm import client as llm_client
from agents.models import LLMBudget, LLMReservation
from blueprints.assist import budget_spent, suggest_launch
from blueprints.models import LaunchSuggestion
from history.models import HistoryEntry
from tests.factories import MissionFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = {"summary": "The source file was missing.", "cause": "no file"}
SCHEMA = {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}
MESSAGES = [{"role": "system", "content": "Explain."}, {"role": "user", "content": "Run 3 failed: file not found."}]


def file_or_server_database():
    """Racing writers need a database that makes them wait: PostgreSQL, or SQLite in a file (what runs). The
    in-memory SQLite test database shares one cache between connections, which refuses a second writer at once
    ("database table is locked") instead of waiting; ``GENESIS_TEST_DB_NAME=/tmp/x.sqlite3`` gives a file."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("two writers at once need PostgreSQL or a SQLite file (GENESIS_TEST_DB_NAME)")


def in_threads(*targets):
    """Run each target in its own thread (its own database connection), started together; their results."""
    start = threading.Barrier(len(targets))
    results, errors = [None] * len(targets), []

    def run(i, target):
        try:
            start.wait()
            results[i] = target()
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


def test_two_requests_of_one_person_for_their_last_suggestion_make_one_call(llm_stub, settings):
    file_or_server_database()
    settings.GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY = 1
    user = UserFactory()
    for _ in range(2):  # the first to reserve holds the budget while the stub is slow to answer
        llm_stub.reply(json={"blueprint": "none-listed"}, delay=0.5, prompt_tokens=300, completion_tokens=20)
    results = in_threads(lambda: suggest_launch("load the weather", [], user=user),
                         lambda: suggest_launch("load the weather", [], user=user))
    assert len(llm_stub.requests) == 1
    assert sorted(r.outcome for r in results) == ["budget", "not_listed"]
    assert sorted(LaunchSuggestion.objects.filter(user=user).values_list("outcome", "prompt_tokens")) == [
        ("budget", 0), ("not_listed", 300)]  # the call settled at its actual tokens
    assert not LLMReservation.objects.exists()


def test_two_workers_of_one_mission_for_its_last_call_make_one_call(llm_stub, settings):
    file_or_server_database()
    settings.GENESIS_LLM_MAX_CALLS_PER_MISSION = 3
    mission = MissionFactory()
    for _ in range(2):
        HistoryEntry.objects.create(mission=mission, event="llm.call", data={"tokens": 100})
    for _ in range(2):
        llm_stub.reply(json=ANSWER, delay=0.5, prompt_tokens=200, completion_tokens=30)
    results = in_threads(lambda: Assistant(mission_id=mission.pk).ask("explain", MESSAGES, SCHEMA),
                         lambda: Assistant(mission_id=mission.pk).ask("explain", MESSAGES, SCHEMA))
    assert len(llm_stub.requests) == 1
    assert sorted(r.outcome for r in results) == ["budget", "ok"]
    usage = mission_usage(mission.pk)
    assert (usage.calls, usage.tokens) == (3, 430)
    assert HistoryEntry.objects.filter(mission=mission, event="llm.skipped").count() == 1
    assert not LLMReservation.objects.exists()


def test_a_call_in_flight_holds_no_lock_and_counts_its_reserved_tokens(llm_stub, settings):
    settings.GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY = 0
    settings.GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY = 5
    user = UserFactory()
    llm_stub.reply(json={"blueprint": "none-listed"}, delay=1.5)
    called = threading.Event()
    original = llm_client.complete

    def complete(*args, **kwargs):
        called.set()
        return original(*args, **kwargs)

    llm_client.complete, done = complete, []
    try:
        slow = threading.Thread(target=lambda: (done.append(suggest_launch("load", [], user=user)),
                                                connection.close()))
        slow.start()
        assert called.wait(10)
        # While the slow call is at the model: the same person's budget is read and a second call reserved (the
        # holder's row locked and written) without waiting for it.
        in_flight = LLMReservation.objects.get(budget__owner=f"user:{user.pk}")
        assert in_flight.tokens > 800  # the most the answer may take, plus the prompt's estimate
        assert budget_spent(user) == ""
        second = budget.reserve(f"user:{user.pk}", tokens=10, lifetime=timedelta(minutes=5),
                                refusal=lambda held: budget_spent(user, held))
        assert second.pk is not None and slow.is_alive() and not done
        settings.GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY = 2  # the call in flight and the second hold both
        assert budget_spent(user, budget.Held(calls=2)) == "you have had your 2 suggestions of the last 24 hours"
        refused = budget.reserve(f"user:{user.pk}", tokens=10, lifetime=timedelta(minutes=5),
                                 refusal=lambda held: budget_spent(user, held))
        assert refused.pk is None and "2 suggestions" in refused.refused
        budget.released(second)
        slow.join(10)
    finally:
        llm_client.complete = original
    assert done[0].outcome == "not_listed"
    assert not LLMReservation.objects.exists()


def test_a_reserved_token_bound_refuses_a_concurrent_call_until_settled(settings):
    settings.GENESIS_LLM_MAX_TOKENS_PER_MISSION = 1000
    mission = MissionFactory()
    assistant = Assistant(mission_id=mission.pk)
    lifetime = budget.call_lifetime(assistant.config)
    first = budget.reserve(f"mission:{mission.pk}", tokens=budget.token_bound(MESSAGES, 990), lifetime=lifetime,
                           refusal=lambda held: assistant._spent(mission.pk, held))
    assert first.pk is not None
    again = budget.reserve(f"mission:{mission.pk}", tokens=10, lifetime=lifetime,
                           refusal=lambda held: assistant._spent(mission.pk, held))
    assert again.pk is None and again.refused == "the mission's 1000 tokens are spent"
    with budget.settled(first):  # settled to the actual: 120 tokens
        HistoryEntry.objects.create(mission=mission, event="llm.call", data={"tokens": 120})
    after = budget.reserve(f"mission:{mission.pk}", tokens=10, lifetime=lifetime,
                           refusal=lambda held: assistant._spent(mission.pk, held))
    assert after.pk is not None
    assert LLMBudget.objects.filter(owner=f"mission:{mission.pk}").count() == 1


def test_a_call_that_raises_releases_its_reservation_and_a_stale_one_stops_counting(llm_stub, settings, monkeypatch):
    settings.GENESIS_LLM_MAX_CALLS_PER_MISSION = 1
    mission = MissionFactory()

    def broken(*args, **kwargs):
        raise RuntimeError("the connection pool is closed")

    monkeypatch.setattr(llm_client, "complete", broken)
    with pytest.raises(RuntimeError):
        Assistant(mission_id=mission.pk).ask("explain", MESSAGES, SCHEMA)
    assert not LLMReservation.objects.exists()
    assert mission_usage(mission.pk).calls == 0
    monkeypatch.undo()
    # A process that died mid-call leaves its reservation: counted while the call could still be running.
    left = LLMReservation.objects.create(budget=LLMBudget.objects.get(owner=f"mission:{mission.pk}"), tokens=900)
    assert Assistant(mission_id=mission.pk).ask("explain", MESSAGES, SCHEMA).outcome == "budget"
    assert len(llm_stub.requests) == 0
    LLMReservation.objects.filter(pk=left.pk).update(created_at=timezone.now() - timedelta(hours=1))
    llm_stub.reply(json=ANSWER)
    assert Assistant(mission_id=mission.pk).ask("explain", MESSAGES, SCHEMA).outcome == "ok"
    assert len(llm_stub.requests) == 1
    assert not LLMReservation.objects.exists()  # the stale one cleared when the next was reserved
