"""The Mission Owner hears of each stakeholder sign-off, through the notifications the completion email uses (stored,
sent after the commit, every attempt recorded): an approval to the owner alone, a concern to the escalation channels
too; a refused sign-off tells no one."""

from __future__ import annotations

import pytest
from django.core import mail

from genesis.exceptions import DomainError
from history.models import HistoryEntry
from missions import services as mission_services
from missions.choices import Role
from tasks.models import Notification
from tests.factories import UserFactory
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db


@pytest.fixture
def completed(completed):
    completed.escalation_emails = ["oncall@example.com"]
    completed.save(update_fields=["escalation_emails"])
    return completed


def test_an_approval_is_mailed_to_the_owner_alone_after_the_commit(completed, viewer, lead,
                                                                   django_capture_on_commit_callbacks):
    finance = UserFactory(username="finance")
    mission_services.membership_set(mission=completed, user=finance, role=Role.STAKEHOLDER, actor=lead,
                                    signoff_required=True)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        mission_workflows.mission_signoff(mission=completed, actor=viewer, decision="approve", note="Totals match.")
    assert mail.outbox == []  # nothing leaves before the sign-off is committed
    for callback in callbacks:
        callback()
    sent = Notification.objects.get(mission=completed, event="signoff.approve")
    assert (sent.target, sent.status) == (lead.email, "sent")
    [message] = mail.outbox
    assert message.to == [lead.email]
    assert message.subject == "[Healthcare Data Pipeline] Vic Viewer signed off the outputs"
    assert "Vic Viewer (viewer) approved the delivered outputs of “Healthcare Data Pipeline”: Totals match." in (
        message.body)
    assert "Still waiting for the required sign-off of finance." in message.body
    queued = HistoryEntry.objects.get(mission=completed, event="notification.queued", data__event="signoff.approve")
    assert queued.data["channels"] == [f"email:{lead.email}"] and queued.data["person"] == "lead"


def test_the_last_required_approval_tells_the_owner_nothing_is_missing(completed, viewer, lead,
                                                                       django_capture_on_commit_callbacks):
    mission_services.membership_set(mission=completed, user=viewer, role=Role.STAKEHOLDER, actor=lead,
                                    signoff_required=True)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        mission_workflows.mission_signoff(mission=completed, actor=viewer, decision="approve")
    [message] = mail.outbox
    assert "approved the delivered outputs of “Healthcare Data Pipeline”." in message.body
    assert "No required sign-off is missing: you can close the mission" in message.body


def test_a_concern_goes_to_the_owner_and_the_escalation_channels(completed, viewer, lead,
                                                                 django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        mission_workflows.mission_signoff(mission=completed, actor=viewer, decision="concern",
                                          note="March is missing from the claims summary.")
    assert {n.target for n in Notification.objects.filter(mission=completed, event="signoff.concern")} == {
        "oncall@example.com", lead.email}
    assert sorted(address for message in mail.outbox for address in message.to) == sorted(
        ["oncall@example.com", lead.email])
    message = mail.outbox[0]
    assert message.subject == "[Healthcare Data Pipeline] Vic Viewer raised a concern"
    assert "raised a concern about the delivered outputs of “Healthcare Data Pipeline”: March is missing" in (
        message.body)


def test_a_refused_sign_off_tells_no_one(mission, viewer, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(DomainError):
        mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="approve")  # still a draft
    assert mail.outbox == [] and not Notification.objects.exists()


def test_a_sign_off_through_the_api_mails_the_owner(as_user, completed, viewer, lead,
                                                    django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(viewer).post(f"/api/v1/missions/{completed.pk}/signoff/",
                                        {"decision": "approve", "note": "Good."}, format="json")
    assert response.status_code == 201
    assert [m.to for m in mail.outbox] == [[lead.email]]
