import pytest

from genesis.exceptions import DomainError, InvalidTransition
from history.models import HistoryEntry
from missions import services
from missions.choices import MISSION_TRANSITIONS, MissionStatus, Role
from missions.models import Membership, Mission
from missions.permissions import can_manage, can_view, can_work_on, role_of
from tests.factories import MissionFactory, UserFactory
from workflows import missions as mission_workflows

pytestmark = pytest.mark.django_db

ALL_PAIRS = [(a, b) for a in MissionStatus.values for b in MissionStatus.values if a != b]


def _force_status(mission, status):
    Mission.objects.filter(pk=mission.pk).update(status=status)
    mission.refresh_from_db()


def test_create_gives_owner_the_owner_role_and_records_creation(lead):
    mission = services.mission_create(name="M", objective="Targets reconcile with sources.", owner=lead)
    assert mission.status == MissionStatus.DRAFT
    assert Membership.objects.get(mission=mission).role == Role.MISSION_OWNER
    entry = HistoryEntry.objects.get(mission=mission)
    assert (entry.event, entry.to_status, entry.actor_user) == ("mission.created", "draft", lead)


def test_create_refuses_bad_input_and_writes_nothing(lead):
    with pytest.raises(DomainError) as error:
        services.mission_create(name="M", objective="x", owner=lead, escalation_emails=["not-an-email"])
    assert error.value.field == "escalation_emails"
    assert "not-an-email" in error.value.message
    assert not Mission.objects.exists()
    assert not HistoryEntry.objects.exists()


@pytest.mark.parametrize(("start", "to"), ALL_PAIRS)
def test_every_transition_is_allowed_or_refused_by_the_table(lead, start, to):
    mission = MissionFactory(owner=lead)
    _force_status(mission, start)
    before = HistoryEntry.objects.count()
    if to in MISSION_TRANSITIONS[start]:
        services.mission_transition(mission=mission, to=to, actor=lead)
        mission.refresh_from_db()
        assert mission.status == to
        entry = HistoryEntry.objects.latest("id")
        assert (entry.from_status, entry.to_status, entry.event) == (start, to, f"mission.{to}")
        assert HistoryEntry.objects.count() == before + 1
    else:
        with pytest.raises(InvalidTransition) as error:
            services.mission_transition(mission=mission, to=to, actor=lead)
        assert start in error.value.message and to in error.value.message
        mission.refresh_from_db()
        assert mission.status == start
        assert HistoryEntry.objects.count() == before


def test_lifecycle_sets_timestamps_and_one_history_entry_per_change(mission, lead):
    mission_workflows.mission_launch(mission=mission, actor=lead)
    mission_workflows.mission_pause(mission=mission, actor=lead, reason="Waiting for the source owner")
    mission_workflows.mission_resume(mission=mission, actor=lead)
    services.mission_transition(mission=mission, to=MissionStatus.COMPLETED, actor=lead)
    mission_workflows.mission_close(mission=mission, actor=lead, note="Looks right.")
    mission.refresh_from_db()
    assert mission.launched_at and mission.completed_at and mission.closed_at
    events = list(
        HistoryEntry.objects.filter(mission=mission, event__startswith="mission.").values_list("event", flat=True)
    )
    assert events == [
        "mission.created", "mission.active", "mission.paused", "mission.active", "mission.completed",
        "mission.closed",
    ]
    assert HistoryEntry.objects.get(event="mission.paused").message == "Waiting for the source owner"


def test_resume_of_a_mission_that_is_not_paused_is_refused(mission, lead):
    with pytest.raises(DomainError, match="Only a paused mission can be resumed"):
        mission_workflows.mission_resume(mission=mission, actor=lead)


def test_update_records_changed_fields_and_refuses_status(mission, lead):
    services.mission_update(mission=mission, actor=lead, scope="Bronze tables only", mode="continuous")
    entry = HistoryEntry.objects.filter(event="mission.updated").get()
    assert entry.data["changed"]["scope"] == {"from": "", "to": "Bronze tables only"}
    assert entry.data["changed"]["mode"] == {"from": "step", "to": "continuous"}
    with pytest.raises(DomainError) as error:
        services.mission_update(mission=mission, actor=lead, status="active")
    assert error.value.field == "status"
    mission.refresh_from_db()
    assert mission.status == "draft"


def test_roles_drive_permissions(mission, lead, analyst, viewer):
    outsider = UserFactory(username="outsider")
    assert role_of(lead, mission) == Role.MISSION_OWNER
    assert role_of(analyst, mission) == Role.TASK_OWNER
    assert role_of(viewer, mission) == Role.STAKEHOLDER
    assert role_of(outsider, mission) is None
    assert [can_view(u, mission) for u in (lead, analyst, viewer, outsider)] == [True, True, True, False]
    assert [can_manage(u, mission) for u in (lead, analyst, viewer, outsider)] == [True, False, False, False]
    assert [can_work_on(u, mission) for u in (lead, analyst, viewer, outsider)] == [True, True, False, False]
    assert list(Mission.objects.visible_to(viewer)) == [mission]
    assert list(Mission.objects.visible_to(outsider)) == []


def test_owner_cannot_lose_the_owner_role(mission, lead):
    with pytest.raises(DomainError, match="keeps the mission_owner role"):
        services.membership_set(mission=mission, user=lead, role=Role.STAKEHOLDER)
    with pytest.raises(DomainError, match="cannot be removed"):
        services.membership_remove(mission=mission, user=lead)


def test_update_attaches_a_spec_file_to_a_mission_without_one(mission, lead):
    from django.core.files.base import ContentFile

    updated = services.mission_update(mission=mission, actor=lead, spec_file=ContentFile(b"targets: {}", "p.yml"))
    assert updated.spec_file.name.startswith("specs/") and updated.spec_file.name.endswith(".yml")
    entry = HistoryEntry.objects.filter(event="mission.updated").get()
    assert entry.data["changed"]["spec_file"]["from"] == ""


def test_staff_may_do_everything_without_a_role(mission):
    staff = UserFactory(username="platform-staff", is_staff=True)
    assert role_of(staff, mission) is None
    assert can_view(staff, mission) and can_manage(staff, mission) and can_work_on(staff, mission)
