"""Approval cards decided in place: the spec table, diff and dry run on the cockpit and My work; approve, reject,
answer on the card, approve all shown; who may, and a fixed number of queries for several cards."""

import pytest
from django.urls import reverse

from history.models import HistoryEntry
from pipeline.models import MappingSpecVersion
from tasks.choices import QuestionStatus, TaskStatus
from tasks.models import Question, Task
from tests.factories import MissionFactory, TaskFactory
from tests.pipeline.cards import mapping_task, propose, provider_v1, provider_v2

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def card_task(mission):
    """PROVIDER_SUMMARY's mapping task waiting for approval of v2 (after "keep NPI as text")."""
    from pipeline.services import mapping_spec_reject

    task = mapping_task(mission)
    mapping_spec_reject(version=propose(mission, task, provider_v1()), actor=mission.owner,
                        feedback="keep NPI as text")
    propose(mission, task, provider_v2())
    return task


@pytest.fixture
def npi_question(mission, card_task, lead):
    asker = TaskFactory(mission=mission, key="map_npi", owner_agent=card_task.owner_agent, status="waiting_input")
    return Question.objects.create(mission=mission, task=asker, addressed_to=lead, text="Keep NPI as text?",
                                   options=["yes", "no"], default="yes", context={"column": "PROVIDER_SUMMARY.NPI"})


def test_cockpit_card_shows_the_spec_table_diff_and_dry_run(client_for, card_task, npi_question, lead):
    content = client_for(lead).get(reverse("missions:cockpit", args=[card_task.mission_id])).content.decode()
    assert "PROVIDER_SUMMARY</strong> mapping spec v2" in content
    assert "Changes since v1" in content
    assert "v1 was rejected with the feedback: <q>keep NPI as text</q>" in content
    assert "type <del>INTEGER</del> → <ins>VARCHAR(10)</ins>" in content
    assert "<strong>SPECIALTY</strong>" not in content  # v1 already had it, unchanged
    assert "<dt>Dry-run rows</dt><dd>470</dd>" in content and "latest month" in content
    assert ">95%<" in content and "From the review's feedback." in content
    assert "<del>CAST(PROVIDERS.NPI AS INTEGER)</del> → <ins>PROVIDER_IDS.NPI</ins>" in content
    assert '<code class="expression">PROVIDER_IDS' not in content  # v2's NPI is a plain copy, shown as its source
    assert "PROVIDER_IDS.NPI" in content and "Keep NPI as text?" in content
    assert content.count(f'id="card-question-{npi_question.pk}"') == 1  # asked on the card, not again below
    assert "Approve</button>" in content and "Send answer" in content


def test_stakeholder_sees_the_card_but_nothing_writable_and_is_refused(client_for, card_task, npi_question, viewer):
    client = client_for(viewer)
    content = client.get(reverse("missions:cockpit", args=[card_task.mission_id])).content.decode()
    assert "Changes since v1" in content and "Keep NPI as text?" in content
    for control in ("Approve</button>", "Reject with feedback", "Send answer", "Approve all shown", "decision-form",
                    "/answer/"):
        assert control not in content
    assert client.post(reverse("tasks:approve_all"), {"task": [card_task.pk]}, **HX).status_code == 403
    answer = reverse("tasks:card_answer", args=[card_task.pk, npi_question.pk])
    assert client.post(answer, {"answer": "yes"}, **HX).status_code == 403
    card_task.refresh_from_db()
    npi_question.refresh_from_db()
    assert card_task.status == TaskStatus.WAITING_APPROVAL and npi_question.status == QuestionStatus.OPEN


def test_a_task_owner_sees_no_buttons_on_an_agents_card(client_for, card_task, analyst):
    content = client_for(analyst).get(reverse("missions:cockpit", args=[card_task.mission_id])).content.decode()
    assert "Changes since v1" in content and "Approve</button>" not in content


