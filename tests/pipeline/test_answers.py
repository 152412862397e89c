"""Answers a person can give to a mapping question: an offered option, any source column, a SQL expression
(``{sql: ...}``, validated like a spec expression), a relationship ``TABLE_A.col = TABLE_B.col`` or ``none``; on the
page, over the API and headless (``run_mission --answers FILE.yml``); and review feedback naming an expression."""

import sqlite3
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from agents.access import adapter_for
from agents.base import NeedsApproval, NeedsInput
from genesis.exceptions import DomainError
from pipeline.mapping import Ambiguity, Catalog, TargetMapper
from pipeline.models import MappingSpecVersion
from pipeline.profiler import profile_source
from tasks import services
from tasks.models import Question
from tests.pipeline import sources
from tests.pipeline.conftest import sqlite_connection
from workflows.tasks import question_answer

FINES = {
    "name": "MEMBER_FINES", "grain": {"entity": "member"},
    "columns": [{"name": "MEMBER_ID", "type": "INTEGER", "description": "The member."},
                {"name": "TOTAL_FINES", "type": "DECIMAL(10,2)", "description": "Fines owed, in dollars."}],
}


def catalog_of(path):
    with adapter_for(sqlite_connection(path), mission=None) as adapter:
        return Catalog(profile_source(adapter))


def test_a_sql_answer_maps_the_column_through_the_foreign_key_path(tmp_path):
    source = sources.library(tmp_path)
    catalog = catalog_of(source.path)
    with pytest.raises(Ambiguity) as asked:
        TargetMapper(target=FINES, catalog=catalog, dialect="sqlite").plan()
    assert asked.value.column == "TOTAL_FINES"
    content = TargetMapper(target=FINES, catalog=catalog, dialect="sqlite", answers={
        "TOTAL_FINES": "sql: COALESCE(SUM(Fine.AmountCents), 0) / 100.0"}).plan()
    column = content["columns"][1]
    assert column["decided_by"] == "answer" and column["origin"] == "answers.MEMBER_FINES.TOTAL_FINES"
    loans = {loan["LoanId"]: loan["MemberId"] for loan in source.tables["Loan"]}
    want = {m["MemberId"]: 0 for m in source.tables["Member"]}
    for fine in source.tables["Fine"]:
        want[loans[fine["LoanId"]]] += fine["AmountCents"]
    db = sqlite3.connect(source.path)
    got = dict(db.execute(content["sql"]).fetchall())
    db.close()
    assert got == {k: v / 100 for k, v in want.items()}


def test_a_relationship_nobody_could_infer_is_asked_and_answered(tmp_path):
    path = tmp_path / "twins.sqlite3"
    db = sqlite3.connect(path)
    with db:
        db.executescript("CREATE TABLE shops(id INTEGER, name TEXT); CREATE TABLE depots(id INTEGER, name TEXT);"
                         "CREATE TABLE moves(move_no INTEGER, site_id INTEGER, qty INTEGER);")
        db.executemany("INSERT INTO shops VALUES (?, ?)", [(i, f"s{i}") for i in range(1, 21)])
        db.executemany("INSERT INTO depots VALUES (?, ?)", [(i, f"d{i}") for i in range(1, 21)])
        db.executemany("INSERT INTO moves VALUES (?, ?, ?)", [(i, 1 + i % 20, i % 7) for i in range(100)])
    db.close()
    target = {"name": "SHOP_MOVES", "grain": {"entity": "shop"},
              "columns": [{"name": "SHOP_ID", "type": "INTEGER", "description": "shop id"},
                          {"name": "QTY", "type": "INTEGER", "expression": "SUM(moves.qty)"}]}
    catalog = catalog_of(path)
    with pytest.raises(Ambiguity) as asked:
        TargetMapper(target=target, catalog=catalog, dialect="sqlite", answers={"SHOP_ID": "shops.id"}).plan()
    assert asked.value.column == "moves->shops" and asked.value.reason == "relationship"
    assert "Answer as moves.column = shops.column" in asked.value.question
    content = TargetMapper(target=target, catalog=catalog, dialect="sqlite", answers={
        "SHOP_ID": "shops.id", "moves->shops": "shops.id = moves.site_id"}).plan()
    want = {i: 0 for i in range(1, 21)}
    for i in range(100):
        want[1 + i % 20] += i % 7
    db = sqlite3.connect(path)
    assert dict(db.execute(content["sql"]).fetchall()) == want
    db.close()
    with pytest.raises(Ambiguity, match="is not a relationship"):
        TargetMapper(target=target, catalog=catalog, dialect="sqlite",
                     answers={"SHOP_ID": "shops.id", "moves->shops": "moves.site_id"}).plan()


