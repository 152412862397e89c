"""In Chromium: a mapping question offers its candidates and a box for another answer; the lead types a SQL
expression there and sends it, and the question holds it."""

import os

import pytest

from tasks import services
from tasks.models import Question
from tests.browser import SCREENSHOTS, requires_chromium, sign_in

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_lead_answers_a_mapping_question_with_a_sql_expression(browser_context, live_server, mission, agent, lead):
    task = services.task_create(mission=mission, key="map-customers", title="Map CUSTOMERS", owner_agent=agent,
                                config={})
    question = services.question_create(
        task=task, run=None, addressed_to=lead,
        text="CUSTOMERS.LIFETIME_VALUE: no source column clearly matches LIFETIME_VALUE (best: orders.id, score 0.31)."
             " Which source column should it use?",
        options=["orders.id", "payments.amount", "none"], default="none",
        context={"column": "CUSTOMERS.LIFETIME_VALUE", "free_answer": True})
    page = sign_in(browser_context, live_server, "lead")
    page.goto(f"{live_server.url}/tasks/{task.pk}/")
    card = page.locator(f"#question-{question.pk}")
    box = card.get_by_label("Or another answer")
    box.fill("sql: COALESCE(SUM(payments.amount), 0) / 100.0")
    if os.environ.get("GENESIS_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        card.screenshot(path=str(SCREENSHOTS / "question-card-sql-answer.png"))
    card.get_by_role("button", name="Send answer").click()
    page.wait_for_function(f"() => !document.querySelector('#question-{question.pk} input[name=answer_other]')")
    assert Question.objects.get(pk=question.pk).answer == "sql: COALESCE(SUM(payments.amount), 0) / 100.0"
