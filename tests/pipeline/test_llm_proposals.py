"""A language model's proposals for mapping questions, against a local stub of the chat API: a proposal that is
proven becomes the question's suggested answer; one that fails the checks leaves the question as it was."""

import json
import sqlite3

import pytest

from agents.base import NeedsApproval, NeedsInput
from history.models import HistoryEntry
from tasks.models import Artifact
from tests.agents.llm_stub import StubLLM
from tests.pipeline.test_answers import library_spec  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def stub(settings):
    with StubLLM() as server:
        settings.GENESIS_LLM_BASE_URL = server.base_url
        settings.GENESIS_LLM_MODEL = "stub-model"
        settings.GENESIS_LLM_API_KEY = "sk-proposals"
        settings.GENESIS_LLM_TIMEOUT_SECONDS = 2.0
        yield server


def fines_by_member(path):
    db = sqlite3.connect(path)
    loans = dict(db.execute('SELECT "LoanId", "MemberId" FROM "Loan"').fetchall())
    want = {member: 0 for (member,) in db.execute('SELECT "MemberId" FROM "Member"')}
    for loan, cents in db.execute('SELECT "LoanId", "AmountCents" FROM "Fine"'):
        want[loans[loan]] += cents
    db.close()
    return {k: v / 100 for k, v in want.items()}


def test_a_proven_proposal_becomes_the_suggested_answer(mission, run_agent, library_spec, stub):  # noqa: F811
    stub.reply(json={"sql": "COALESCE(SUM(Fine.AmountCents), 0) / 100.0",
                     "reasoning": "Fines are in cents, reached from members through their loans."})
    asked = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(asked.outcome, NeedsInput)
    assert asked.outcome.default == "sql: COALESCE(SUM(Fine.AmountCents), 0) / 100.0"
    suggested = asked.outcome.context["suggested"]
    assert suggested["by"] == "language model" and "dry run gives 80 rows" in suggested["checked"]
    assert "Fines are in cents" in asked.outcome.question
    sent = stub.requests[0]["body"]["messages"][1]["content"]
    assert "MEMBER_FINES" in sent and "AmountCents" in sent and "Fines owed, in dollars." in sent
    record = json.loads(Artifact.objects.get(name="llm-proposal-MEMBER_FINES-TOTAL_FINES.json").file.read())
    assert record["validation"]["passed"] is True and record["outcome"] == "ok"
    # The person confirms the suggestion: the target is built from it, every cell right.
    confirmed = run_agent("field_mapping", mission=mission, config=library_spec, answers=[
        {"question": asked.outcome.question, "answer": asked.outcome.default, "context": asked.outcome.context}])
    assert isinstance(confirmed.outcome, NeedsApproval), confirmed.outcome
    from agents.models import Connection
    from pipeline.models import MappingSpecVersion

    sql = MappingSpecVersion.objects.order_by("-number").first().content["sql"]
    path = Connection.objects.get(name=library_spec["source_connection"]).location
    db = sqlite3.connect(path)
    got = dict(db.execute(sql).fetchall())
    db.close()
    assert got == fines_by_member(path)


@pytest.mark.parametrize("proposal", [
    {"sql": "SUM(Fine.Cents)"},  # a column the source does not have
    {"sql": "SUM(Payroll.Amount)"},  # a table the mission may not read
    {"sql": "SUM(Fine.AmountCents); DROP TABLE Fine"},  # not one expression
])
def test_a_proposal_that_fails_the_checks_leaves_the_question_as_it_was(mission, run_agent, library_spec,  # noqa: F811
                                                                        stub, proposal):
    stub.reply(json={**proposal, "reasoning": "a guess"})
    asked = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(asked.outcome, NeedsInput)
    assert "suggested" not in asked.outcome.context and asked.outcome.default != f"sql: {proposal['sql']}"
    assert "language model" not in asked.outcome.question
    record = json.loads(Artifact.objects.get(name="llm-proposal-MEMBER_FINES-TOTAL_FINES.json").file.read())
    assert record["validation"]["passed"] is False and record["validation"]["refused"]


@pytest.mark.parametrize("reply", [{"status": 503, "body": b"down"}, {"content": "not json"},
                                   {"json": {"reasoning": "no answer at all"}}])
def test_a_fault_falls_back_to_the_plain_question(mission, run_agent, library_spec, stub, reply):  # noqa: F811
    for _ in range(3):
        stub.reply(**reply)
    asked = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(asked.outcome, NeedsInput) and "suggested" not in asked.outcome.context
    assert HistoryEntry.objects.filter(event="llm.call").exclude(data__outcome="ok").count() == 1


def test_without_a_model_the_question_is_the_rules_alone(mission, run_agent, library_spec):  # noqa: F811
    asked = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(asked.outcome, NeedsInput) and "suggested" not in asked.outcome.context
    assert not HistoryEntry.objects.filter(event__startswith="llm.").exists()
