"""A mapping agent's question shown with the spec table it is about, as an approval card shows a proposal: the
columns the agent had mapped when it asked (the rest "not mapped yet"), the asked row marked, on the cockpit and My
work; without those columns, the target's newest version; any other question stays a plain card."""

import re

import pytest
from django.urls import reverse

from agents.base import NeedsInput
from pipeline.selectors import question_tables
from tasks import services as task_services
from tasks.choices import TaskStatus
from tasks.models import Question
from tests.factories import TaskFactory
from tests.pipeline.cards import mapping_task, propose, provider_v1
from tests.pipeline.conftest import SPEC_PATH

pytestmark = pytest.mark.django_db


def card_of(content: str, question) -> str:
    return re.search(rf'<article class="decision question htmx-container" id="question-{question.pk}".*?</article>',
                     content, re.S).group(0)


def asked_rows(card: str) -> list[str]:
    return re.findall(r'<tr class="asked">(.*?)</tr>', card, re.S)


def test_the_agent_asks_with_the_columns_mapped_so_far_and_the_cards_show_them(
        mission, lead, run_agent, source_for, bronze_opaque, client_for):
    source = source_for(bronze_opaque.path)
    config = {"target": "CLAIM_SUMMARY", "spec_path": SPEC_PATH, "source_connection": source.name}
    first = run_agent("field_mapping", mission=mission, config=config)
    answers = [{"question": first.outcome.question, "answer": "CLAIMS.EVENT_TS", "context": first.outcome.context}]
    second = run_agent("field_mapping", mission=mission, config=config, answers=answers)
    outcome = second.outcome
    assert isinstance(outcome, NeedsInput) and outcome.context["column"] == "CLAIM_SUMMARY.PRIMARY_DIAGNOSIS"
    draft = outcome.context["draft"]
    assert draft["target"] == "CLAIM_SUMMARY" and draft["fact_table"] == "CLAIMS"
    columns = {c["name"]: c for c in draft["columns"]}
    assert list(columns)[:2] == ["CLAIM_ID", "CLAIM_DATE"]  # the spec's order
    assert columns["CLAIM_DATE"]["sources"] == [{"table": "CLAIMS", "column": "EVENT_TS"}]
    assert columns["CLAIM_DATE"]["decided_by"] == "answer" and columns["CLAIM_DATE"]["confidence"] == 1.0
    assert columns["CLAIM_ID"]["sources"] == [{"table": "CLAIMS", "column": "CLAIM_ID"}]
    assert columns["PRIMARY_DIAGNOSIS"]["sources"] == [] and columns["PRIMARY_DIAGNOSIS"]["confidence"] is None

    # As the engine stores it: the question with its context, the task waiting for the answer.
    task_services.task_transition(task=second.task, to=TaskStatus.READY)
    task_services.task_transition(task=second.task, to=TaskStatus.RUNNING)
    task_services.task_transition(task=second.task, to=TaskStatus.WAITING_INPUT)
    question = task_services.question_create(task=second.task, run=second.run, addressed_to=lead,
                                             text=outcome.question, options=outcome.options, default=outcome.default,
                                             context=outcome.context)
    client = client_for(lead)
    for url in (reverse("missions:cockpit", args=[mission.pk]), reverse("missions:my_work")):
        card = card_of(client.get(url).content.decode(), question)
        assert "<strong>CLAIM_SUMMARY</strong> as mapped so far (no version proposed yet)" in card
        assert "Mapping of CLAIM_SUMMARY so far, column by column" in card
        [asked] = asked_rows(card)
        assert "PRIMARY_DIAGNOSIS" in asked and "<strong>This question</strong>" in asked
        assert "not mapped yet" in asked
        claim_date = re.search(r"<tr>\s*<th scope=\"row\">CLAIM_DATE<.*?</tr>", card, re.S).group(0)
        assert "CLAIMS.EVENT_TS" in claim_date and "From your answer." in claim_date and "100%" in claim_date
        assert card.count("<tr") == len(columns) + 1  # every target column, and the header
        assert "Send answer" in card  # answered in the card, as before


def test_without_the_draft_the_targets_newest_version_is_shown_with_the_row_marked(client_for, mission, lead):
    proposer = mapping_task(mission, key="map_provider_summary", status=TaskStatus.WAITING_INPUT)
    propose(mission, proposer, provider_v1())
    question = Question.objects.create(
        mission=mission, task=proposer, addressed_to=lead, text="PROVIDER_SUMMARY.NPI: keep it as text?",
        options=["yes", "no"], context={"column": "PROVIDER_SUMMARY.NPI.type"})
    card = card_of(client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode(), question)
    assert "<strong>PROVIDER_SUMMARY</strong> mapping spec v1" in card
    [asked] = asked_rows(card)
    assert "NPI" in asked and "INTEGER" in asked and "62%" in asked
    assert "SPECIALTY" in card and "PROVIDERS.SPECIALTY" in card


def test_a_question_about_no_spec_stays_a_plain_card(client_for, mission, lead):
    asker = TaskFactory(mission=mission, key="confirm", status=TaskStatus.WAITING_INPUT)
    plain = Question.objects.create(mission=mission, task=asker, addressed_to=lead, text="Go ahead?",
                                    options=["yes", "no"])
    unknown = Question.objects.create(mission=mission, task=asker, addressed_to=lead, text="Which column?",
                                      context={"column": "NO_SUCH_TARGET.X"})
    content = client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    for question in (plain, unknown):
        card = card_of(content, question)
        assert "spec-table" not in card and "Send answer" in card


def test_the_tables_cost_one_query_whatever_the_number_of_questions(mission, lead, django_assert_num_queries):
    proposer = mapping_task(mission, key="map_provider_summary", status=TaskStatus.WAITING_INPUT)
    propose(mission, proposer, provider_v1())
    questions = [Question.objects.create(mission=mission, task=proposer, addressed_to=lead, text=f"Q{i}?",
                                         context={"column": f"PROVIDER_SUMMARY.{name}"})
                 for i, name in enumerate(["NPI", "SPECIALTY", "PROVIDER_ID", "DENIAL_RATE"])]
    questions.append(Question.objects.create(mission=mission, task=proposer, addressed_to=lead, text="Draft?",
                                             context={"column": "X.A", "draft": {"target": "X", "columns": [
                                                 {"name": "A", "target_type": "INTEGER", "sources": []}]}}))
    with django_assert_num_queries(1):
        question_tables(questions)
    assert [[r.column for r in q.spec_table.rows if r.asked] for q in questions] == [
        ["NPI"], ["SPECIALTY"], ["PROVIDER_ID"], ["DENIAL_RATE"], ["A"]]
    assert questions[0].spec_table.rows is not questions[1].spec_table.rows  # each its own marks


def test_a_refused_answer_shows_the_card_again_with_its_table(client_for, mission, lead):
    proposer = mapping_task(mission, key="map_provider_summary", status=TaskStatus.WAITING_INPUT)
    propose(mission, proposer, provider_v1())
    question = Question.objects.create(mission=mission, task=proposer, addressed_to=lead, text="NPI?",
                                       options=["yes", "no"], context={"column": "PROVIDER_SUMMARY.NPI"})
    response = client_for(lead).post(reverse("tasks:answer", args=[question.pk]), {"answer": "maybe"},
                                     HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    content = response.content.decode()
    assert "Choose one of the offered answers: yes, no." in content
    [asked] = asked_rows(content)
    assert "NPI" in asked
