"""The approval card's data: the proposed spec as rows, the real diff from the version before, the dry run, the open
questions per column, who may decide, and a fixed number of queries whatever the number of cards."""

import pytest

from pipeline.models import MappingSpecVersion
from pipeline.selectors import approval_cards
from pipeline.services import mapping_spec_diff, mapping_spec_reject
from tasks.models import Question
from tasks.selectors import approvals_waiting
from tests.factories import TaskFactory
from tests.pipeline.cards import mapping_task, propose, provider_v1, provider_v2

pytestmark = pytest.mark.django_db


def _card(mission, user):
    return approval_cards(approvals_waiting(mission=mission), user=user)[0]


def test_rows_show_each_column_with_its_source_rule_confidence_and_evidence(mission, lead):
    task = mapping_task(mission)
    propose(mission, task, provider_v1())
    card = _card(mission, lead)
    assert card.version.number == 1 and card.version.spec.target_table == "PROVIDER_SUMMARY"
    rows = {row.column: row for row in card.rows}
    assert list(rows) == ["PROVIDER_ID", "SPECIALTY", "NPI", "DENIAL_RATE"]
    specialty = rows["SPECIALTY"]
    assert specialty.sources == ["PROVIDERS.SPECIALTY"] and specialty.expression == ""  # a plain copy
    assert specialty.rule == "copied as is" and specialty.confidence == 95 and specialty.target_type == "VARCHAR(50)"
    assert specialty.evidence == "SPECIALTY: PROVIDERS.SPECIALTY (score 0.95: same name)."
    # An expression is shown with the tables it reads, not the query's aliases.
    assert rows["NPI"].expression == "CAST(PROVIDERS.NPI AS INTEGER)" and rows["NPI"].confidence == 62
    assert rows["DENIAL_RATE"].expression.startswith("ROUND(SUM(CASE WHEN CLAIMS.STATUS = 'DENIED'")
    assert rows["DENIAL_RATE"].rule == "share of CLAIMS rows where CLAIMS.STATUS = 'DENIED', rounded to 4 decimals"
    assert card.first_version and card.diff == [] and card.previous_number is None
    assert card.dry_run == {"rows": 465, "scope": "all rows", "duplicate_grain_rows": 0, "elapsed_ms": 8.79,
                            "columns": ["PROVIDER_ID"], "sample": [[1]]}


def test_keep_npi_as_text_shows_the_npi_change_and_not_a_column_v1_already_had(mission, lead):
    task = mapping_task(mission)
    mapping_spec_reject(version=propose(mission, task, provider_v1()), actor=lead, feedback="keep NPI as text")
    v2 = propose(mission, task, provider_v2())
    card = _card(mission, lead)
    assert card.version == v2 and card.previous_number == 1 and not card.first_version
    assert card.previous_feedback == "keep NPI as text"
    assert [(d.column, d.kind) for d in card.diff] == [("NPI", "changed")]
    assert card.diff[0].changes == [
        ("source", "PROVIDERS.NPI", "PROVIDER_IDS.NPI"),
        ("expression", "CAST(PROVIDERS.NPI AS INTEGER)", "PROVIDER_IDS.NPI"),
        ("rule", "cast to INTEGER", "copied as text"),
        ("type", "INTEGER", "VARCHAR(10)"),
    ]
    # SPECIALTY's expression moved from d1 to d2 but still reads PROVIDERS.SPECIALTY: not a change, in the stored
    # diff either.
    assert list(v2.diff["changed"]) == ["NPI"]
    assert card.dry_run["rows"] == 470 and card.dry_run["duplicate_grain_rows"] == 2
    assert {row.column: row.decided_by for row in card.rows}["NPI"] == "feedback"


def test_added_and_removed_columns_are_listed(mission, lead):
    task = mapping_task(mission)
    propose(mission, task, provider_v1())
    v2 = provider_v1()
    v2["columns"] = [c for c in v2["columns"] if c["name"] != "DENIAL_RATE"]
    v2["columns"].append({**v2["columns"][0], "name": "PROVIDER_KEY"})
    propose(mission, task, v2)
    card = _card(mission, lead)
    assert [(d.column, d.kind) for d in card.diff] == [("PROVIDER_KEY", "added"), ("DENIAL_RATE", "removed")]


def test_the_stored_diff_still_reports_a_real_expression_change():
    before, after = provider_v1(), provider_v1()
    after["columns"][1]["expression"] = 'UPPER(d1."SPECIALTY")'
    assert mapping_spec_diff(before, after)["changed"] == {
        "SPECIALTY": {"expression": {"from": 'd1."SPECIALTY"', "to": 'UPPER(d1."SPECIALTY")'}}}


