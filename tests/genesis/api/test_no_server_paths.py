"""No response tells a signed-in person where things live on the server: a blueprint's source is its file name, a
connection's location (a SQLite file, a DSN) is for staff only, files are reached through their download URLs.
The walk reads every list and detail the schema has, as a Mission Owner who is not staff."""

import tempfile
from io import StringIO

import pytest
import yaml
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from rest_framework.test import APIClient

from blueprints.models import Blueprint
from missions import services as mission_services
from pipeline.dbt.services import environment_set
from tasks import services as task_services
from tests.conftest import leads_connection
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(lead, mission, agent):
    call_command("load_blueprint", "--shipped", stdout=StringIO())
    source = leads_connection(name="HCLS_SOURCE", engine="sqlite",
                              location=str(settings.VAR_DIR / "demo" / "sources.sqlite3"))
    target = leads_connection(name="HCLS_TARGET", engine="sqlite", location="/tmp/genesis-target.sqlite3",
                              purpose="target")
    mission_services.mission_update(mission=mission, actor=lead, source_connection=source,
                                    spec_file=ContentFile(b"project: demo\n", name="project.yml"))
    task = TaskFactory(mission=mission, key="profile", owner_agent=agent)
    task_services.artifact_create(mission=mission, task=task, kind="sql", name="claims.sql", file=b"select 1",
                                  actor=agent)
    environment_set(mission=mission, name="dev", target=target, actor=lead)
    return mission


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _server_places() -> list[str]:
    return sorted({str(settings.BASE_DIR), str(settings.VAR_DIR), str(settings.MEDIA_ROOT), tempfile.gettempdir(),
                   "/tmp/"}, key=len, reverse=True)


def test_no_list_or_detail_shows_a_server_path_to_a_member_who_is_not_staff(as_user, lead, world):
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    client = as_user(lead)
    places, leaks, read = _server_places(), [], 0
    first_ids = {}
    for path, item in schema["paths"].items():
        if "get" not in item or "{id}" in path:
            continue
        body = client.get(path).json()
        read += 1
        results = body.get("results", body) if isinstance(body, dict) else body
        if isinstance(results, list) and results:
            first_ids[path] = results[0]["id"]
        leaks += [(path, text) for text in _strings(body) if any(place in text for place in places)]
    for path, item in schema["paths"].items():
        if "get" not in item or "{id}" not in path:
            continue
        list_path = path.split("{id}")[0]
        if list_path not in first_ids:
            continue
        response = client.get(path.replace("{id}", str(first_ids[list_path])))
        if response.get("Content-Type", "").startswith("application/json"):
            read += 1
            leaks += [(path, text) for text in _strings(response.json()) if any(place in text for place in places)]
    assert read > 25
    assert leaks == []


def test_a_blueprint_version_shows_the_file_name_it_came_from(as_user, lead, world):
    blueprint = Blueprint.objects.get(slug="build-marts")
    stored = blueprint.versions.get().source_name
    assert stored.startswith(str(settings.BASE_DIR))  # the server keeps the full path (the admin shows it to staff)
    body = as_user(lead).get(f"/api/v1/blueprints/{blueprint.pk}/").json()
    assert [v["source_name"] for v in body["versions"]] == ["build-marts.yaml"]


def test_a_connection_location_is_shown_to_staff_only(as_user, lead, admin_user, world):
    member = as_user(lead).get("/api/v1/connections/", {"name": "HCLS_"}).json()["results"]
    assert [(c["name"], c["location"]) for c in member] == [("HCLS_SOURCE", None), ("HCLS_TARGET", None)]
    staff = as_user(admin_user).get("/api/v1/connections/", {"name": "HCLS_"}).json()["results"]
    assert [(c["name"], c["location"]) for c in staff] == [
        ("HCLS_SOURCE", str(settings.VAR_DIR / "demo" / "sources.sqlite3")),
        ("HCLS_TARGET", "/tmp/genesis-target.sqlite3")]
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)["components"]["schemas"]
    assert schema["Connection"]["properties"]["location"]["nullable"] is True
    assert not schema["ConnectionRequest"]["properties"]["location"].get("nullable")
    assert "location" in schema["ConnectionRequest"]["required"]
