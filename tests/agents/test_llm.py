"""Language-model assistance against a local stub of the OpenAI-compatible chat API (no network): a proposer whose
answers are checked, whose every fault falls back to the rules, whose key never shows."""

import json
import logging

import pytest
from django.urls import reverse

from agents.llm import Assistant, mission_usage, settings
from history.models import HistoryEntry
from missions.choices import MissionStatus
from tasks import services
from tasks.choices import TaskStatus
from tasks.models import Artifact, Run, Task
from tests.agents.llm_stub import KEY
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "required": ["expression"],
          "properties": {"expression": {"type": "string"}, "reasoning": {"type": "string"}}}
ASK = [{"role": "user", "content": "Which source column gives the customer's lifetime value?"}]


def test_off_by_default_nothing_is_called_or_recorded(mission):
    assert not settings().enabled
    exchange = Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA)
    assert (exchange.outcome, exchange.data) == ("disabled", None)
    assert not HistoryEntry.objects.filter(mission=mission, event__startswith="llm.").exists()


def test_a_valid_answer_is_returned_and_recorded_with_its_cost(mission, llm_stub):
    llm_stub.reply(json={"expression": "SUM(payments.amount)", "reasoning": "payments via orders"},
                   prompt_tokens=300, completion_tokens=25)
    exchange = Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA)
    assert exchange.ok and exchange.data == {"expression": "SUM(payments.amount)", "reasoning": "payments via orders"}
    assert (exchange.model, exchange.tokens, exchange.attempts) == ("stub-model", 325, 1)
    sent = llm_stub.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    assert sent["body"]["model"] == "stub-model" and sent["body"]["messages"] == ASK
    entry = HistoryEntry.objects.get(mission=mission, event="llm.call")
    assert entry.data["tokens"] == 325 and entry.data["outcome"] == "ok"
    assert (mission_usage(mission.pk).calls, mission_usage(mission.pk).tokens) == (1, 325)


def test_a_rate_limit_is_waited_out_as_its_retry_after_says(mission, llm_stub):
    llm_stub.reply(status=429, headers={"Retry-After": "1"}, body=b'{"error": "slow down"}')
    llm_stub.reply(json={"expression": "x"})
    exchange = Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA)
    assert exchange.ok and exchange.attempts == 2 and len(llm_stub.requests) == 2


@pytest.mark.parametrize(("replies", "outcome", "calls"), [
    ([{"status": 429, "headers": {"Retry-After": "600"}, "body": b"{}"}], "rate_limited", 1),
    ([{"status": 503, "body": b"down"}] * 3, "server_error", 3),
    ([{"delay": 1.6, "json": {"expression": "late"}}] * 3, "timeout", 3),
    ([{"content": "SUM(amount) -- not JSON"}], "malformed", 1),
    ([{"json": {"reasoning": "no expression"}}], "schema", 1),
    ([{"json": ["a", "list"]}], "schema", 1),
    ([{"body": b'{"choices": []}'}], "malformed", 1),
    ([{"status": 401, "body": b'{"error": "bad key"}'}], "refused", 1),
])
def test_every_fault_falls_back_and_is_recorded(mission, llm_stub, settings, replies, outcome, calls):
    settings.GENESIS_LLM_TIMEOUT_SECONDS = 1.0  # the slow reply comes after 1.6 s
    for reply in replies:
        llm_stub.reply(**reply)
    exchange = Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA)
    assert (exchange.ok, exchange.data, exchange.outcome) == (False, None, outcome)
    assert len(llm_stub.requests) == calls
    assert HistoryEntry.objects.get(mission=mission, event="llm.call").data["outcome"] == outcome


def test_a_spent_budget_stops_calling(mission, llm_stub, settings):
    settings.GENESIS_LLM_MAX_CALLS_PER_MISSION = 1
    llm_stub.reply(json={"expression": "a"}).reply(json={"expression": "b"})
    assert Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA).ok
    second = Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA)
    assert (second.outcome, len(llm_stub.requests)) == ("budget", 1)
    settings.GENESIS_LLM_MAX_CALLS_PER_MISSION = 0
    settings.GENESIS_LLM_MAX_TOKENS_PER_MISSION = 100  # already 160 spent
    assert Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA).outcome == "budget"