@pytest.fixture
def library_spec(tmp_path, source_for):
    import yaml

    source = sources.library(tmp_path)
    connection = source_for(source.path)
    path = tmp_path / "library.yml"
    path.write_text(yaml.safe_dump({
        "version": 1, "name": "Library", "targets": {"tables": [FINES]},
        "sources": {"connection": connection.name, "allowed_tables": ["Member", "Loan", "Fine"]}}))
    return {"target": "MEMBER_FINES", "spec_path": str(path), "source_connection": connection.name}


@pytest.mark.django_db
def test_an_unusable_sql_answer_is_asked_again_with_the_reason(mission, run_agent, library_spec):
    first = run_agent("field_mapping", mission=mission, config=library_spec)
    assert isinstance(first.outcome, NeedsInput) and first.outcome.context["free_answer"] is True
    key = first.outcome.context["column"]
    assert key == "MEMBER_FINES.TOTAL_FINES"
    again = run_agent("field_mapping", mission=mission, config=library_spec, answers=[
        {"question": first.outcome.question, "answer": "sql: SUM(Fine.Cents)", "context": first.outcome.context}])
    assert isinstance(again.outcome, NeedsInput)
    assert again.outcome.question.startswith("MEMBER_FINES.TOTAL_FINES: the answer cannot be used (Fine has no "
                                             "column Cents")


@pytest.mark.django_db
def test_review_feedback_naming_an_expression_changes_the_next_version(mission, run_agent, library_spec):
    answers = [{"question": "q", "answer": "sql: SUM(Fine.AmountCents)",
                "context": {"column": "MEMBER_FINES.TOTAL_FINES"}}]
    first = run_agent("field_mapping", mission=mission, config=library_spec, answers=answers)
    assert isinstance(first.outcome, NeedsApproval), first.outcome
    feedback = [{"text": "TOTAL_FINES is in cents. TOTAL_FINES should be `SUM(Fine.AmountCents) / 100.0`.",
                 "by": "lead"}]
    second = run_agent("field_mapping", mission=mission, config=library_spec, answers=answers, feedback=feedback)
    assert isinstance(second.outcome, NeedsApproval), second.outcome
    latest = MappingSpecVersion.objects.order_by("-number").first()
    column = next(c for c in latest.content["columns"] if c["name"] == "TOTAL_FINES")
    assert latest.number == 2 and column["decided_by"] == "feedback"
    assert "/ 100.0" in column["expression"] and "TOTAL_FINES" in latest.diff.get("changed", {})


def _ask(mission, agent, lead, *, key="ORDERS.AMOUNT", free=True):
    task = services.task_create(mission=mission, key=key.replace(".", "-").lower(), title="Map", owner_agent=agent,
                                config={})
    return services.question_create(task=task, run=None, addressed_to=lead, text=f"{key}: which column?",
                                    options=["orders.total", "none"], default="none",
                                    context={"column": key, "free_answer": free} if free else {"column": key})


@pytest.mark.django_db
def test_the_answer_verb_takes_any_answer_to_a_mapping_question_and_checks_its_sql(mission, agent, lead):
    question = _ask(mission, agent, lead)
    with pytest.raises(DomainError, match="does not parse"):
        question_answer(question=question, actor=lead, answer="sql: SUM(orders.amount")
    question_answer(question=question, actor=lead, answer="sql: SUM(payments.amount) / 100.0")
    assert Question.objects.get(pk=question.pk).answer == "sql: SUM(payments.amount) / 100.0"


@pytest.mark.django_db
def test_a_question_without_free_answers_still_takes_only_its_options(mission, agent, lead):
    question = _ask(mission, agent, lead, free=False)
    with pytest.raises(DomainError, match="Choose one of the offered answers"):
        question_answer(question=question, actor=lead, answer="payments.amount")


@pytest.mark.django_db
def test_the_api_takes_an_sql_object_and_the_page_a_typed_answer(mission, agent, lead, client):
    question = _ask(mission, agent, lead)
    api = APIClient()
    api.force_authenticate(lead)
    response = api.post(f"/api/v1/questions/{question.pk}/answer/", {"answer": {"sql": "MIN(orders.order_date)"}},
                        format="json")
    assert response.status_code == 200, response.content
    assert Question.objects.get(pk=question.pk).answer == "sql: MIN(orders.order_date)"
    bad = api.post(f"/api/v1/questions/{question.pk}/answer/", {"answer": {"python": "1"}}, format="json")
    assert bad.status_code == 400 and "sql" in bad.content.decode()

    other = _ask(mission, agent, lead, key="ORDERS.FIRST")
    client.force_login(lead)
    page = client.get(reverse("tasks:detail", args=[other.task_id]))
    assert 'name="answer_other"' in page.content.decode()
    client.post(reverse("tasks:answer", args=[other.pk]), {"answer": "none", "answer_other": "orders.order_date"})
    assert Question.objects.get(pk=other.pk).answer == "orders.order_date"


