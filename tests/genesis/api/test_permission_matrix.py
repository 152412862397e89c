"""Who may do what, endpoint by endpoint: Mission Owner (lead), Task Owner (analyst), Stakeholder (viewer),
someone with no role (outsider), staff, and anonymous. Another mission's objects are 404, never 403."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tasks import services
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db

ACTORS = ["lead", "analyst", "viewer", "outsider", "staff", "anonymous"]


@pytest.fixture
def world(mission, agent, lead):
    a = TaskFactory(mission=mission, key="a", owner_agent=agent)
    b = TaskFactory(mission=mission, key="b", owner_agent=agent)
    c = TaskFactory(mission=mission, key="c", owner_agent=agent)
    edge = services.dependency_add(task=b, depends_on=a)
    run = services.run_create(task=b)  # b waits for a: launching does not dispatch it
    artifact = services.artifact_create(mission=mission, task=a, kind="sql", name="a.sql", file=b"select 1")
    return {"mission": mission, "a": a, "b": b, "c": c, "edge": edge, "run": run, "artifact": artifact}


READS = [
    "/api/v1/missions/{mission.pk}/", "/api/v1/projects/{mission.pk}/", "/api/v1/missions/{mission.pk}/members/",
    "/api/v1/tasks/{a.pk}/", "/api/v1/todos/{a.pk}/", "/api/v1/dependencies/{edge.pk}/", "/api/v1/runs/{run.pk}/",
    "/api/v1/artifacts/{artifact.pk}/", "/api/v1/artifacts/{artifact.pk}/download/",
    "/api/v1/missions/{mission.pk}/signoff/",
]
READ_EXPECTED = {"lead": 200, "analyst": 200, "viewer": 200, "outsider": 404, "staff": 200, "anonymous": 401}


@pytest.mark.parametrize("who", ACTORS)
@pytest.mark.parametrize("url", READS)
def test_reads(as_user, actors, world, who, url):
    response = as_user(actors[who]).get(url.format(**world))
    assert response.status_code == READ_EXPECTED[who]


def _artifact(world):
    return {"mission": world["mission"].pk, "kind": "doc", "file": SimpleUploadedFile("notes.txt", b"n")}


# (method, url, body, expected per actor). Bodies are built from the world; "multipart" marks an upload.
WRITES = {
    "edit mission": ("patch", "/api/v1/missions/{mission.pk}/", lambda w: {"scope": "new"},
                     {"lead": 200, "analyst": 403, "viewer": 403, "outsider": 404, "staff": 200, "anonymous": 401}),
    "launch mission": ("post", "/api/v1/missions/{mission.pk}/launch/", lambda w: {},
                       {"lead": 200, "analyst": 403, "viewer": 403, "outsider": 404, "staff": 200, "anonymous": 401}),
    "cancel mission": ("post", "/api/v1/projects/{mission.pk}/cancel/", lambda w: {"reason": "r"},
                       {"lead": 200, "analyst": 403, "viewer": 403, "outsider": 404, "staff": 200, "anonymous": 401}),
    "set member": ("post", "/api/v1/missions/{mission.pk}/members/",
                   lambda w: {"user": "outsider", "role": "stakeholder"},
                   {"lead": 200, "analyst": 403, "viewer": 403, "outsider": 404, "staff": 200, "anonymous": 401}),
    "add task": ("post", "/api/v1/tasks/", lambda w: {"mission": w["mission"].pk, "key": "new", "title": "New",
                                                      "owner_agent": "NoopAgent"},
                 {"lead": 201, "analyst": 403, "viewer": 403, "outsider": 400, "staff": 201, "anonymous": 401}),
    "edit task": ("patch", "/api/v1/todos/{a.pk}/", lambda w: {"title": "T"},
                  {"lead": 200, "analyst": 403, "viewer": 403, "outsider": 404, "staff": 200, "anonymous": 401}),
    "cancel task": ("post", "/api/v1/tasks/{c.pk}/cancel/", lambda w: {},
                    {"lead": 200, "analyst": 403, "viewer": 403, "outsider": 404, "staff": 200, "anonymous": 401}),
    # Approving several tasks: the Mission Owner and Task Owners (each refusal is then reported task by task).
    "approve all": ("post", "/api/v1/projects/{mission.pk}/approve-all/", lambda w: {"tasks": ["a", "b"]},
                    {"lead": 200, "analyst": 200, "viewer": 403, "outsider": 404, "staff": 200, "anonymous": 401}),
    "add edge": ("post", "/api/v1/dependencies/", lambda w: {"task": w["c"].pk, "depends_on": w["b"].pk},
                 {"lead": 201, "analyst": 403, "viewer": 403, "outsider": 400, "staff": 201, "anonymous": 401}),
    "remove edge": ("delete", "/api/v1/dependencies/{edge.pk}/", lambda w: None,
                    {"lead": 204, "analyst": 403, "viewer": 403, "outsider": 404, "staff": 204, "anonymous": 401}),
    "upload artifact": ("multipart", "/api/v1/artifacts/", _artifact,
                        {"lead": 201, "analyst": 201, "viewer": 403, "outsider": 400, "staff": 201, "anonymous": 401}),
    # The stakeholder's one write: allowed to them alone (the draft mission then refuses it as too early, 409).
    "sign off": ("post", "/api/v1/missions/{mission.pk}/signoff/", lambda w: {"decision": "approve"},
                 {"lead": 403, "analyst": 403, "viewer": 409, "outsider": 404, "staff": 403, "anonymous": 401}),
    "add connection": ("post", "/api/v1/connections/",
                       lambda w: {"name": "N", "engine": "sqlite", "location": "/tmp/n"},
                       {"lead": 403, "analyst": 403, "viewer": 403, "outsider": 403, "staff": 201, "anonymous": 401}),
}


@pytest.mark.parametrize("who", ACTORS)
@pytest.mark.parametrize("name", list(WRITES))
def test_writes(as_user, actors, world, who, name):
    method, url, body, expected = WRITES[name]
    client = as_user(actors[who])
    url = url.format(**world)
    if method == "multipart":
        response = client.post(url, body(world), format="multipart")
    else:
        response = getattr(client, method)(url, body(world))
    assert response.status_code == expected[who], response.content
    if response.status_code >= 400:
        assert set(response.json()) >= {"code", "detail", "errors"}
