"""Running SQL is a permission tied to connections: every route a probe used to read another team's data through a
check's evidence now fails, and says why.

The probe: a signed-in user with no role and no staff flag imported a blueprint whose exit check was a
``sql_assert`` on the demo's source (``SELECT group_concat(FIRST_NAME || ...) FROM PATIENTS``), launched it over
the API, re-checked the phase and read patient names in the evidence.
"""

import sqlite3

import pytest
from django.db import connection as django_db

from agents.models import Connection
from blueprints.models import Blueprint, CheckEvaluation
from blueprints.services import blueprint_import
from history.models import HistoryEntry
from missions.models import Mission
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

STOLEN = "SELECT group_concat(FIRST_NAME || ' ' || BIRTH_DATE || ' ' || ZIP_CODE, ';') FROM PATIENTS"


def blueprint_text(connection: str, query: str = STOLEN, slug: str = "exfiltrate") -> str:
    return f"""
slug: {slug}
name: Harmless looking
phases:
- name: Look
  actions:
  - key: wait
    title: Wait for the owner
    owner: mission_owner
  exit_criteria:
  - type: sql_assert
    params:
      connection: {connection}
      query: "{query}"
      expected: nobody
"""


@pytest.fixture
def patients(tmp_path):
    """The demo's kind of source: patients with names, birth dates and ZIP codes; only staff may give it away."""
    path = tmp_path / "patients.sqlite3"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE PATIENTS (PATIENT_ID INTEGER, FIRST_NAME TEXT, BIRTH_DATE TEXT, ZIP_CODE TEXT)")
        db.executemany("INSERT INTO PATIENTS VALUES (?, ?, ?, ?)",
                       [(1, "Ada", "1961-02-03", "02139"), (2, "Grace", "1977-08-09", "10001")])
    db.close()
    return Connection.objects.create(name="HCLS_DEMO_1_SOURCES", engine="sqlite", location=str(path),
                                     purpose="source")


def finish_the_phase(api, mission):
    """The owner approves the phase's only task: its exit checks run, as they do when a phase's work is done."""
    task = mission.tasks.get(key="wait")
    response = api.post(f"/api/v1/tasks/{task.pk}/approve/", {"note": "done"}, format="json")
    assert response.status_code == 200, response.json()
    return mission.phases.get()


def launcher():
    """Signed in, allowed to create missions, but in none of the connection's groups."""
    from django.contrib.auth.models import Permission

    user = UserFactory(username="launcher")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="missions", codename="add_mission"))
    return user


