"""In Chromium: a lead reads a mapping proposal on its card (table, diff, dry run) and approves it in place, without
a reload, and answers a question on its column there; "Approve all shown" asks once and approves two cards."""

import os

import pytest

from pipeline.models import MappingSpecVersion
from pipeline.services import mapping_spec_reject
from tasks.choices import TaskStatus
from tasks.models import Task
from tests.browser import SCREENSHOTS, requires_chromium, sign_in
from tests.pipeline.cards import mapping_task, propose, provider_v1, provider_v2

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _card_picture(card, name: str) -> None:
    """The card alone, kept in docs/screenshots/ with GENESIS_SCREENSHOTS=1 (make screenshots)."""
    if os.environ.get("GENESIS_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        card.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_lead_reads_the_card_and_approves_it_in_place(browser_context, live_server, mission):
    task = mapping_task(mission)
    mapping_spec_reject(version=propose(mission, task, provider_v1()), actor=mission.owner,
                        feedback="keep NPI as text")
    propose(mission, task, provider_v2())
    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    marker = page.evaluate("() => (window.__noReload = Math.random())")
    card = page.locator(f"#approval-{task.pk}")
    table = card.get_by_role("table")
    table.get_by_role("rowheader", name="NPI").wait_for()
    assert table.locator("thead th").all_inner_texts() == [
        "TARGET COLUMN", "SOURCE OR EXPRESSION", "RULE", "CONFIDENCE", "EVIDENCE", "OPEN QUESTION"]
    npi = table.locator("tr", has=page.get_by_role("rowheader", name="NPI"))
    assert "PROVIDER_IDS.NPI" in npi.inner_text() and "90%" in npi.inner_text()
    diff = card.locator(".spec-diff")
    assert "Changes since v1" in diff.inner_text() and "INTEGER → VARCHAR(10)" in diff.inner_text()
    assert "SPECIALTY" not in diff.inner_text() and "keep NPI as text" in diff.inner_text()
    assert "470" in card.locator(".figures").inner_text()
    _card_picture(card, "approval-card")
    card.get_by_role("button", name="Approve", exact=True).click()
    card.get_by_text("Approved by lead.").wait_for()
    assert page.evaluate("() => window.__noReload") == marker
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
    assert MappingSpecVersion.objects.get(spec__target_table="PROVIDER_SUMMARY", number=2).status == "approved"


def test_approve_all_shown_asks_once_and_approves_two_cards(browser_context, live_server, mission):
    first = mapping_task(mission, key="map_claim_summary")
    second = mapping_task(mission, key="map_patient_summary")
    propose(mission, first, provider_v1(), target="CLAIM_SUMMARY")
    propose(mission, second, provider_v1(), target="PATIENT_SUMMARY")
    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    dialogs = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name="Approve all shown (2)").click()
    page.locator("#approve-all-report").get_by_text(
        "Approved (2): map_claim_summary, map_patient_summary.").wait_for()
    assert len(dialogs) == 1 and "map_claim_summary, map_patient_summary" in dialogs[0]
    assert page.locator(f"#approval-{first.pk}, #approval-{second.pk}").count() == 0  # gone at once
    assert dict(Task.objects.filter(pk__in=[first.pk, second.pk]).values_list("key", "status")) == {
        "map_claim_summary": "done", "map_patient_summary": "done"}
    # The panel refreshes itself: the cards are gone, the report stays.
    page.locator("#decisions").get_by_text("Nothing is waiting for a person.").wait_for()
    assert "Approved (2)" in page.locator("#approve-all-report").inner_text()


