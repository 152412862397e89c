"""Approve, reject with feedback and answer, in place (HTMX), through the engine's services; who may do it."""

import pytest
from django.urls import reverse

from history.models import HistoryEntry
from missions import services as mission_services
from missions.choices import Role
from tasks import dispatch
from tasks import services as task_services
from tasks.choices import QuestionStatus, TaskStatus
from tasks.models import Question, Run, Task
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def inline(django_capture_on_commit_callbacks):
    """Run a callable and every queued run it sets off (django-q2 sync mode, after the commit)."""

    def go(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return go


@pytest.fixture
def proposing(mission, agent, lead, inline):
    """An agent's task that proposes its work for approval, started: it waits for the Mission Owner."""
    task = task_services.task_create(mission=mission, key="map_claims", title="Define CLAIM_SUMMARY mapping",
                                     owner_agent=agent, config={"needs_approval": "Mapping of 11 columns.",
                                                                "artifact": "CLAIM_ID <- claims.claim_id"})
    inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    task.refresh_from_db()
    assert task.status == TaskStatus.WAITING_APPROVAL
    return task


@pytest.fixture
def asking(mission, agent, lead, inline):
    task = task_services.task_create(mission=mission, key="map_dx", title="Map PRIMARY_DIAGNOSIS",
                                     owner_agent=agent, config={"ask": "Which column is the primary diagnosis?",
                                                                "options": ["DIAGNOSIS_CODE", "DX2"],
                                                                "default": "DIAGNOSIS_CODE"})
    mission.refresh_from_db()
    if mission.status == "active":  # already started by another fixture: dispatch the new task
        inline(dispatch.dispatch_ready, mission_id=mission.pk, actor=lead)
    else:
        inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    return Question.objects.get(task=task)


def test_cockpit_shows_the_proposal_with_its_summary_artifact_and_decision_buttons(client_for, proposing, lead):
    content = client_for(lead).get(reverse("missions:cockpit", args=[proposing.mission_id])).content.decode()
    assert "Define CLAIM_SUMMARY mapping" in content and "Mapping of 11 columns." in content
    assert "map_claims-report.txt" in content
    assert "Approve</button>" in content and "Reject with feedback</button>" in content


def test_stakeholder_sees_no_decision_controls_and_is_refused_every_decision(client_for, proposing, viewer, asking):
    client = client_for(viewer)
    content = client.get(reverse("missions:cockpit", args=[proposing.mission_id])).content.decode()
    assert "Mapping of 11 columns." in content
    assert "Approve</button>" not in content and "Send answer" not in content
    assert client.post(reverse("tasks:approve", args=[proposing.pk]), **HX).status_code == 403
    assert client.post(reverse("tasks:reject", args=[proposing.pk]), {"feedback": "no"}, **HX).status_code == 403
    assert client.post(reverse("tasks:retry", args=[proposing.pk])).status_code == 403
    assert client.post(reverse("tasks:answer", args=[asking.pk]), {"answer": "DX2"}, **HX).status_code == 403
    proposing.refresh_from_db()
    asking.refresh_from_db()
    assert proposing.status == TaskStatus.WAITING_APPROVAL and asking.status == QuestionStatus.OPEN


def test_an_outsider_gets_404_for_decisions_on_another_mission(client_for, proposing, outsider, asking):
    client = client_for(outsider)
    assert client.post(reverse("tasks:approve", args=[proposing.pk])).status_code == 404
    assert client.post(reverse("tasks:answer", args=[asking.pk]), {"answer": "DX2"}).status_code == 404


def test_a_task_owner_cannot_approve_an_agents_proposal(client_for, proposing, analyst):
    response = client_for(analyst).post(reverse("tasks:approve", args=[proposing.pk]), **HX)
    assert response.status_code == 403


def test_get_on_a_decision_url_is_not_allowed(client_for, proposing, lead):
    assert client_for(lead).get(reverse("tasks:approve", args=[proposing.pk])).status_code == 405


def test_approve_in_place_finishes_the_task_and_tells_the_board(client_for, proposing, lead, inline):
    response = inline(client_for(lead).post, reverse("tasks:approve", args=[proposing.pk]),
                      {"feedback": "Looks right."}, **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "genesis:changed"
    content = response.content.decode()
    assert content.lstrip().startswith('<article class="decision htmx-container approval-card"')
    assert "Approved by lead." in content and "Approve</button>" not in content
    proposing.refresh_from_db()
    assert proposing.status == TaskStatus.DONE
    entry = HistoryEntry.objects.get(task=proposing, event="task.approved")
    assert entry.actor_user == lead and entry.message == "Looks right."


def test_reject_needs_feedback_and_says_so_next_to_the_field(client_for, proposing, lead):
    response = client_for(lead).post(reverse("tasks:reject", args=[proposing.pk]), {"feedback": "  "}, **HX)
    assert response.status_code == 422
    content = response.content.decode()
    assert "Feedback is required" in content and 'aria-invalid="true"' in content
    proposing.refresh_from_db()
    assert proposing.status == TaskStatus.WAITING_APPROVAL


def test_reject_with_feedback_reruns_the_task_with_the_feedback(client_for, proposing, lead, inline):
    response = inline(client_for(lead).post, reverse("tasks:reject", args=[proposing.pk]),
                      {"feedback": "PATIENT_ID must come from claims, not patients."}, **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "genesis:changed"
    assert "Rejected with feedback" in response.content.decode()
    runs = list(Run.objects.filter(task=proposing).order_by("attempt"))
    assert [r.status for r in runs] == ["rejected", "succeeded"]
    assert runs[1].result["feedback"] == ["PATIENT_ID must come from claims, not patients."]
    proposing.refresh_from_db()
    assert proposing.status == TaskStatus.DONE


def test_without_htmx_a_decision_redirects_back(client_for, proposing, lead, inline):
    response = inline(client_for(lead).post, reverse("tasks:approve", args=[proposing.pk]),
                      {"next": reverse("missions:my_work")})
    assert response.status_code == 302 and response["Location"] == reverse("missions:my_work")


def test_answer_in_place_resumes_the_task_with_the_answer(client_for, asking, lead, inline):
    client = client_for(lead)
    content = client.get(reverse("missions:cockpit", args=[asking.mission_id])).content.decode()
    assert "Which column is the primary diagnosis?" in content and "Send answer" in content
    bad = client.post(reverse("tasks:answer", args=[asking.pk]), {"answer": "SOMETHING"}, **HX)
    assert bad.status_code == 422 and "Choose one of the offered answers" in bad.content.decode()
    response = inline(client.post, reverse("tasks:answer", args=[asking.pk]), {"answer": "DX2"}, **HX)
    assert response.status_code == 200 and "Answered: DX2" in response.content.decode()
    asking.refresh_from_db()
    assert asking.status == QuestionStatus.ANSWERED and asking.answered_by == lead
    task = Task.objects.get(pk=asking.task_id)
    assert task.status == TaskStatus.DONE
    assert Run.objects.filter(task=task, status="succeeded").get().result["answer"] == "DX2"


def test_my_work_lists_what_waits_for_me_and_nothing_for_a_stakeholder(client_for, proposing, asking, lead, viewer,
                                                                         analyst):
    own = task_services.task_create(mission=proposing.mission, key="sign_off", title="Sign off the specs",
                                    owner_user=analyst)
    content = client_for(lead).get(reverse("missions:my_work")).content.decode()
    assert "Define CLAIM_SUMMARY mapping" in content and "Which column is the primary diagnosis?" in content
    content = client_for(analyst).get(reverse("missions:my_work")).content.decode()
    assert "Define CLAIM_SUMMARY mapping" not in content and own.title in content
    content = client_for(viewer).get(reverse("missions:my_work")).content.decode()
    assert "Nothing to approve." in content and "No open question." in content
    fragment = client_for(lead).get(reverse("missions:my_work"), **HX).content.decode()
    assert fragment.lstrip().startswith('<div id="my-work"')


def test_a_person_owned_task_waits_in_its_owners_inbox_and_is_approved_there(client_for, mission, analyst, lead,
                                                                               inline):
    mission_services.membership_set(mission=mission, user=analyst, role=Role.TASK_OWNER, actor=lead)
    task = task_services.task_create(mission=mission, key="review", title="Review specs", owner_user=analyst)
    inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    task.refresh_from_db()
    assert task.status == TaskStatus.WAITING_APPROVAL
    client = client_for(analyst)
    assert "Review specs" in client.get(reverse("missions:my_work")).content.decode()
    response = inline(client.post, reverse("tasks:approve", args=[task.pk]), **HX)
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
