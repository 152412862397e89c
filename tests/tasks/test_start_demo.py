import io

import pytest
from django.core.management import call_command

from missions.models import Mission
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


def test_start_demo_loads_and_starts_the_mission_once(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("start_demo", claims=300, seed=7)
    call_command("start_demo", claims=300, seed=7)
    mission = Mission.objects.get()
    assert mission.name == "Healthcare Data Pipeline (demo)"
    assert mission.mode == "continuous"
    assert mission.status == "active"
    assert mission.tasks.count() == 12
    assert Task.objects.filter(mission=mission).exclude(status="pending").exists()
    assert mission.memberships.filter(user__username="demo_stakeholder", role="stakeholder").exists()


def test_start_demo_names_the_port_the_server_listens_on(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("PORT", "8123")
    out = io.StringIO()
    call_command("start_demo", claims=300, seed=7, stdout=out)
    assert "http://127.0.0.1:8123/missions/" in out.getvalue()
    out = io.StringIO()
    call_command("start_demo", claims=300, seed=7, port=9001, host="0.0.0.0", stdout=out)  # noqa: S104
    assert "http://0.0.0.0:9001/missions/" in out.getvalue()
    assert ":8000/" not in out.getvalue()
