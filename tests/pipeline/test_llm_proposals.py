"""A language model's proposals for mapping questions, against a local stub of the chat API: a proposal that is
proven (parse, allowed columns, dry run, multiplied rows, reconciliation) becomes the question's suggested answer;
one that fails the checks leaves the question as it was."""

import json
import sqlite3

import pytest

from agents.base import NeedsApproval, NeedsInput
from history.models import HistoryEntry
from tasks.models import Artifact
from tests.pipeline.test_answers import library_spec  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def library_spec_path(spec):
    from agents.models import Connection

    return Connection.objects.get(name=spec["source_connection"]).location


def fines_by_member(path):
    db = sqlite3.connect(path)
    loans = dict(db.execute('SELECT "LoanId", "MemberId" FROM "Loan"').fetchall())
    want = {member: 0 for (member,) in db.execute('SELECT "MemberId" FROM "Member"')}
    for loan, cents in db.execute('SELECT "LoanId", "AmountCents" FROM "Fine"'):
        want[loans[loan]] += cents
    db.close()
    return {k: v / 100 for k, v in want.items()}


def test_a_proven_proposal_becomes_the_suggested_answer(mission, run_agent, library_spec, llm_stub):  # noqa: F811
    llm_stub.reply(json={"sql": "COALESCE(SUM(Fine.AmountCents), 0) / 100.0",
                     "reasoning": "Fines are in cents, reached from members through their loans."})
    asked = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(asked.outcome, NeedsInput)
    assert asked.outcome.default == "sql: COALESCE(SUM(Fine.AmountCents), 0) / 100.0"
    suggested = asked.outcome.context["suggested"]
    assert suggested["by"] == "language model" and "dry run gives 80 rows" in suggested["checked"]
    total = sum(fines_by_member(library_spec_path(library_spec)).values())
    assert f"TOTAL_FINES reconciles (target total {total:,.6g} = source total {total:,.6g})" in suggested["checked"]
    assert "Fines are in cents" in asked.outcome.question
    sent = llm_stub.requests[0]["body"]["messages"][1]["content"]
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
                                                                        llm_stub, proposal):
    llm_stub.reply(json={**proposal, "reasoning": "a guess"})
    asked = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(asked.outcome, NeedsInput)
    assert "suggested" not in asked.outcome.context and asked.outcome.default != f"sql: {proposal['sql']}"
    assert "language model" not in asked.outcome.question
    record = json.loads(Artifact.objects.get(name="llm-proposal-MEMBER_FINES-TOTAL_FINES.json").file.read())
    assert record["validation"]["passed"] is False and record["validation"]["refused"]


@pytest.mark.parametrize("reply", [{"status": 503, "body": b"down"}, {"content": "not json"},
                                   {"json": {"reasoning": "no answer at all"}}])
def test_a_fault_falls_back_to_the_plain_question(mission, run_agent, library_spec, llm_stub, reply):  # noqa: F811
    for _ in range(3):
        llm_stub.reply(**reply)
    asked = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(asked.outcome, NeedsInput) and "suggested" not in asked.outcome.context
    assert HistoryEntry.objects.filter(event="llm.call").exclude(data__outcome="ok").count() == 1


def test_without_a_model_the_question_is_the_rules_alone(mission, run_agent, library_spec):  # noqa: F811
    asked = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(asked.outcome, NeedsInput) and "suggested" not in asked.outcome.context
    assert not HistoryEntry.objects.filter(event__startswith="llm.").exists()


SHOP_MOVES = {"name": "SHOP_MOVES", "grain": {"entity": "shop"},
              "columns": [{"name": "SHOP_ID", "type": "INTEGER", "description": "shop id"},
                          {"name": "QTY", "type": "INTEGER", "expression": "SUM(moves.qty)"}]}
SHOP_ID = {"question": "SHOP_MOVES.SHOP_ID: which column?", "answer": "shops.id",
           "context": {"column": "SHOP_MOVES.SHOP_ID"}}


@pytest.fixture
def twins(tmp_path, source_for):
    """Shops and depots numbered alike (1..20) and stock moves whose ``site_id`` is a shop: which table a move
    belongs to, and by which column, only a person (or a proposal) can say; ``move_no`` (0..99) is a number that
    also fits the shops' ids."""
    import yaml

    path = tmp_path / "twins.sqlite3"
    db = sqlite3.connect(path)
    with db:
        db.executescript("CREATE TABLE shops(id INTEGER, name TEXT); CREATE TABLE depots(id INTEGER, name TEXT);"
                         "CREATE TABLE moves(move_no INTEGER, site_id INTEGER, qty INTEGER);")
        db.executemany("INSERT INTO shops VALUES (?, ?)", [(i, f"s{i}") for i in range(1, 21)])
        db.executemany("INSERT INTO depots VALUES (?, ?)", [(i, f"d{i}") for i in range(1, 21)])
        db.executemany("INSERT INTO moves VALUES (?, ?, ?)", [(i, 1 + i % 20, 1 + i % 7) for i in range(100)])
    db.close()
    connection = source_for(path)
    spec = tmp_path / "twins.yml"
    spec.write_text(yaml.safe_dump({
        "version": 1, "name": "Twins", "targets": {"tables": [SHOP_MOVES]},
        "sources": {"connection": connection.name, "allowed_tables": ["shops", "depots", "moves"]}}))
    return {"target": "SHOP_MOVES", "spec_path": str(spec), "source_connection": connection.name}