def _fail_a_task(mission, agent, lead, django_capture_on_commit_callbacks):
    task = services.task_create(mission=mission, key="load", title="Load the files", owner_agent=agent,
                                config={"raise_attempts": 99}, max_attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        mission_workflows.mission_launch(mission=mission, actor=lead)
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    return task


def test_a_failed_run_is_explained_beside_its_error(mission, agent, lead, llm_stub, client,
                                                    django_capture_on_commit_callbacks):
    llm_stub.reply(json={"explanation": "The loader raised before reading any file.",
                         "likely_cause": "the agent was told to raise", "next_step": "Retry without raise_attempts."})
    task = _fail_a_task(mission, agent, lead, django_capture_on_commit_callbacks)
    run = Run.objects.get(task=task)
    explained = HistoryEntry.objects.get(mission=mission, event="run.explained")
    assert explained.run_id == run.pk and "raised before reading" in explained.message
    assert "Next step: Retry without raise_attempts." in explained.message
    prompt = llm_stub.requests[0]["body"]["messages"][1]["content"]
    assert "noop told to raise" in prompt and "Load the files" in prompt
    record = json.loads(Artifact.objects.get(mission=mission, name=f"llm-explain-run-{run.pk}.json").file.read())
    assert record["answer"]["explanation"].startswith("The loader") and record["prompt_tokens"] == 120
    client.force_login(lead)
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert "The loader raised before reading any file." in page
    assert Task.objects.get(pk=task.pk).status == TaskStatus.FAILED  # an explanation changes nothing


def test_a_failed_explanation_leaves_the_failure_as_it_was(mission, agent, lead, llm_stub,
                                                           django_capture_on_commit_callbacks):
    llm_stub.reply(status=500, body=b"x").reply(status=500, body=b"x").reply(status=500, body=b"x")
    task = _fail_a_task(mission, agent, lead, django_capture_on_commit_callbacks)
    assert not HistoryEntry.objects.filter(mission=mission, event="run.explained").exists()
    assert HistoryEntry.objects.get(mission=mission, event="llm.call").data["outcome"] == "server_error"
    mission.refresh_from_db()
    assert (task.status, mission.status) == (TaskStatus.FAILED, MissionStatus.FAILED)


def test_without_a_model_a_failure_enqueues_no_explanation(mission, agent, lead, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    import django_q.tasks

    jobs, real = [], django_q.tasks.async_task
    monkeypatch.setattr(django_q.tasks, "async_task", lambda func, *a, **k: (jobs.append(func), real(func, *a, **k)))
    _fail_a_task(mission, agent, lead, django_capture_on_commit_callbacks)
    assert "tasks.jobs.execute_run" in jobs or "tasks.jobs.execute_runs" in jobs  # the spy sees the engine's jobs
    assert not [job for job in jobs if "explain" in job]


def test_the_key_never_shows_in_logs_history_artifacts_or_the_api(mission, agent, lead, llm_stub, client, caplog,
                                                                   django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    llm_stub.reply(json={"explanation": "It failed."})
    _fail_a_task(mission, agent, lead, django_capture_on_commit_callbacks)
    Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA)  # a fault (nothing queued): its detail is logged
    assert KEY not in caplog.text
    for entry in HistoryEntry.objects.filter(mission=mission):
        assert KEY not in entry.message and KEY not in json.dumps(entry.data)
    for artifact in Artifact.objects.filter(mission=mission).exclude(file=""):
        assert KEY.encode() not in artifact.file.read()
    assert KEY not in repr(settings())
    client.force_login(lead)
    for url in ("/api/v1/history/", "/api/v1/artifacts/", f"/api/v1/missions/{mission.pk}/"):
        assert KEY not in client.get(url, {"mission": mission.pk} if "missions/" not in url else {}).content.decode()


def test_failed_checks_are_explained_beside_their_evidence(mission, lead, llm_stub, client):
    from blueprints.explain import phase_explain
    from blueprints.models import CheckEvaluation

    phase = services.phase_create(mission=mission, order=1, name="Build", exit_criteria=[], actor=lead)
    for to in ("open", "checking", "failed"):
        services.phase_transition(phase=phase, to=to, actor=lead)
    CheckEvaluation.objects.create(
        mission=mission, phase=phase, scope="exit", criterion_index=0, round=1, check_type="row_count",
        description="Claims backfilled", passed=False, message="0 rows; expected at least 1.",
        evidence={"query": "select count(*) from claim_summary", "value": 0})
    llm_stub.reply(json={"explanation": "CLAIM_SUMMARY is empty, so the backfill wrote nothing.",
                         "next_step": "Check that the build ran against the target."})
    assert phase_explain(phase.pk) == "explained"
    prompt = llm_stub.requests[0]["body"]["messages"][1]["content"]
    assert "Claims backfilled" in prompt and "select count(*) from claim_summary" in prompt
    client.force_login(lead)
    page = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert "CLAIM_SUMMARY is empty, so the backfill wrote nothing." in page
    assert page.index("CLAIM_SUMMARY is empty") < page.index("0 rows; expected at least 1.")
    llm_stub.reply(json={"explanation": 42})  # off-schema: nothing new is shown
    assert phase_explain(phase.pk) == "schema"
    assert HistoryEntry.objects.filter(mission=mission, event="check.explained").count() == 1


def test_the_cockpit_shows_what_the_mission_spent(mission, lead, llm_stub, client):
    llm_stub.reply(json={"expression": "a"}, prompt_tokens=1000, completion_tokens=234)
    Assistant(mission_id=mission.pk).ask("propose", ASK, SCHEMA)
    client.force_login(lead)
    page = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert "language model: 1 call, 1234 tokens" in page