@pytest.mark.django_db
def test_run_mission_answers_from_a_file_and_stops_on_a_question_it_cannot_answer(mission, agent, lead, tmp_path):
    task = services.task_create(mission=mission, key="ask", title="Ask", owner_agent=agent,
                                config={"ask": "ORDERS.AMOUNT: which column?", "options": ["A", "B"]})
    answers = tmp_path / "answers.yml"
    answers.write_text("ORDERS.AMOUNT: B\n")
    out = StringIO()
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "30", "--answers", str(answers),
                 "--auto-approve", stdout=out)
    assert Question.objects.get(task=task).answer == "B"

    assert "completed" in out.getvalue()


@pytest.mark.django_db
def test_run_mission_exits_non_zero_naming_a_question_the_file_does_not_answer(mission, agent, lead, tmp_path):
    services.task_create(mission=mission, key="ask", title="Ask", owner_agent=agent,
                         config={"ask": "ORDERS.FIRST: the earliest order date?", "options": []})
    answers = tmp_path / "answers.yml"
    answers.write_text("ORDERS.AMOUNT: {sql: SUM(payments.amount)}\n")
    with pytest.raises(CommandError) as caught:
        call_command("run_mission", str(mission.pk), "--wait", "--timeout", "30", "--answers", str(answers),
                     "--auto-approve", stdout=StringIO())
    assert str(caught.value) == "No usable answer in the answers file for: ORDERS.FIRST: the earliest order date?"
    assert Question.objects.get(mission=mission).status == "open"


@pytest.mark.django_db
def test_an_answers_file_keyed_by_the_column_answers_the_question_about_what_its_sum_adds_up(
        mission, agent, lead, tmp_path):
    summed = services.task_create(mission=mission, key="ask_sum", title="Ask", owner_agent=agent, config={
        "ask": "SALES.UNITS.sum: Lines.Quantity and Lines.LineId both fit UNITS's sum. Which one is it?",
        "options": ["Lines.Quantity", "Lines.LineId"]})
    related = services.task_create(mission=mission, key="ask_rel", title="Ask", owner_agent=agent, config={
        "ask": "Customer->Employee: how does a Customer row relate to Employee?", "options": []})
    answers = tmp_path / "answers.yml"
    answers.write_text("sales.units: Lines.Quantity\nCustomer->Employee: Customer.RepId = Employee.Id\n")
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "30", "--answers", str(answers),
                 "--auto-approve", stdout=StringIO())
    assert Question.objects.get(task=summed).answer == "Lines.Quantity"
    assert Question.objects.get(task=related).answer == "Customer.RepId = Employee.Id"
    # The exact key wins over the column's, and a relationship is never matched by a part of its key.
    from workflows.driver import answer_key
    assert answer_key("SALES.UNITS.SUM", {"SALES.UNITS.SUM", "SALES.UNITS"}) == "SALES.UNITS.SUM"
    assert answer_key("SALES.UNITS.SUM", {"SALES.UNITS"}) == "SALES.UNITS"
    assert answer_key("A.B->C.D", {"A.B"}) == "A.B->C.D"


def test_an_answers_file_is_read_strictly(tmp_path, db, mission):
    answers = tmp_path / "answers.yml"
    answers.write_text("A.B: x\nA.B: y\n")
    with pytest.raises(CommandError, match="duplicate key"):
        call_command("run_mission", str(mission.pk), "--answers", str(answers), stdout=StringIO())
    answers.write_text("A.B: {python: x}\n")
    with pytest.raises(CommandError, match=r"A.B: an answer is TABLE.COLUMN, \{sql"):
        call_command("run_mission", str(mission.pk), "--answers", str(answers), stdout=StringIO())


@pytest.mark.django_db
def test_run_mission_maps_a_target_with_the_answers_file_and_auto_approves(mission, lead, library_spec, tmp_path):
    from agents.models import Agent, Connection
    from missions.choices import MissionStatus

    connection = Connection.objects.get(name=library_spec["source_connection"])
    connection.missions.add(mission)
    mapper = Agent.objects.create(name="field-mapping-agent", kind="field_mapping")
    task = services.task_create(mission=mission, key="map-member-fines", title="Map MEMBER_FINES",
                                owner_agent=mapper, config=library_spec)
    answers = tmp_path / "answers.yml"
    answers.write_text('MEMBER_FINES.TOTAL_FINES: {sql: "COALESCE(SUM(Fine.AmountCents), 0) / 100.0"}\n'
                       "MEMBER_FINES.MEMBER_ID: Member.MemberId\n")
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "120", "--answers", str(answers),
                 "--auto-approve", stdout=StringIO())
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED
    version = MappingSpecVersion.objects.get(spec__target_table="MEMBER_FINES", status="approved")
    column = next(c for c in version.content["columns"] if c["name"] == "TOTAL_FINES")
    assert column["decided_by"] == "answer" and column["measure"]["table"] == "Fine"
    assert Question.objects.filter(task=task, answer__startswith="sql: COALESCE").exists()
