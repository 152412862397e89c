"""Environments through the API: defined by the Mission Owner, listed within the missions the caller can see, and
built on request (a recorded, permission-checked background job)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from history.models import HistoryEntry
from pipeline.dbt import services as dbt_services
from pipeline.models import Environment
from tests.factories import ConnectionFactory, MissionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(db):
    return ConnectionFactory(name="HCLS_STAGE", purpose="target")


@pytest.fixture
def stage(mission, target, lead):
    return dbt_services.environment_set(mission=mission, name="stage", target=target, actor=lead,
                                        description="Pre-production")


@pytest.fixture
def prod(mission, lead):
    return dbt_services.environment_set(mission=mission, name="prod", target=ConnectionFactory(name="HCLS_PROD"),
                                        actor=lead)


def _events(mission, event):
    return list(HistoryEntry.objects.filter(mission=mission, event=event).values_list("actor_user__username",
                                                                                      "data"))


# --- define -------------------------------------------------------------------------------------------------------


def test_an_environment_dbt_could_not_build_from_the_source_is_refused_naming_the_target(as_user, lead, mission):
    """On PostgreSQL dbt reads the bronze tables in the target's own database: an environment in another database
    is refused when it is defined, not when its build fails."""
    mission.source_connection = ConnectionFactory(name="SHOP", engine="postgresql", purpose="source",
                                                  location="postgres://app@db.example:5432/shop")
    mission.save(update_fields=["source_connection"])
    ConnectionFactory(name="SHOP_PROD", engine="postgresql", purpose="target",
                      location="postgres://app@db.example:5432/warehouse")
    ConnectionFactory(name="SHOP_STAGE", engine="postgresql", purpose="target",
                      location="postgres://app@db.example:5432/shop?options=-c%20search_path%3Dstage")
    client = as_user(lead)
    refused = client.post("/api/v1/environments/", {"mission": mission.pk, "name": "prod", "target": "SHOP_PROD"},
                          format="json")
    assert refused.status_code == 400, refused.json()
    assert "database shop on db.example:5432" in refused.json()["errors"]["target"][0]
    assert not Environment.objects.filter(mission=mission).exists()
    assert client.post("/api/v1/environments/", {"mission": mission.pk, "name": "stage", "target": "SHOP_STAGE"},
                       format="json").status_code == 201


def test_the_mission_owner_defines_an_environment_and_changes_it_by_name(as_user, lead, mission, target):
    client = as_user(lead)
    response = client.post("/api/v1/environments/", {"mission": mission.pk, "name": "stage", "target": "HCLS_STAGE",
                                                     "description": "Pre-production"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert {k: body[k] for k in ("mission", "name", "target", "description", "last_built_at", "last_revision")} == {
        "mission": mission.pk, "name": "stage", "target": "HCLS_STAGE", "description": "Pre-production",
        "last_built_at": None, "last_revision": ""}
    environment = Environment.objects.get(pk=body["id"])
    assert (environment.mission_id, environment.name, environment.target_id) == (mission.pk, "stage", target.pk)
    assert _events(mission, "environment.created") == [("lead", {"environment": "stage", "target": "HCLS_STAGE"})]

    ConnectionFactory(name="HCLS_STAGE_2")
    again = client.post("/api/v1/environments/", {"mission": mission.pk, "name": "stage", "target": "HCLS_STAGE_2"},
                        format="json")
    assert again.status_code == 200, again.json()
    assert again.json()["id"] == body["id"] and again.json()["target"] == "HCLS_STAGE_2"
    assert Environment.objects.filter(mission=mission).count() == 1
    assert _events(mission, "environment.updated") == [("lead", {"environment": "stage", "target": "HCLS_STAGE_2"})]


def test_an_unknown_environment_name_is_a_400_naming_the_field(as_user, lead, mission, target):
    response = as_user(lead).post("/api/v1/environments/", {"mission": mission.pk, "name": "qa",
                                                            "target": target.name}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "Unknown environment 'qa'; choose one of dev, test, stage, prod.",
        "errors": {"name": ["Unknown environment 'qa'; choose one of dev, test, stage, prod."]},
    }
    assert not Environment.objects.exists()


def test_only_the_mission_owner_or_staff_define_environments(as_user, actors, mission, target):
    payload = {"mission": mission.pk, "name": "dev", "target": target.name}
    for name in ("analyst", "viewer"):
        response = as_user(actors[name]).post("/api/v1/environments/", payload, format="json")
        assert response.status_code == 403, name
        assert response.json() == {"code": "permission_denied", "detail": "Only the Mission Owner may do this.",
                                   "errors": {}}
    outsider = as_user(actors["outsider"]).post("/api/v1/environments/", payload, format="json")
    assert outsider.status_code == 400 and list(outsider.json()["errors"]) == ["mission"]  # no hint it exists
    assert as_user(None).post("/api/v1/environments/", payload, format="json").status_code == 401
    assert not Environment.objects.exists()
    staff = as_user(actors["staff"]).post("/api/v1/environments/", payload, format="json")
    assert staff.status_code == 201
    assert _events(mission, "environment.created") == [("root", {"environment": "dev", "target": "HCLS_STAGE"})]


def test_an_unknown_target_connection_is_a_400_naming_it(as_user, lead, mission):
    response = as_user(lead).post("/api/v1/environments/", {"mission": mission.pk, "name": "dev", "target": "NOPE"},
                                  format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"target": ["Object with name=NOPE does not exist."]}


# --- read ---------------------------------------------------------------------------------------------------------


def test_the_list_shows_only_environments_of_missions_the_caller_can_see(as_user, actors, mission, stage, prod):
    elsewhere = MissionFactory(name="Someone else's")
    foreign = dbt_services.environment_set(mission=elsewhere, name="dev", target=ConnectionFactory(), actor=None)
    dev = dbt_services.environment_set(mission=mission, name="dev", target=ConnectionFactory(name="HCLS_DEV"),
                                       actor=None)
    for name in ("lead", "analyst", "viewer"):
        rows = as_user(actors[name]).get("/api/v1/environments/").json()["results"]
        # dev → stage → prod: the order a project is promoted in.
        assert [(r["name"], r["target"]) for r in rows] == [
            ("dev", "HCLS_DEV"), ("stage", "HCLS_STAGE"), ("prod", "HCLS_PROD")], name
    assert as_user(actors["outsider"]).get("/api/v1/environments/").json()["count"] == 0
    staff = as_user(actors["staff"]).get("/api/v1/environments/").json()
    assert {r["id"] for r in staff["results"]} == {dev.pk, stage.pk, prod.pk, foreign.pk}
    client = as_user(actors["lead"])
    assert client.get(f"/api/v1/environments/{foreign.pk}/").status_code == 404
    assert client.get(f"/api/v1/environments/{stage.pk}/").json()["description"] == "Pre-production"


def test_the_list_filters_by_mission_and_name(as_user, admin_user, mission, stage, prod):
    other = dbt_services.environment_set(mission=MissionFactory(), name="stage", target=ConnectionFactory(),
                                         actor=None)
    client = as_user(admin_user)
    by_mission = client.get("/api/v1/environments/", {"mission": mission.pk}).json()["results"]
    assert [r["id"] for r in by_mission] == [stage.pk, prod.pk]
    by_name = client.get("/api/v1/environments/", {"name": "stage"}).json()["results"]
    assert {r["id"] for r in by_name} == {stage.pk, other.pk}
    both = client.get("/api/v1/environments/", {"mission": mission.pk, "name": ["stage", "prod"]}).json()
    assert [r["name"] for r in both["results"]] == ["stage", "prod"]
    for params in ({"name": "qa"}, {"mission": "x"}, {"mission": ""}):
        response = client.get("/api/v1/environments/", params)
        assert response.status_code == 400 and list(response.json()["errors"]) == list(params), params


def test_the_list_costs_the_same_queries_for_one_environment_and_many(as_user, lead):
    def count():
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/environments/", {"page_size": 200})
        assert response.status_code == 200
        return len(queries), response.json()["count"]

    client = as_user(lead)
    first = MissionFactory(owner=lead)
    dbt_services.environment_set(mission=first, name="dev", target=ConnectionFactory(), actor=lead)
    one = count()
    for i in range(10):
        mission = MissionFactory(owner=lead, name=f"M{i}")
        for name in ("dev", "test", "stage", "prod"):
            dbt_services.environment_set(mission=mission, name=name, target=ConnectionFactory(), actor=lead)
    many = count()
    assert (one[1], many[1]) == (1, 41)
    assert many[0] == one[0] <= 3, (one, many)  # token, count, the page with missions and targets joined


# --- build --------------------------------------------------------------------------------------------------------


def test_a_build_answers_202_records_the_request_and_enqueues_the_job(
        as_user, analyst, mission, stage, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(analyst).post(f"/api/v1/environments/{stage.pk}/build/")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["environment"]["id"] == stage.pk and body["environment"]["target"] == "HCLS_STAGE"
    assert body["message"].startswith("Build of the dbt project in stage (HCLS_STAGE) requested")
    assert _events(mission, "environment.build_requested") == [("analyst", {"environment": "stage"})]
    assert enqueued == [("pipeline.jobs.environment_build", (stage.pk, analyst.pk),
                         {"task_name": f"environment-build-{stage.pk}"})]


def test_stakeholders_and_outsiders_cannot_build(as_user, viewer, outsider, stage, enqueued,
                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        refused = as_user(viewer).post(f"/api/v1/environments/{stage.pk}/build/")
        hidden = as_user(outsider).post(f"/api/v1/environments/{stage.pk}/build/")
        anonymous = as_user(None).post(f"/api/v1/environments/{stage.pk}/build/")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only the Mission Owner or a Task Owner of this mission may do this."
    assert hidden.status_code == 404 and anonymous.status_code == 401
    assert not HistoryEntry.objects.filter(event="environment.build_requested").exists()
    assert enqueued == []


def test_prod_builds_need_the_mission_owner_and_the_refusal_is_the_one_error_format(
        as_user, analyst, lead, mission, prod, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        refused = as_user(analyst).post(f"/api/v1/environments/{prod.pk}/build/")
    assert refused.status_code == 403
    assert refused.json() == {
        "code": "permission_denied",
        "detail": f"analyst may not build in prod on “{mission}”: it needs the role mission_owner.",
        "errors": {"non_field_errors": [f"analyst may not build in prod on “{mission}”: it needs the role "
                                        "mission_owner."]},
    }
    assert enqueued == []
    with django_capture_on_commit_callbacks(execute=True):
        accepted = as_user(lead).post(f"/api/v1/environments/{prod.pk}/build/")
    assert accepted.status_code == 202
    assert _events(mission, "environment.build_requested") == [("lead", {"environment": "prod"})]
    assert [args for _, args, _ in enqueued] == [(prod.pk, lead.pk)]


def test_a_build_without_an_approved_project_is_recorded_as_a_failed_build(
        as_user, lead, mission, stage, django_capture_on_commit_callbacks, settings, tmp_path):
    """The job really runs here (django-q2 in sync mode): the mission has no approved mapping spec yet."""
    settings.GENESIS_DBT_DIR = tmp_path / "dbt"
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(lead).post(f"/api/v1/environments/{stage.pk}/build/")
    assert response.status_code == 202
    failed = HistoryEntry.objects.get(mission=mission, event="refresh.failed")
    assert failed.actor_user == lead
    assert failed.message == ("Stage build failed: No approved mapping spec for this mission: approve the mapping "
                              "specs before building.")
    stage.refresh_from_db()
    assert stage.last_built_at is None and stage.last_revision == ""
    status = as_user(lead).get(f"/api/v1/environments/{stage.pk}/").json()
    assert status["last_built_at"] is None
