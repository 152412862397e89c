"""The measured comparison on the project's own varied sources (``test_proof``): the questions the mapping asks with
and without a language model's proposals (replayed by a local stub of the chat API), and the columns that end up
wrong without any check flagging them, which must stay 0 in both.

The stub replays recorded proposals: for most questions the right answer, for every third one a proposal naming
a column the source does not have. Every proposal is proven as ``pipeline.assist`` proves it (the target mapped
again with it as the answer, and once the target is complete, its SQL run on the source and the measures the
answer decides reconciled); the simulated person accepts a proven suggestion only if it is the answer they would
give, and otherwise types their own. The counts are printed."""

from __future__ import annotations

import pytest

from agents.access import adapter_for
from agents.llm import Assistant
from pipeline import assist
from pipeline.expressions import ExpressionError
from pipeline.mapping import Ambiguity, TargetMapper
from tests.pipeline.conftest import sqlite_connection
from tests.pipeline.test_proof import CASES, catalog_for, cells, flagged_columns, wrong_cells

pytestmark = pytest.mark.django_db


def proposal_for(answer: str, n: int) -> dict[str, str]:
    if n % 3 == 2:
        return {"sql": "SUM(ledger_that_is_not_there.amount)", "reasoning": "a wrong guess"}
    if answer.lower().startswith("sql:"):
        return {"sql": answer.split(":", 1)[1].strip(), "reasoning": "recorded"}
    if "=" in answer:
        return {"relationship": answer, "reasoning": "recorded"}
    return {"sql": answer, "reasoning": "recorded"}


def plain(answer: str) -> str:
    text = answer.split(":", 1)[1] if answer.lower().startswith("sql:") else answer
    return " ".join(text.split()).lower()


def proven(mapper_args: dict, given: dict[str, str], key: str, answer: str, source_path) -> bool:
    """The proof a proposal gets: the target mapped again with it as the answer of ``key``, and reconciled."""
    try:
        content = TargetMapper(**mapper_args, answers={**given, key.upper(): answer}).plan()
    except Ambiguity as question:
        return question.column.upper() != key.upper()
    except (ExpressionError, ValueError):
        return False
    with adapter_for(sqlite_connection(source_path), mission=None) as adapter:
        totals, _ = assist.reconciled(adapter, {**content, "dry_run": {"scope": "all rows"}}, key)
    return all(t.passed for t in totals)


def run_case(name, tmp_path, *, stub, mission_id):
    case = CASES[name]
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = case.make(tmp_path)
    catalog = catalog_for(source)
    expected = case.expected(source)
    counts = {"asked": 0, "suggested": 0, "accepted": 0, "refused": 0, "wrong_unflagged": 0}
    n = 0
    for target in case.targets:
        key_of = case.answers[target["name"]]
        args = {"target": target, "catalog": catalog, "dialect": "sqlite"}
        given: dict[str, str] = {}
        for _ in range(4 * len(target["columns"]) + 4):
            try:
                content = TargetMapper(**args, answers=given).plan()
                break
            except Ambiguity as question:
                counts["asked"] += 1
                right = key_of[question.column.split(".")[0].upper()]
                if stub is not None:
                    stub.reply(json=proposal_for(right, n))
                    n += 1
                    exchange = Assistant(mission_id=mission_id).ask(
                        "propose", assist.prompt(target=target, key=question.column, question=question.question,
                                                 profile=catalog.profile), assist.PROPOSAL_SCHEMA)
                    answer = assist.answer_text(exchange.data, question.column) if exchange.ok else ""
                    if answer and proven(args, given, question.column, answer, source.path):
                        counts["suggested"] += 1
                        counts["accepted"] += plain(answer) == plain(right)
                    else:
                        counts["refused"] += 1
                given[question.column.upper()] = right
        got = cells(source.path, content)
        flagged = flagged_columns(source, content, tmp_path)
        for column in target["columns"]:
            if wrong_cells(got, expected[target["name"]], column["name"]) and column["name"] not in flagged:
                counts["wrong_unflagged"] += 1
    return counts


@pytest.mark.parametrize("name", sorted(CASES))
def test_questions_with_and_without_proposals_and_no_silent_wrong_column(name, tmp_path, settings, mission,
                                                                        llm_stub):
    without = run_case(name, tmp_path / "without", stub=None, mission_id=mission.pk)  # the mapper alone
    settings.GENESIS_LLM_MAX_CALLS_PER_MISSION = 0
    with_model = run_case(name, tmp_path / "with", stub=llm_stub, mission_id=mission.pk)
    print(f"\n{name}: without a model {without['asked']} questions typed; with the stub's proposals "
          f"{with_model['asked']} questions, {with_model['suggested']} carried a proven suggestion "
          f"({with_model['accepted']} accepted as is), {with_model['refused']} proposals refused and "
          f"{with_model['asked'] - with_model['accepted']} typed; wrong and unflagged: {without['wrong_unflagged']} "
          f"without, {with_model['wrong_unflagged']} with")
    assert without["asked"] == with_model["asked"] > 0
    assert with_model["refused"] >= with_model["asked"] // 3  # every wrong recorded proposal was refused
    assert with_model["accepted"] == with_model["suggested"]  # every proven one was the right answer here
    assert without["wrong_unflagged"] == with_model["wrong_unflagged"] == 0
