"""The OpenAPI schema and the interactive docs: served locally (no CDN), every operation documented with its
request, its response and its errors."""

import pytest
import yaml
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema():
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_the_schema_is_openapi_3_with_token_and_bearer_auth(schema):
    assert schema["openapi"].startswith("3.")
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenAuth"]["type"] == "apiKey"
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    assert {"bearerAuth": []} in schema["paths"]["/api/v1/missions/"]["get"]["security"]


def test_every_resource_and_verb_is_in_the_schema(schema):
    paths = set(schema["paths"])
    for resource in ["missions", "projects", "tasks", "todos", "dependencies", "runs", "artifacts", "history",
                     "phases", "questions", "connections", "agents", "blueprints", "check-results",
                     "mapping-specs"]:
        assert f"/api/v1/{resource}/" in paths
        assert f"/api/v1/{resource}/{{id}}/" in paths
    for verb in ["launch", "pause", "resume", "cancel", "close"]:
        assert f"/api/v1/missions/{{id}}/{verb}/" in paths
    for verb in ["approve", "reject", "retry", "cancel"]:
        assert f"/api/v1/tasks/{{id}}/{verb}/" in paths
    assert "/api/v1/questions/{id}/answer/" in paths
    assert "/api/v1/artifacts/{id}/download/" in paths
    assert "/api/v1/auth/token/" in paths
    for path in ["/api/v1/blueprints/import/", "/api/v1/blueprints/{id}/export/", "/api/v1/blueprints/{id}/launch/",
                 "/api/v1/check-results/{id}/waive/", "/api/v1/phases/{id}/recheck/",
                 "/api/v1/mapping-specs/{id}/approve/", "/api/v1/mapping-specs/{id}/reject/",
                 "/api/v1/environments/", "/api/v1/environments/{id}/", "/api/v1/environments/{id}/build/"]:
        assert path in paths


SUCCESS = {"200", "201", "202", "204", "302"}  # 202: a request accepted for a background job (environment builds)


def test_every_operation_documents_its_success_and_error_responses(schema):
    operation_ids = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            codes = set(operation["responses"])
            assert codes & SUCCESS, f"{method} {path} has no success response"
            assert {"400", "401", "404"} <= codes or path == "/api/v1/auth/token/", f"{method} {path}"
            for code in codes - SUCCESS:
                content = operation["responses"][code]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {code}"
    assert len(operation_ids) == len(set(operation_ids)), "operation ids must be unique"


def test_verbs_document_their_request_bodies(schema):
    reject = schema["paths"]["/api/v1/tasks/{id}/reject/"]["post"]
    body = reject["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/RejectRequest"}
    assert schema["components"]["schemas"]["RejectRequest"]["required"] == ["feedback"]
    upload = schema["paths"]["/api/v1/artifacts/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    secret = schema["components"]["schemas"]["ConnectionRequest"]["properties"]["secret"]
    assert secret["writeOnly"] is True
    assert "secret" not in schema["components"]["schemas"]["Connection"]["properties"]


def test_the_docs_page_loads_swagger_ui_from_this_server(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()
    assert "/api/schema/" in page


# --- operations documented for API users -------------------------------------------------------------------------

RESOURCES = {"missions", "projects", "tasks", "todos", "dependencies", "runs", "artifacts", "history", "phases",
             "questions", "check-results", "blueprints", "connections", "agents", "mapping-specs", "environments",
             "auth"}
# Words of the code, not of the API: a description that uses them was written for developers.
DEVELOPER_WORDS = ["``", "viewset", "queryset", "serializer", "full_clean", "selector", "services.", ".py",
                   "get_object", "docstring", "mixin", "self.", "kwargs"]


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", path, operation


def _developer_notes() -> list[str]:
    """Every line of the docstrings of the API's views, their bases and their methods (the project's own code)."""
    import inspect

    from genesis.api.token import ObtainTokenView
    from genesis.api.urls import router

    classes = {klass for _, viewset, _ in router.registry for klass in viewset.__mro__} | {ObtainTokenView}
    docs = []
    for klass in classes:
        if klass.__module__.split(".")[0] not in {"genesis", "missions", "tasks", "blueprints", "agents", "pipeline"}:
            continue
        docs.append(inspect.getdoc(klass) or "")
        docs += [inspect.getdoc(member) or "" for member in vars(klass).values() if callable(member)]
    return [line.strip() for doc in docs for line in doc.splitlines() if len(line.strip()) >= 25]


def test_every_operation_has_one_tag_and_it_is_its_resource(schema):
    for name, path, operation in _operations(schema):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in RESOURCES, (name, operation["tags"])
        if path.startswith("/api/v1/") and path != "/api/v1/auth/token/":
            assert operation["tags"] == [path.split("/")[3]], name
    assert {tag for _, _, operation in _operations(schema) for tag in operation["tags"]} == RESOURCES


def test_every_operation_says_what_it_does_who_may_do_it_and_what_its_errors_mean(schema):
    for name, _, operation in _operations(schema):
        summary, description = operation.get("summary", ""), operation.get("description", "")
        assert summary and len(summary) <= 60 and not summary.endswith("."), (name, summary)
        assert "**Who:**" in description and "**Errors:**" in description, (name, description)


def test_no_operation_description_is_a_developer_note(schema):
    notes = _developer_notes()
    assert any("model's own validation" in note for note in notes)  # the note that used to leak, still in the code
    for name, _, operation in _operations(schema):
        text = f"{operation.get('summary', '')}\n{operation.get('description', '')}"
        assert not [word for word in DEVELOPER_WORDS if word in text.lower()], (name, text)
        assert not [note for note in notes if note in text], name


def test_the_aliases_say_what_they_are_another_name_for(schema):
    projects = schema["paths"]["/api/v1/projects/{id}/launch/"]["post"]["description"]
    assert projects.startswith("A project is a mission under another name")
    assert schema["paths"]["/api/v1/missions/{id}/launch/"]["post"]["description"].startswith("Start a `draft`")
    todos = schema["paths"]["/api/v1/todos/"]["post"]["description"]
    assert todos.startswith("A todo is a task under another name") and "`project`" in todos


def test_every_resource_tag_is_described_once(schema):
    assert sorted(tag["name"] for tag in schema["tags"]) == sorted(RESOURCES)
    assert all(tag["description"] for tag in schema["tags"])