def test_a_relationship_that_reconciles_is_suggested_with_its_totals(mission, run_agent, twins, llm_stub):
    llm_stub.reply(json={"relationship": "moves.site_id = shops.id", "reasoning": "site_id holds shop ids"})
    asked = run_agent("field_mapping", mission=mission, config=twins, answers=[SHOP_ID])
    assert isinstance(asked.outcome, NeedsInput) and asked.outcome.context["column"] == "moves->shops"
    assert asked.outcome.default == "moves.site_id = shops.id"
    total = sum(1 + i % 7 for i in range(100))
    assert (f"QTY reconciles (target total {total:,} = source total {total:,})"
            in asked.outcome.context["suggested"]["checked"])
    record = json.loads(Artifact.objects.get(name="llm-proposal-SHOP_MOVES-moves-to-shops.json").file.read())
    assert record["validation"]["passed"] is True
    assert [(r["column"], r["target_total"], r["source_total"], r["passed"])
            for r in record["validation"]["reconciliation"]] == [("QTY", total, total, True)]


def test_a_proposal_joining_the_wrong_rows_passes_the_dry_run_but_fails_reconciliation(mission, run_agent, twins,
                                                                                        llm_stub, settings):
    """``moves.move_no = shops.id`` parses, names allowed columns, dry-runs (20 shops, none repeated), yet gives each
    shop the moves whose own number is its id: 20 of the 100 moves. The totals show it; the question stays."""
    settings.GENESIS_LLM_MODEL = ""  # the question as the rules alone ask it
    plain = run_agent("field_mapping", mission=mission, config=twins, answers=[SHOP_ID]).outcome
    settings.GENESIS_LLM_MODEL = "stub-model"
    llm_stub.reply(json={"relationship": "moves.move_no = shops.id", "reasoning": "both are small integers"})
    asked = run_agent("field_mapping", mission=mission, config=twins, answers=[SHOP_ID])
    assert isinstance(asked.outcome, NeedsInput) and asked.outcome.context["column"] == "moves->shops"
    assert "suggested" not in asked.outcome.context and "language model" not in asked.outcome.question
    assert (asked.outcome.question, asked.outcome.default) == (plain.question, plain.default)  # as it was
    record = json.loads(Artifact.objects.get(name="llm-proposal-SHOP_MOVES-moves-to-shops.json").file.read())
    validation = record["validation"]
    total = sum(1 + i % 7 for i in range(100))
    joined = sum(1 + i % 7 for i in range(1, 21))
    assert validation["passed"] is False and validation["answer"] == "moves.move_no = shops.id"
    assert [(r["column"], r["target_rows"], r["target_total"], r["source_total"], r["passed"])
            for r in validation["reconciliation"]] == [("QTY", 20, joined, total, False)]
    assert validation["refused"].startswith(f"reconciliation of QTY failed: target total {joined:,} but source total "
                                            f"{total:,}")
    assert "the target misses source rows" in validation["refused"]


def test_which_measures_an_answer_decides_and_a_sampled_dry_run_leaves_them_to_the_build():
    from pipeline import assist

    measure = {"function": "sum", "table": "moves", "expression": '"qty"'}
    content = {"columns": [{"name": "SHOP_ID"}, {"name": "QTY", "measure": measure},
                           {"name": "VISITS", "measure": {"function": "count", "table": "visits", "expression": "1"}}],
               "aggregated_children": [{"table": "moves", "path": [["moves.site_id", "shops.id"]]},
                                       {"table": "visits", "path": [["visits.shop_id", "shops.id"]]}],
               "sql": "SELECT 1", "dry_run": {"scope": "the latest month (2024-05)"}}
    assert [m["column"] for m in assist.measures_decided_by(content, "QTY")] == ["QTY"]
    assert [m["column"] for m in assist.measures_decided_by(content, "qty.sum")] == ["QTY"]
    assert [m["column"] for m in assist.measures_decided_by(content, "moves->shops")] == ["QTY"]
    assert [m["column"] for m in assist.measures_decided_by(content, "SHOP_MOVES->shops")] == []
    assert assist.measures_decided_by(content, "SHOP_ID") == []
    totals, left = assist.reconciled(None, content, "QTY")  # no query is run on a sample
    assert totals == [] and left.startswith("the totals are reconciled after the build (the dry run read the latest")
