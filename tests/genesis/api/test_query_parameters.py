"""Query parameters mean what they say: a parameter an operation does not read is a 400 naming it and listing the
ones it reads (never silently ignored), and the fields clients look objects up by are filters: a task's key, a
mission's status and name, a blueprint's slug. Blueprints are addressed by id or by slug."""

import pytest
import yaml
from rest_framework.test import APIClient

from blueprints.models import Blueprint
from tests.factories import MissionFactory, TaskFactory

pytestmark = pytest.mark.django_db


def test_a_task_is_found_by_its_key_and_a_misspelt_filter_is_refused(as_user, lead, mission, agent):
    wanted = TaskFactory(mission=mission, key="review_mapping_specs", owner_agent=agent)
    TaskFactory(mission=mission, key="profile_sources", owner_agent=agent)
    client = as_user(lead)
    found = client.get("/api/v1/tasks/", {"mission": mission.pk, "key": "review_mapping_specs"}).json()["results"]
    assert [(t["id"], t["key"]) for t in found] == [(wanted.pk, "review_mapping_specs")]
    # The probe's mistake: a filter the list does not have used to return the whole list.
    misspelt = client.get("/api/v1/tasks/", {"mission": mission.pk, "task_key": "review_mapping_specs"})
    assert misspelt.status_code == 400
    body = misspelt.json()
    assert body["code"] == "unknown_parameter"
    assert list(body["errors"]) == ["task_key"]
    assert "key" in body["known"] and "mission" in body["known"] and "page" in body["known"]
    assert "task_key" in body["detail"] and "key, mission" in body["detail"]


def test_every_unknown_parameter_is_named_and_known_ones_stay_known(as_user, lead, mission):
    client = as_user(lead)
    response = client.get("/api/v1/missions/", {"state": "active", "sort": "name", "status": "active"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"state", "sort"}
    known = client.get("/api/v1/missions/", {"status": "draft", "ordering": "name", "page": 1, "page_size": 5,
                                             "format": "json"})
    assert known.status_code == 200
    assert [m["id"] for m in known.json()["results"]] == [mission.pk]


def test_a_detail_or_action_get_refuses_list_filters(as_user, lead, mission):
    client = as_user(lead)
    detail = client.get(f"/api/v1/missions/{mission.pk}/", {"status": "draft"})
    assert detail.status_code == 400
    assert detail.json()["errors"] == {"status": ["Unknown query parameter. This operation reads: format."]}
    members = client.get(f"/api/v1/missions/{mission.pk}/members/", {"user": "lead"})
    assert members.status_code == 400 and list(members.json()["errors"]) == ["user"]
    assert client.get("/api/v1/", {"missions": "1"}).status_code == 400


def test_anonymous_callers_get_401_before_any_parameter_is_judged():
    response = APIClient().get("/api/v1/missions/", {"bogus": "1"})
    assert response.status_code == 401


def _get_operations(schema):
    for path, item in schema["paths"].items():
        if "get" in item:
            documented = sorted(p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query")
            yield path, documented


def test_every_get_in_the_schema_refuses_an_unknown_parameter_and_lists_what_it_documents(as_user, admin_user):
    """Walks the schema, so a new operation cannot forget it: what the error lists as known is exactly what the
    schema documents (plus DRF's ``format``)."""
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    client = as_user(admin_user)
    walked = 0
    for path, documented in _get_operations(schema):
        url = path.replace("{id}", "1")
        response = client.get(url, {"bogus_parameter": "1"})
        assert response.status_code == 400, (path, response.status_code)
        body = response.json()
        assert list(body["errors"]) == ["bogus_parameter"], path
        assert body["known"] == sorted({*documented, "format"}), path
        walked += 1
    assert walked > 30


def test_missions_are_filtered_by_status_and_exact_name(as_user, admin_user, lead):
    alpha = MissionFactory(name="Alpha claims", owner=lead)
    MissionFactory(name="Alpha claims, second try", owner=lead)
    client = as_user(admin_user)
    by_name = client.get("/api/v1/missions/", {"name": "Alpha claims"}).json()["results"]
    assert [m["id"] for m in by_name] == [alpha.pk]
    client.post(f"/api/v1/missions/{alpha.pk}/launch/")
    active = client.get("/api/v1/missions/", {"status": "active"}).json()["results"]
    assert [(m["id"], m["status"]) for m in active] == [(alpha.pk, "active")]


@pytest.fixture
def shipped(db):
    from io import StringIO

    from django.core.management import call_command

    call_command("load_blueprint", "--shipped", stdout=StringIO())
    return Blueprint.objects.get(slug="build-marts")


def test_a_blueprint_is_found_by_slug_and_addressed_by_slug_or_id(as_user, lead, shipped):
    client = as_user(lead)
    listed = client.get("/api/v1/blueprints/", {"slug": "build-marts"}).json()["results"]
    assert [b["id"] for b in listed] == [shipped.pk]
    by_slug = client.get("/api/v1/blueprints/build-marts/")
    assert by_slug.status_code == 200
    assert by_slug.json() == client.get(f"/api/v1/blueprints/{shipped.pk}/").json()
    assert by_slug.json()["slug"] == "build-marts"
    exported = client.get("/api/v1/blueprints/build-marts/export/", {"version": 1})
    assert exported.status_code == 200 and b"slug: build-marts" in exported.content
    assert client.get("/api/v1/blueprints/no-such-blueprint/").status_code == 404
    # The launch reached the blueprint by its slug: it asks for that blueprint's own parameter.
    launched = client.post("/api/v1/blueprints/field-mapping/launch/", {"name": "By slug"}, format="json")
    assert launched.status_code == 400
    assert list(launched.json()["errors"]) == ["params.source_connection"]


def test_the_schema_says_a_blueprint_is_addressed_by_id_or_slug():
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    for path in ["/api/v1/blueprints/{id}/", "/api/v1/blueprints/{id}/export/", "/api/v1/blueprints/{id}/launch/"]:
        for operation in schema["paths"][path].values():
            (parameter,) = [p for p in operation["parameters"] if p["in"] == "path"]
            assert parameter["schema"]["type"] == "string" and "slug" in parameter["description"], path