def test_lead_answers_a_question_on_its_column_in_place(browser_context, live_server, mission, lead):
    from tasks.models import Question
    from tests.factories import TaskFactory

    task = mapping_task(mission)
    propose(mission, task, provider_v1())
    asker = TaskFactory(mission=mission, key="map_npi", owner_agent=task.owner_agent, status="waiting_input")
    question = Question.objects.create(
        mission=mission, task=asker, addressed_to=lead, text="PROVIDER_SUMMARY.NPI: which source column?",
        options=["PROVIDERS.NPI", "none"], context={"column": "PROVIDER_SUMMARY.NPI", "free_answer": True})
    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    marker = page.evaluate("() => (window.__noReload = Math.random())")
    card = page.locator(f"#approval-{task.pk}")
    npi = card.locator("tr", has=page.get_by_role("rowheader", name="NPI"))
    npi.get_by_text("which source column?").wait_for()
    npi.get_by_label("Or another answer").fill("sql: CAST(PROVIDERS.NPI AS TEXT)")
    npi.get_by_role("button", name="Send answer").click()
    card.get_by_text("Answered: sql: CAST(PROVIDERS.NPI AS TEXT) (by lead).").wait_for()
    assert page.evaluate("() => window.__noReload") == marker
    question.refresh_from_db()
    assert question.status == "answered" and question.answer == "sql: CAST(PROVIDERS.NPI AS TEXT)"


def test_a_mapping_question_shows_the_columns_mapped_so_far_with_its_row_marked(browser_context, live_server,
                                                                              mission, lead):
    from tasks.models import Question

    task = mapping_task(mission, key="map_claim_summary", status=TaskStatus.WAITING_INPUT)
    draft = {"target": "CLAIM_SUMMARY", "dialect": "sqlite", "fact_table": "CLAIMS", "joins": [], "columns": [
        {"name": "CLAIM_ID", "target_type": "INTEGER", "kind": "direct",
         "sources": [{"table": "CLAIMS", "column": "CLAIM_ID"}], "expression": 'f."CLAIM_ID"',
         "transformation": "copied as is", "confidence": 1.0, "reasoning": "Same name.", "decided_by": "agent"},
        {"name": "CLAIM_DATE", "target_type": "DATE", "kind": "direct", "sources": [], "expression": "",
         "transformation": "", "rule": None, "confidence": None, "reasoning": "", "decided_by": ""},
        {"name": "TOTAL_CHARGE", "target_type": "DECIMAL(12,2)", "kind": "direct", "sources": [], "expression": "",
         "transformation": "", "rule": {"sum": "charge amount"}, "confidence": None, "reasoning": "",
         "decided_by": ""}]}
    question = Question.objects.create(
        mission=mission, task=task, addressed_to=lead,
        text="CLAIM_SUMMARY.CLAIM_DATE: no source column clearly matches. Which source column should it use?",
        options=["CLAIMS.EVENT_TS", "CLAIMS.CREATED", "none"], default="CLAIMS.EVENT_TS",
        context={"column": "CLAIM_SUMMARY.CLAIM_DATE", "free_answer": True, "draft": draft})
    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/missions/{mission.pk}/")
    card = page.locator(f"#question-{question.pk}")
    asked = card.locator("tr.asked")
    asked.get_by_role("rowheader", name="CLAIM_DATE").wait_for()
    assert "This question" in asked.inner_text() and "not mapped yet" in asked.inner_text()
    assert card.locator("tr", has=page.get_by_role("rowheader", name="CLAIM_ID")).get_by_text("CLAIMS.CLAIM_ID").count()
    # Marked in colour and in words: the row's background differs from an unmarked row's.
    colours = card.evaluate("c => [...c.querySelectorAll('tbody tr')].map(r => getComputedStyle(r).backgroundColor)")
    assert colours[1] != colours[0] and colours[0] == colours[2]
    _card_picture(card, "question-card-spec-table")
    card.get_by_label("CLAIMS.EVENT_TS").check()
    card.get_by_role("button", name="Send answer").click()
    page.get_by_text("Answered: CLAIMS.EVENT_TS (by lead).").wait_for()
    question.refresh_from_db()
    assert question.answer == "CLAIMS.EVENT_TS"