def test_approve_on_the_card_approves_the_task_and_its_spec_version(client_for, card_task, lead):
    response = client_for(lead).post(reverse("tasks:approve", args=[card_task.pk]), **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "genesis:changed"
    content = response.content.decode()
    assert "Approved by lead." in content and "Approve</button>" not in content
    assert "mapping spec v2" in content and "Approved</span>" in content  # the version, now approved
    card_task.refresh_from_db()
    assert card_task.status == TaskStatus.DONE
    assert MappingSpecVersion.objects.get(number=2).status == "approved"


def test_reject_on_the_card_needs_feedback_then_reruns(client_for, card_task, lead):
    client = client_for(lead)
    refused = client.post(reverse("tasks:reject", args=[card_task.pk]), {"feedback": " "}, **HX)
    assert refused.status_code == 422 and "Feedback is required" in refused.content.decode()
    assert "Changes since v1" in refused.content.decode()  # the card again, with its table
    response = client.post(reverse("tasks:reject", args=[card_task.pk]), {"feedback": "keep NPI as text"}, **HX)
    assert response.status_code == 200 and "Rejected with feedback" in response.content.decode()
    assert HistoryEntry.objects.get(task=card_task, event="task.rejected").message == "keep NPI as text"
    card_task.refresh_from_db()
    assert card_task.status != TaskStatus.WAITING_APPROVAL


def test_answer_on_the_card_with_an_offered_option(client_for, card_task, npi_question, lead):
    url = reverse("tasks:card_answer", args=[card_task.pk, npi_question.pk])
    response = client_for(lead).post(url, {"answer": "yes", "answer_text": ""}, **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "genesis:changed"
    content = response.content.decode()
    assert "Answered: yes (by lead)." in content and f'id="approval-{card_task.pk}"' in content
    npi_question.refresh_from_db()
    assert npi_question.status == QuestionStatus.ANSWERED and npi_question.answer == "yes"
    assert npi_question.answered_by.username == "lead"


def test_free_text_goes_to_the_answer_verb_which_judges_it(client_for, card_task, npi_question, lead, mission):
    client = client_for(lead)
    url = reverse("tasks:card_answer", args=[card_task.pk, npi_question.pk])
    refused = client.post(url, {"answer": "yes", "answer_text": "VARCHAR(12)"}, **HX)
    assert refused.status_code == 422
    assert "Choose one of the offered answers: yes, no." in refused.content.decode()
    npi_question.refresh_from_db()
    assert npi_question.status == QuestionStatus.OPEN
    open_text = Question.objects.create(mission=mission, task=npi_question.task, addressed_to=lead,
                                        text="Which column is the feedback about?",
                                        context={"column": "PROVIDER_SUMMARY.FEEDBACK"})
    url = reverse("tasks:card_answer", args=[card_task.pk, open_text.pk])
    response = client.post(url, {"answer_text": "NPI = PROVIDERS.NPI"}, **HX)
    assert response.status_code == 200 and "Answered: NPI = PROVIDERS.NPI" in response.content.decode()
    open_text.refresh_from_db()
    assert open_text.answer == "NPI = PROVIDERS.NPI"


def test_a_mapping_question_takes_another_answer_from_the_card(client_for, card_task, npi_question, lead, mission):
    free = Question.objects.create(mission=mission, task=npi_question.task, addressed_to=lead,
                                   text="PROVIDER_SUMMARY.SPECIALTY: which source column?",
                                   options=["PROVIDERS.SPECIALTY", "none"],
                                   context={"column": "PROVIDER_SUMMARY.SPECIALTY", "free_answer": True})
    client = client_for(lead)
    content = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert f'id="card-answer-{free.pk}"' in content  # the other-answer box, on the SPECIALTY row
    assert f'id="card-answer-{npi_question.pk}"' not in content  # options only: no box the verb would refuse
    url = reverse("tasks:card_answer", args=[card_task.pk, free.pk])
    bad = client.post(url, {"answer": "none", "answer_text": "sql: SUM(("}, **HX)
    assert bad.status_code == 422
    assert (f'<p class="error small" role="alert" id="card-qerr-{free.pk}">answer: does not parse as a sqlite SQL '
            "expression") in bad.content.decode()  # next to the question it answers
    assert 'aria-invalid="true"' in bad.content.decode()
    free.refresh_from_db()
    assert free.status == QuestionStatus.OPEN
    response = client.post(url, {"answer": "none", "answer_text": "sql: UPPER(PROVIDERS.SPECIALTY)"}, **HX)
    assert response.status_code == 200 and "Answered: sql: UPPER(PROVIDERS.SPECIALTY)" in response.content.decode()
    free.refresh_from_db()
    assert free.answer == "sql: UPPER(PROVIDERS.SPECIALTY)" and free.status == QuestionStatus.ANSWERED


def test_a_question_of_another_mission_is_not_found_on_a_card(client_for, card_task, lead):
    other = MissionFactory(owner=lead)
    foreign = Question.objects.create(mission=other, task=TaskFactory(mission=other), addressed_to=lead, text="?")
    url = reverse("tasks:card_answer", args=[card_task.pk, foreign.pk])
    assert client_for(lead).post(url, {"answer_text": "x"}, **HX).status_code == 404


def test_approve_all_approves_each_and_reports_the_refused(client_for, mission, lead):
    first = mapping_task(mission, key="map_claim_summary")
    second = mapping_task(mission, key="map_patient_summary")
    done = mapping_task(mission, key="map_done", status=TaskStatus.DONE)
    foreign = TaskFactory(mission=MissionFactory(), status=TaskStatus.WAITING_APPROVAL)
    client = client_for(lead)
    content = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert "Approve all shown (2)" in content and 'hx-confirm="Approve the 2 tasks shown' in content
    response = client.post(reverse("tasks:approve_all"),
                           {"task": [first.pk, second.pk, done.pk, foreign.pk]}, **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "genesis:changed"
    content = response.content.decode()
    assert "Approved (2): map_claim_summary, map_patient_summary." in content
    assert "<strong>map_done</strong>: Task map_done is done; only a task waiting for approval can be approved." in (
        content)
    assert f"<strong>#{foreign.pk}</strong>: no such task waiting for you." in content
    # The approved cards leave the page at once (out of band); the refused stay.
    assert f'<div id="approval-{first.pk}" hx-swap-oob="delete">' in content
    assert f'id="approval-{done.pk}"' not in content
    assert dict(Task.objects.filter(pk__in=[first.pk, second.pk]).values_list("key", "status")) == {
        "map_claim_summary": "done", "map_patient_summary": "done"}
    assert HistoryEntry.objects.filter(event="task.approved", actor_user=lead).count() == 2
    foreign.refresh_from_db()
    assert foreign.status == TaskStatus.WAITING_APPROVAL


def test_approve_all_refuses_the_tasks_a_task_owner_may_not_approve(client_for, mission, analyst):
    agents = mapping_task(mission, key="map_claim_summary")
    own = TaskFactory(mission=mission, key="review", owner_agent=None, owner_user=analyst,
                      status=TaskStatus.WAITING_APPROVAL)
    client = client_for(analyst)
    assert client.post(reverse("tasks:approve_all"), {"task": [agents.pk]}, **HX).status_code == 403
    content = client.post(reverse("tasks:approve_all"), {"task": [agents.pk, own.pk]}, **HX).content.decode()
    assert "Approved (1): review." in content
    assert "analyst may not approve task map_claim_summary" in content
    agents.refresh_from_db()
    assert agents.status == TaskStatus.WAITING_APPROVAL


def test_approve_all_refuses_a_malformed_id_naming_the_field(client_for, card_task, lead):
    response = client_for(lead).post(reverse("tasks:approve_all"), {"task": ["7x"]}, **HX)
    assert response.status_code == 400 and "task: '7x' is not a task id." in response.content.decode()


def test_approve_all_without_htmx_redirects_with_messages(client_for, mission, lead):
    first, second = mapping_task(mission, key="a1"), mapping_task(mission, key="a2")
    response = client_for(lead).post(reverse("tasks:approve_all"), {"task": [first.pk, second.pk],
                                                                    "next": reverse("missions:my_work")})
    assert response.status_code == 302 and response["Location"] == reverse("missions:my_work")
    assert set(Task.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {"done"}


def test_my_work_lists_the_same_cards(client_for, card_task, npi_question, lead, viewer):
    content = client_for(lead).get(reverse("missions:my_work")).content.decode()
    assert "Changes since v1" in content and "type <del>INTEGER</del> → <ins>VARCHAR(10)</ins>" in content
    assert "<dt>Dry-run rows</dt><dd>470</dd>" in content and "Approve</button>" in content
    assert content.count("Keep NPI as text?") == 1
    assert "Nothing to approve." in client_for(viewer).get(reverse("missions:my_work")).content.decode()


def test_cockpit_and_my_work_queries_do_not_grow_with_the_cards(client_for, mission, lead,
                                                                django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(lead)

    def count(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    cockpit, my_work = reverse("missions:cockpit", args=[mission.pk]), reverse("missions:my_work")
    for i in range(2):
        propose(mission, mapping_task(mission, key=f"map_{i}"), provider_v1(), target=f"T{i}")
    two = count(cockpit), count(my_work)
    for i in range(2, 7):
        task = mapping_task(mission, key=f"map_{i}")
        propose(mission, task, provider_v1(), target=f"T{i}")
        propose(mission, task, provider_v2(), target=f"T{i}")
    assert (count(cockpit), count(my_work)) == two
    with django_assert_max_num_queries(40):
        client.get(cockpit)


def test_the_review_task_card_lists_the_missions_specs(client_for, card_task, mission, lead):
    review = TaskFactory(mission=mission, key="review_mapping_specs", title="Review and approve mapping specs",
                         owner_agent=None, owner_user=lead, status=TaskStatus.WAITING_APPROVAL)
    content = client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert f'id="approval-{review.pk}"' in content
    assert "The mission's mapping specs under review" in content
    assert '<th scope="row">PROVIDER_SUMMARY</th><td>v2</td>' in content


def test_cards_keep_the_pages_accessible(client_for, card_task, npi_question, lead):
    from tests.genesis.web.test_accessibility import headings, unlabelled_inputs

    for url in (reverse("missions:cockpit", args=[card_task.mission_id]), reverse("missions:my_work")):
        content = client_for(lead).get(url).content.decode()
        levels = headings(content)
        assert levels.count(1) == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), levels
        assert unlabelled_inputs(content) == []
        assert "<h4>Changes since v1</h4>" in content and 'scope="row">NPI<br>' in content