def test_a_user_without_a_role_cannot_import_a_blueprint(as_user, outsider, patients):
    response = as_user(outsider).post("/api/v1/blueprints/import/",
                                      {"text": blueprint_text(patients.name), "filename": "x.yaml"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied" and "import" in response.json()["detail"]
    assert not Blueprint.objects.exists()


def test_a_user_without_a_role_cannot_create_or_launch_missions(as_user, client, outsider, admin_user, patients):
    version = blueprint_import(text=blueprint_text(patients.name), filename="x.yaml", actor=admin_user)
    api = as_user(outsider)
    launch = api.post(f"/api/v1/blueprints/{version.blueprint.pk}/launch/",
                      {"name": "Mine", "objective": "Mine.", "start": True}, format="json")
    create = api.post("/api/v1/missions/", {"name": "Mine", "objective": "Mine."}, format="json")
    assert (launch.status_code, create.status_code) == (403, 403)
    client.force_login(outsider)
    assert client.get("/missions/launch/").status_code == 403
    assert not Mission.objects.exists()


def test_launching_with_a_connection_one_may_not_give_is_refused_and_stores_nothing(as_user, admin_user, patients):
    version = blueprint_import(text=blueprint_text(patients.name), filename="x.yaml", actor=admin_user)
    response = as_user(launcher()).post(f"/api/v1/blueprints/{version.blueprint.pk}/launch/",
                                        {"name": "Mine", "objective": "Mine.", "start": True}, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "connection_not_allowed"
    assert body["errors"] == {"params": [
        "launcher may not give connection(s) HCLS_DEMO_1_SOURCES to a mission: only staff or members of the "
        "connection's groups may."]}
    assert not Mission.objects.exists() and not HistoryEntry.objects.exists()


def test_a_phase_recheck_of_a_mission_not_granted_the_connection_reads_nothing(as_user, lead, admin_user, patients):
    """Even a mission that exists (here launched before its blueprint named the connection) cannot read it."""
    from blueprints.services import blueprint_launch

    version = blueprint_import(text=blueprint_text("NOT_YET_REGISTERED"), filename="x.yaml", actor=admin_user)
    mission = blueprint_launch(version=version, name="Mine", objective="Mine.", owner=lead, actor=lead)
    phase = mission.phases.get()
    phase.exit_criteria = [{**phase.exit_criteria[0], "params": {**phase.exit_criteria[0]["params"],
                                                                  "connection": patients.name}}]
    phase.save(update_fields=["exit_criteria"])
    api = as_user(lead)
    assert api.post(f"/api/v1/missions/{mission.pk}/launch/").status_code == 200
    assert finish_the_phase(api, mission).status == "failed"
    response = api.post(f"/api/v1/phases/{phase.pk}/recheck/")
    assert response.status_code == 200, response.json()
    assert CheckEvaluation.objects.filter(phase=phase).count() == 2
    result = CheckEvaluation.objects.filter(phase=phase).latest("pk")
    assert not result.passed
    assert "may not use connection HCLS_DEMO_1_SOURCES" in result.message
    shown = str(result.evidence) + result.message + str(api.get(f"/api/v1/check-results/{result.pk}/").json())
    for secret in ("Ada", "Grace", "1961-02-03", "02139"):
        assert secret not in shown


def test_staff_grant_lets_the_check_run_and_its_evidence_is_cut_not_exported(as_user, lead, admin_user, patients):
    from blueprints.services import blueprint_launch

    query = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
             "SELECT group_concat(FIRST_NAME || printf('%05d', i), ',') FROM n, PATIENTS")
    version = blueprint_import(text=blueprint_text(patients.name, query=query), filename="x.yaml",
                               actor=admin_user)
    mission = blueprint_launch(version=version, name="Granted", objective="Mine.", owner=lead, actor=admin_user)
    assert list(patients.missions.all()) == [mission]
    assert HistoryEntry.objects.filter(mission=mission, event="connection.granted").count() == 1
    api = as_user(lead)
    assert api.post(f"/api/v1/missions/{mission.pk}/launch/").status_code == 200
    assert finish_the_phase(api, mission).status == "failed"
    result = CheckEvaluation.objects.filter(phase__mission=mission).latest("pk")
    assert not result.passed  # it ran: the value is not "nobody"
    assert result.evidence["value_truncated"] is True and result.evidence["value_chars"] > 3000
    assert len(result.evidence["value"]) <= 201 and len(result.message) < 300


@pytest.mark.parametrize("query", [
    "ATTACH DATABASE '{path}' AS stolen",
    "SELECT readfile('/etc/passwd')",
    "SELECT name FROM sqlite_master",
    "PRAGMA table_info(PATIENTS)",
])
def test_a_check_query_that_is_not_one_plain_read_is_refused_and_creates_nothing(
        as_user, lead, admin_user, patients, tmp_path, query):
    from blueprints.services import blueprint_launch

    target = tmp_path / "attached-by-a-check.sqlite3"
    version = blueprint_import(text=blueprint_text(patients.name, query=query.format(path=target)),
                               filename="x.yaml", actor=admin_user)
    mission = blueprint_launch(version=version, name="Refused", objective="Mine.", owner=lead, actor=admin_user)
    api = as_user(lead)
    assert api.post(f"/api/v1/missions/{mission.pk}/launch/").status_code == 200
    assert finish_the_phase(api, mission).status == "failed"
    result = CheckEvaluation.objects.filter(phase__mission=mission).latest("pk")
    assert not result.passed and result.evidence.get("code") == "query_refused", result.message
    assert not target.exists()


def test_a_password_given_as_a_dsn_parameter_goes_to_the_secret(as_user, admin_user):
    response = as_user(admin_user).post("/api/v1/connections/", {
        "name": "WH", "engine": "postgresql", "purpose": "target",
        "location": "postgres://etl@db.example.com:5432/wh?sslmode=require&password=hunter2",
    }, format="json")
    assert response.status_code == 201, response.json()
    stored = Connection.objects.get(name="WH")
    assert stored.location == "postgres://etl@db.example.com:5432/wh?sslmode=require"
    assert stored.secret == "hunter2" and "hunter2" not in str(response.json())


def test_the_platforms_own_sqlite_database_is_refused_at_registration(monkeypatch, tmp_path):
    from django.core.exceptions import ValidationError

    from agents.connectors import platform

    own = tmp_path / "genesis.sqlite3"
    sqlite3.connect(own).close()
    monkeypatch.setattr(platform, "platform_database",
                        lambda: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(own)})
    for location in (str(own), f"sqlite:///{own}", str(tmp_path / "." / "genesis.sqlite3")):
        with pytest.raises(ValidationError, match="platform's own database"):
            Connection(name="OWN", engine="sqlite", location=location, purpose="source").full_clean()
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).close()
    Connection(name="OTHER", engine="sqlite", location=str(other), purpose="source").full_clean()


@pytest.mark.skipif(django_db.vendor != "postgresql", reason="needs the suite to run on PostgreSQL")
def test_the_platforms_own_postgresql_database_is_refused_at_registration(as_user, admin_user):
    own = django_db.settings_dict
    for host in ("127.0.0.1", "localhost"):
        response = as_user(admin_user).post("/api/v1/connections/", {
            "name": f"OWN_{host}", "engine": "postgresql", "purpose": "source",
            "location": f"postgres://{own['USER']}@{host}:{own['PORT'] or 5432}/{own['NAME']}",
        }, format="json")
        assert response.status_code == 400, response.json()
        assert "platform's own database" in str(response.json()["errors"]["location"])
    assert not Connection.objects.exists()
