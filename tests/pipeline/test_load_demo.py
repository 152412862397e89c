import sqlite3
from io import StringIO

import pytest
from django.core.management import call_command

from agents.models import Connection
from genesis.exceptions import DomainError
from missions import services as mission_services
from missions.choices import MissionStatus
from missions.models import Membership, Mission
from workflows import missions as mission_workflows


def test_load_demo_builds_and_registers_everything(db, tmp_path, monkeypatch):
    monkeypatch.setenv("GENESIS_DEMO_PASSWORD", "demo-pass-123")
    out = StringIO()
    call_command("load_demo", claims=500, seed=9, dir=str(tmp_path), stdout=out)
    source = Connection.objects.get(name="HCLS_DEMO_1_SOURCES")
    assert (source.engine, source.purpose) == ("sqlite", "source")
    assert Connection.objects.get(name="HCLS_DEMO_1_TARGET").purpose == "target"
    assert Connection.objects.get(name="HCLS_DEMO_1_VALIDATION").purpose == "validation"
    db_file = sqlite3.connect(source.location)
    assert db_file.execute("SELECT COUNT(*) FROM CLAIMS").fetchone()[0] == 500
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.get(username="demo_owner")
    assert owner.check_password("demo-pass-123")
    assert get_user_model().objects.filter(username="demo_stakeholder").exists()
    assert (tmp_path / "project.yml").is_file()
    # Deterministic: loading again with the same seed gives the same file contents.
    first = db_file.execute("SELECT * FROM CLAIM_DETAILS ORDER BY LINE_ID").fetchall()
    call_command("load_demo", claims=500, seed=9, dir=str(tmp_path), stdout=StringIO())
    again = sqlite3.connect(source.location).execute("SELECT * FROM CLAIM_DETAILS ORDER BY LINE_ID").fetchall()
    assert first == again and Connection.objects.filter(name__startswith="HCLS_DEMO_1").count() == 3


def test_load_demo_launch_creates_the_mission_with_its_spec_file(db, tmp_path):
    call_command("load_demo", claims=200, seed=1, dir=str(tmp_path), launch=True, stdout=StringIO())
    mission = Mission.objects.get()
    assert mission.owner.username == "demo_owner" and mission.spec_file
    assert mission.source_connection.name == "HCLS_DEMO_1_SOURCES"
    keys = set(mission.tasks.values_list("key", flat=True))
    assert {"initialize", "inventory_sources", "map_claim_summary", "review_mapping_specs"} <= keys
    from pipeline.specfile import load_mission_spec

    assert load_mission_spec(mission)["sources"]["connection"] == "HCLS_DEMO_1_SOURCES"


def test_the_demo_stakeholder_must_sign_off_before_the_owner_can_close(db, tmp_path):
    out = StringIO()
    call_command("load_demo", claims=200, seed=1, dir=str(tmp_path), launch=True, stdout=out)
    assert "demo_stakeholder's sign-off is required before it closes" in out.getvalue()
    mission = Mission.objects.get()
    membership = Membership.objects.get(mission=mission, user__username="demo_stakeholder")
    assert (membership.role, membership.signoff_required) == ("stakeholder", True)
    for status in (MissionStatus.ACTIVE, MissionStatus.COMPLETED):
        mission_services.mission_transition(mission=mission, to=status)
    with pytest.raises(DomainError) as refused:
        mission_workflows.mission_close(mission=mission, actor=mission.owner, note="Delivered.")
    assert refused.value.code == "signoff_missing" and "the sign-off of Demo Stakeholder is required" in (
        refused.value.message)
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED
    mission_workflows.mission_signoff(mission=mission, actor=membership.user, decision="approve")
    mission_workflows.mission_close(mission=mission, actor=mission.owner, note="Delivered.")
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.CLOSED
