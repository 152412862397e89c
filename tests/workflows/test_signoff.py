"""Sign-off: the Mission Owner closes a finished mission with a note, stakeholders approve the delivered outputs or
raise a concern, and a mission that names required stakeholders cannot close until each has approved."""

from __future__ import annotations

import pytest

from genesis.exceptions import DomainError
from history.models import HistoryEntry
from missions import services as mission_services
from missions.choices import MissionStatus, Role
from missions.models import Mission, MissionSignoff
from tests.factories import TaskFactory, UserFactory
from workflows import missions as mission_workflows
from workflows import tasks as task_workflows

pytestmark = pytest.mark.django_db


def complete(mission: Mission) -> Mission:
    for status in (MissionStatus.ACTIVE, MissionStatus.COMPLETED):
        mission_services.mission_transition(mission=mission, to=status)
    return mission


def test_close_records_the_owners_note_in_history(mission, lead):
    complete(mission)
    mission_workflows.mission_close(mission=mission, actor=lead, note="  Delivered and accepted by finance.  ")
    mission.refresh_from_db()
    assert mission.status == MissionStatus.CLOSED and mission.closed_at is not None
    entry = HistoryEntry.objects.filter(mission=mission, event="mission.closed").get()
    assert entry.actor_user == lead and entry.message == "Delivered and accepted by finance."
    assert entry.data == {"note": "Delivered and accepted by finance."}
    assert (entry.from_status, entry.to_status) == ("completed", "closed")


def test_close_without_a_note_says_signed_off(mission, lead):
    complete(mission)
    mission_workflows.mission_close(mission=mission, actor=lead)
    assert HistoryEntry.objects.get(mission=mission, event="mission.closed").message == "Signed off."


def test_a_note_too_long_is_refused_naming_the_field(mission, lead):
    complete(mission)
    with pytest.raises(DomainError) as refused:
        mission_workflows.mission_close(mission=mission, actor=lead, note="x" * 2001)
    assert refused.value.field == "note" and "2000" in refused.value.message
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED


def test_close_is_refused_while_a_required_stakeholder_has_not_approved(mission, lead, viewer):
    mission_services.membership_set(mission=mission, user=viewer, role=Role.STAKEHOLDER, actor=lead,
                                    signoff_required=True)
    other = UserFactory(username="optional")
    mission_services.membership_set(mission=mission, user=other, role=Role.STAKEHOLDER, actor=lead)
    complete(mission)
    with pytest.raises(DomainError) as refused:
        mission_workflows.mission_close(mission=mission, actor=lead, note="Done")
    assert refused.value.code == "signoff_missing" and refused.value.field == "signoffs"
    assert "Vic Viewer" in refused.value.message and "optional" not in refused.value.message
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED

    # A concern is not an approval.
    mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="concern", note="Totals differ.")
    with pytest.raises(DomainError, match="Vic Viewer"):
        mission_workflows.mission_close(mission=mission, actor=lead)

    mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="approve", note="Totals fixed.")
    mission_workflows.mission_close(mission=mission, actor=lead, note="Done")
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.CLOSED


def test_an_approval_given_before_the_mission_reopened_does_not_count(mission, lead, viewer):
    mission_services.membership_set(mission=mission, user=viewer, role=Role.STAKEHOLDER, actor=lead,
                                    signoff_required=True)
    complete(mission)
    mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="approve")
    mission_services.mission_transition(mission=mission, to=MissionStatus.ACTIVE, message="Rework.")
    mission_services.mission_transition(mission=mission, to=MissionStatus.COMPLETED)
    with pytest.raises(DomainError, match="Vic Viewer"):
        mission_workflows.mission_close(mission=mission, actor=lead)


def test_only_a_stakeholder_can_be_required_to_sign_off(mission, lead, analyst):
    with pytest.raises(DomainError) as refused:
        mission_services.membership_set(mission=mission, user=analyst, role=Role.TASK_OWNER, actor=lead,
                                        signoff_required=True)
    assert refused.value.field == "signoff_required"


def test_a_stakeholder_signs_off_and_history_records_it(mission, viewer):
    complete(mission)
    signoff = mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="approve",
                                                note="The three summaries match the finance report.")
    stored = MissionSignoff.objects.get()
    assert (stored.pk, stored.mission, stored.user, stored.decision) == (signoff.pk, mission, viewer, "approve")
    entry = HistoryEntry.objects.get(mission=mission, event="signoff.approve")
    assert entry.actor_user == viewer and entry.data == {"signoff": signoff.pk, "decision": "approve"}
    assert entry.message == "viewer approved: The three summaries match the finance report."
    concern = mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="concern",
                                                note="PATIENT_SUMMARY lacks March.")
    assert concern.decision == "concern"
    assert HistoryEntry.objects.get(event="signoff.concern").message == (
        "viewer raised a concern: PATIENT_SUMMARY lacks March.")


def test_the_history_entry_and_the_signoff_are_one_transaction(mission, viewer, monkeypatch):
    complete(mission)

    def broken(**kwargs):
        raise RuntimeError("history is down")

    monkeypatch.setattr("missions.services.history_record", broken)
    with pytest.raises(RuntimeError):
        mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="approve")
    assert not MissionSignoff.objects.exists()


@pytest.mark.parametrize("who", ["lead", "analyst", "outsider", "admin_user"])
def test_anyone_but_a_stakeholder_is_refused_a_signoff(mission, who, request):
    complete(mission)
    with pytest.raises(DomainError) as refused:
        mission_workflows.mission_signoff(mission=mission, actor=request.getfixturevalue(who), decision="approve")
    assert refused.value.code == "forbidden"
    assert not MissionSignoff.objects.exists()


@pytest.mark.parametrize("status", [MissionStatus.DRAFT, MissionStatus.ACTIVE, MissionStatus.CLOSED])
def test_outputs_are_signed_off_only_once_the_mission_completed_and_before_it_closes(mission, viewer, lead, status):
    path = {MissionStatus.DRAFT: [], MissionStatus.ACTIVE: [MissionStatus.ACTIVE],
            MissionStatus.CLOSED: [MissionStatus.ACTIVE, MissionStatus.COMPLETED, MissionStatus.CLOSED]}[status]
    for step in path:
        mission_services.mission_transition(mission=mission, to=step)
    with pytest.raises(DomainError) as refused:
        mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="approve")
    assert refused.value.code == "invalid_transition" and refused.value.field == "status"


def test_a_concern_needs_a_note_and_the_decision_is_named(mission, viewer):
    complete(mission)
    with pytest.raises(DomainError) as refused:
        mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="concern", note="  ")
    assert refused.value.field == "note"
    with pytest.raises(DomainError) as refused:
        mission_workflows.mission_signoff(mission=mission, actor=viewer, decision="maybe")
    assert refused.value.field == "decision" and "approve, concern" in refused.value.message
    assert not MissionSignoff.objects.exists()


def test_a_stakeholder_still_cannot_change_anything_else(mission, viewer, lead):
    task = TaskFactory(mission=mission, key="review", owner_user=lead, owner_agent=None)
    complete(mission)
    for verb, arguments in [
        (mission_workflows.mission_close, {"mission": mission}),
        (mission_workflows.mission_pause, {"mission": mission}),
        (mission_workflows.mission_cancel, {"mission": mission}),
        (task_workflows.task_approve, {"task": task}),
    ]:
        with pytest.raises(DomainError) as refused:
            verb(actor=viewer, **arguments)
        assert refused.value.code == "forbidden", verb.__name__
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED
