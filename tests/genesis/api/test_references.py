"""One way to name each thing, in requests and responses alike: a person by username, a connection and an agent by
name; missions, tasks and the other mission records by id. The schema walk finds every reference to a person, a
connection or an agent (from the models' foreign keys) and checks how the API spells it."""

import pytest
import yaml
from django.apps import apps
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from agents.models import Agent, Connection
from history.models import HistoryEntry
from missions.models import Mission
from pipeline.dbt.services import environment_set
from tasks import services as task_services
from tests.conftest import leads_connection
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db

# Serializer fields that name whoever did something, a person or an agent (their kind is given beside them).
ACTOR_FIELDS = {"actor", "created_by"}


def _references() -> dict[str, str]:
    """Field name -> what it names ("user", "agent", "connection"), from every foreign key of the project's models
    to a person, an agent or a connection."""
    targets = {get_user_model(): "user", Agent: "agent", Connection: "connection"}
    names = {}
    for model in apps.get_models():
        if model.__module__.split(".")[0] not in {"missions", "tasks", "blueprints", "agents", "pipeline", "history"}:
            continue
        for field in model._meta.get_fields():
            if field.is_relation and not field.auto_created and field.related_model in targets:
                names[field.name] = targets[field.related_model]
    return names


def _type(spec: dict) -> str | None:
    if "type" in spec:
        return spec["type"]
    for key in ("allOf", "oneOf", "anyOf"):
        for part in spec.get(key, []):
            if "$ref" in part:
                return "object"
            if part.get("type") not in (None, "null"):
                return part["type"]
    return None


@pytest.fixture
def schema():
    return yaml.safe_load(APIClient().get("/api/schema/").content)


def test_every_reference_to_a_person_a_connection_or_an_agent_is_its_name_in_the_schema(schema):
    references = _references()
    assert {"owner", "owner_user", "owner_agent", "source_connection", "target_connection", "target",
            "addressed_to", "waived_by", "decided_by", "user"} <= set(references)
    wrong, seen = [], 0
    for component, definition in schema["components"]["schemas"].items():
        for name, spec in definition.get("properties", {}).items():
            if name not in references and name not in ACTOR_FIELDS:
                continue
            seen += 1
            word = "username" if references.get(name) == "user" else "name"
            if _type(spec) != "string" or word not in spec.get("description", ""):
                wrong.append(f"{component}.{name}: {_type(spec)}, {spec.get('description', 'undocumented')!r}")
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in {*references, *ACTOR_FIELDS, "agent"}:
                    seen += 1
                    if parameter["schema"].get("type") != "string":
                        wrong.append(f"{method} {path} ?{parameter['name']}: {parameter['schema']}")
    assert seen > 25
    assert wrong == []


def test_a_mission_names_its_connections_in_and_out(as_user, lead):
    source = leads_connection(name="HCLS_SOURCE", engine="sqlite", location="/tmp/genesis-source.sqlite3")
    client = as_user(lead)
    response = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "source_connection": "HCLS_SOURCE"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["source_connection"], body["target_connection"]) == ("HCLS_SOURCE", None)
    assert Mission.objects.get(pk=body["id"]).source_connection == source
    by_id = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "source_connection": source.pk})
    assert by_id.status_code == 400 and list(by_id.json()["errors"]) == ["source_connection"]
    unknown = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "target_connection": "NOPE"})
    assert unknown.json()["errors"] == {"target_connection": ["Object with name=NOPE does not exist."]}


def test_an_environment_names_its_target_connection_in_and_out(as_user, lead, mission):
    leads_connection(name="HCLS_STAGE", engine="sqlite", location="/tmp/genesis-stage.sqlite3", purpose="target")
    client = as_user(lead)
    created = client.post("/api/v1/environments/", {"mission": mission.pk, "name": "stage", "target": "HCLS_STAGE"},
                          format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["target"] == "HCLS_STAGE" and "target_name" not in created.json()
    listed = client.get("/api/v1/environments/", {"target": "HCLS_STAGE"}).json()["results"]
    assert [(e["name"], e["target"]) for e in listed] == [("stage", "HCLS_STAGE")]


def test_history_is_filtered_by_the_actor_it_names_a_person_or_an_agent(as_user, lead, mission, agent):
    task = TaskFactory(mission=mission, key="profile", owner_agent=agent)
    task_services.artifact_create(mission=mission, task=task, kind="doc", name="notes.md", file=b"# n", actor=agent)
    task_services.artifact_create(mission=mission, kind="doc", name="brief.md", file=b"# b", actor=lead)
    client = as_user(lead)
    by_agent = client.get("/api/v1/history/", {"mission": mission.pk, "actor": "NoopAgent"}).json()["results"]
    assert by_agent and {(e["actor"], e["actor_kind"]) for e in by_agent} == {("NoopAgent", "agent")}
    assert len(by_agent) == HistoryEntry.objects.filter(mission=mission, actor_agent=agent).count()
    by_person = client.get("/api/v1/history/", {"mission": mission.pk, "actor": "lead"}).json()["results"]
    assert by_person and {(e["actor"], e["actor_kind"]) for e in by_person} == {("lead", "user")}
    artifacts = client.get("/api/v1/artifacts/", {"mission": mission.pk, "ordering": "name"}).json()["results"]
    assert [(a["name"], a["created_by"], a["created_by_kind"]) for a in artifacts] == [
        ("brief.md", "lead", "user"), ("notes.md", "NoopAgent", "agent")]


def test_an_environment_set_in_the_service_reads_back_by_name(as_user, lead, mission):
    target = leads_connection(name="HCLS_PROD", engine="sqlite", location="/tmp/genesis-prod.sqlite3",
                              purpose="target")
    environment_set(mission=mission, name="prod", target=target, actor=lead)
    body = as_user(lead).get("/api/v1/environments/", {"mission": mission.pk}).json()["results"]
    assert [(e["name"], e["target"]) for e in body] == [("prod", "HCLS_PROD")]