def test_open_questions_are_shown_on_their_column_or_on_the_card(mission, lead):
    task = mapping_task(mission)
    propose(mission, task, provider_v1())
    asker = TaskFactory(mission=mission, key="map_again", owner_agent=task.owner_agent, status="waiting_input")
    on_npi = Question.objects.create(mission=mission, task=asker, addressed_to=lead, text="Keep NPI as text?",
                                     options=["yes", "no"], context={"column": "PROVIDER_SUMMARY.NPI"})
    about_feedback = Question.objects.create(mission=mission, task=asker, addressed_to=lead,
                                             text="Which column is the feedback about?",
                                             context={"column": "PROVIDER_SUMMARY.FEEDBACK"})
    Question.objects.create(mission=mission, task=asker, addressed_to=lead, text="Another target",
                            context={"column": "CLAIM_SUMMARY.NPI"})
    Question.objects.create(mission=mission, task=asker, addressed_to=lead, text="Answered", status="answered",
                            context={"column": "PROVIDER_SUMMARY.SPECIALTY"})
    card = _card(mission, lead)
    rows = {row.column: row for row in card.rows}
    assert rows["NPI"].questions == [on_npi] and rows["SPECIALTY"].questions == []
    assert card.questions == [about_feedback]
    assert card.open_questions == [on_npi, about_feedback]
    assert rows["NPI"].questions[0].can_answer


def test_only_who_may_approve_the_task_may_decide(mission, lead, analyst, viewer, outsider):
    agents_task = mapping_task(mission)
    own = TaskFactory(mission=mission, key="review", owner_agent=None, owner_user=analyst, status="waiting_approval")
    tasks = approvals_waiting(mission=mission)
    decide = {user.username: [card.can_decide for card in approval_cards(tasks, user=user)]
              for user in (lead, analyst, viewer)}
    assert [t.pk for t in tasks] == [agents_task.pk, own.pk]
    assert decide == {"lead": [True, True], "analyst": [False, True], "viewer": [False, False]}


def test_cards_cost_the_same_queries_for_one_or_several(mission, lead, django_assert_num_queries):
    for i, target in enumerate(["PROVIDER_SUMMARY", "CLAIM_SUMMARY", "PATIENT_SUMMARY", "A", "B", "C"]):
        task = mapping_task(mission, key=f"map_{i}")
        propose(mission, task, provider_v1(), target=target)
        propose(mission, task, provider_v2(), target=target)
        Question.objects.create(mission=mission, task=task, addressed_to=lead, text="?",
                                context={"column": f"{target}.NPI"})
    TaskFactory(mission=mission, key="review", owner_agent=None, owner_user=lead, status="waiting_approval")
    tasks = approvals_waiting(mission=mission)
    assert len(tasks) == 7
    # roles, newest versions, the versions before them, open questions, and the specs the review task reviews
    with django_assert_num_queries(5):
        cards = approval_cards(tasks, user=lead)
    assert [len(c.diff) for c in cards] == [1] * 6 + [0]
    assert [(v.spec.target_table, v.number) for v in cards[-1].mission_specs] == [
        ("A", 2), ("B", 2), ("C", 2), ("CLAIM_SUMMARY", 2), ("PATIENT_SUMMARY", 2), ("PROVIDER_SUMMARY", 2)]
    assert cards[-1].mission_specs[0].dry_run["rows"] == 470 and cards[0].mission_specs == []
    with django_assert_num_queries(4):  # without a review task among them
        approval_cards(tasks[:6], user=lead)
    assert all(c.rows[2].questions for c in cards[:6])


def test_the_real_agent_a_join_added_first_does_not_report_columns_the_last_version_had(
        mission, run_agent, source_for, bronze_small, lead):
    """The field-mapping agent on the demo's bronze data: v2 takes CLAIM_TYPE from PATIENTS (joined as d1); the
    review then questions PATIENT_ID and is answered PROVIDERS.PROVIDER_ID, so v3 joins PROVIDERS first and PATIENTS
    moves to d2. CLAIM_TYPE still reads PATIENTS.INSURANCE_TYPE: only PATIENT_ID changed."""
    from tests.pipeline.conftest import SPEC_PATH

    source = source_for(bronze_small.path)
    config = {"target": "CLAIM_SUMMARY", "spec_path": SPEC_PATH, "source_connection": source.name}
    run_agent("field_mapping", mission=mission, config=config, key="map")
    feedback = [{"feedback": "CLAIM_TYPE should be the patient's plan, PATIENTS.INSURANCE_TYPE.", "by": "lead"}]
    run_agent("field_mapping", mission=mission, config=config, key="map", feedback=feedback)
    feedback.append({"feedback": "PATIENT_ID looks wrong.", "by": "lead"})
    asked = run_agent("field_mapping", mission=mission, config=config, key="map", feedback=feedback)
    last = run_agent("field_mapping", mission=mission, config=config, key="map", feedback=feedback,
                     answers=[{"question": asked.outcome.question, "answer": "PROVIDERS.PROVIDER_ID"}])
    assert last.outcome.outputs["version"] == 3
    v2, v3 = (MappingSpecVersion.objects.get(number=n) for n in (2, 3))
    claim_type = [{c["name"]: c for c in v["columns"]}["CLAIM_TYPE"]["expression"] for v in (v2.content, v3.content)]
    assert claim_type == ['d1."INSURANCE_TYPE"', 'd2."INSURANCE_TYPE"']  # the alias moved...
    card = approval_cards([last.task], user=lead)[0]
    assert card.version == v3 and card.previous_number == 2
    assert [(d.column, d.kind) for d in card.diff] == [("PATIENT_ID", "changed")]  # ...but CLAIM_TYPE is unchanged
    assert card.diff[0].changes[0] == ("source", "CLAIMS.PATIENT_ID", "PROVIDERS.PROVIDER_ID")
    assert list(v3.diff["changed"]) == ["PATIENT_ID"]
    assert card.dry_run["rows"] == v3.content["dry_run"]["rows"] > 0
