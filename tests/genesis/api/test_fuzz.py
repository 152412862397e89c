"""schemathesis drives every operation of the schema through the WSGI app with a token: no 5xx, no status code
the schema does not document, responses that match their schema, and invalid requests refused with 4xx.

Plus the inputs a fuzzer may not reach: NUL bytes in paths, query strings and bodies, huge strings, malformed
JSON and an unparseable multipart body."""

import json
import os
from datetime import timedelta, timezone

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from genesis.wsgi import application
from missions.models import Mission
from pipeline.dbt.services import environment_set
from tests.factories import ConnectionFactory, TaskFactory

TOKEN = "0123456789abcdef0123456789abcdef01234567"
MAX_EXAMPLES = 10


def _load_schema():
    """The schema the app serves at /api/schema/, bound to the WSGI app (schemathesis calls it in-process)."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(document, cls=DjangoJSONEncoder)))
    loaded.app = application
    loaded.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
    )
    return loaded


schema = _load_schema()


@pytest.fixture
def world(db, lead, mission, agent):
    """A token for the lead and the lead's mission with a task and an environment, for the fuzzer to act on."""
    Token.objects.create(user=lead, key=TOKEN)
    TaskFactory(mission=mission, key="seed", owner_agent=agent)
    environment_set(mission=mission, name="dev", target=ConnectionFactory(purpose="target"), actor=lead)
    # Keep the test's transaction: the WSGI handler would otherwise close the connection after each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
# Derandomized so CI is repeatable (the same inputs every run); GENESIS_FUZZ_RANDOM=1 explores new ones.
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=os.environ.get("GENESIS_FUZZ_RANDOM") != "1",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_operation_conforms_to_its_schema(case, world):
    # Every check but "schema-valid data is accepted": a well-formed request naming a mission that does not exist
    # is rightly a 400, and the fuzzer cannot know which ids exist.
    case.call_and_validate(headers={"Authorization": f"Token {TOKEN}"}, excluded_checks=[positive_data_acceptance])


# --- inputs a fuzzer may not reach ------------------------------------------------------------------------------

@pytest.fixture
def client(lead, as_user):
    return as_user(lead)


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "/api/v1/missions/%00/", "/api/v1/tasks/1%00/", "/api/v1/missions/?status=%00",
    "/api/v1/tasks/?mission=%00", "/api/v1/tasks/?q=a%00b", "/api/v1/history/?event=%00",
    "/api/v1/missions/?ordering=%00", "/api/v1/missions/?page=%00", "/api/v1/missions/?page_size=%00",
    "/api/v1/artifacts/?name=x%00",
])
def test_nul_bytes_in_paths_and_query_strings_are_4xx(client, url, mission):
    response = client.get(url)
    assert 400 <= response.status_code < 500, (url, response.status_code)


@pytest.mark.django_db
def test_nul_bytes_in_bodies_are_refused_with_the_field_named(client):
    response = client.post("/api/v1/missions/", {"name": "a\x00b", "objective": "o"})
    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    nested = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "success_criteria": ["ok\x00"]})
    assert nested.status_code == 400
    assert nested.json()["errors"] == {"success_criteria": ["NUL characters are not allowed."]}
    assert Mission.objects.count() == 0


@pytest.mark.django_db
def test_nul_bytes_in_json_object_keys_and_configs_are_refused(client, mission):
    response = client.post("/api/v1/tasks/", {"mission": mission.pk, "key": "k", "title": "t",
                                              "owner_agent": "NoopAgent", "config": {"a\x00": 1}})
    assert response.status_code == 400


@pytest.mark.django_db
def test_huge_strings_are_refused(client):
    response = client.post("/api/v1/missions/", {"name": "n" * 100_000, "objective": "o" * 1_000_000})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "objective"}


@pytest.mark.django_db
def test_a_body_over_the_request_limit_is_refused(client, settings):
    body = '{"name": "n", "objective": "' + "o" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    response = client.post("/api/v1/missions/", body, content_type="application/json")
    # The API's JSON error, not Django's HTML "Bad Request" page (the request-body tests have the rest).
    assert response.status_code == 400
    assert response.json()["code"] == "too_large"


@pytest.mark.django_db
@pytest.mark.parametrize("body", ['{"name": ', "[1, 2", "null", "{\"name\": \"\\ud800\"}", "\x00", "{}}"])
def test_malformed_json_is_400(client, body):
    response = client.post("/api/v1/missions/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] in {"parse_error", "invalid"}


@pytest.mark.django_db
def test_a_broken_multipart_body_is_400(client, mission):
    response = client.generic("POST", "/api/v1/artifacts/", b"--x\r\nnot multipart",
                              content_type="multipart/form-data; boundary=x")
    assert 400 <= response.status_code < 500


@pytest.mark.django_db
def test_an_unsupported_media_type_is_415(client):
    response = client.generic("POST", "/api/v1/missions/", b"<xml/>", content_type="application/xml")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"page_size": "0"}, {"page_size": "201"}, {"page_size": "x"}, {"page": "-1"},
                                    {"page": "abc"}])
def test_malformed_pagination_is_400(client, params):
    response = client.get("/api/v1/missions/", params)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == list(params)


@pytest.mark.django_db
@pytest.mark.parametrize("params", [
    {"created_before": "0001-01-01T00:00:00+05:00"}, {"launched_after": "not a date"},
    {"created_after": "2026-13-01T00:00:00Z"},
])
def test_date_filters_the_database_cannot_hold_are_400(client, params):
    response = client.get("/api/v1/missions/", params)
    assert response.status_code == 400
    # Keyed by the query parameter sent (created_before), not by the range filter behind it (created).
    assert response.json()["errors"] == {next(iter(params)): [
        "Enter an ISO 8601 date-time between years 1 and 9999, e.g. 2026-01-31T12:00:00Z."]}


@pytest.mark.django_db
def test_a_range_error_names_only_the_wrong_end(client):
    response = client.get("/api/v1/missions/", {"created_after": "2026-01-01T00:00:00Z", "created_before": "soon",
                                                "launched_after": "x", "launched_before": "y"})
    assert response.status_code == 400
    assert sorted(response.json()["errors"]) == ["created_before", "launched_after", "launched_before"]
    assert response.json()["detail"] == "Invalid input in: created_before, launched_after, launched_before."


def test_the_schema_names_the_parameters_the_errors_are_keyed_by():
    parameters = {p["name"] for p in schema.raw_schema["paths"]["/api/v1/missions/"]["get"]["parameters"]}
    assert {"created_after", "created_before", "launched_after", "launched_before"} <= parameters
    assert "created" not in parameters


@pytest.mark.django_db
def test_odd_offsets_and_far_dates_are_converted_to_utc_not_sent_as_they_are(client, mission):
    # PostgreSQL refuses an offset of +21:10 in a timestamp literal; in UTC it is an ordinary date.
    response = client.get("/api/v1/missions/", {"created_after": "0192-08-05T16:16:05.1+21:10"})
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["results"]] == [mission.pk]


@pytest.mark.django_db
def test_a_date_filter_with_an_offset_is_compared_in_utc(client, mission):
    from missions.models import Mission

    created = Mission.objects.get(pk=mission.pk).created_at
    shifted = created.astimezone(timezone(timedelta(hours=14)))
    rows = client.get("/api/v1/missions/", {"created_after": shifted.isoformat()}).json()["results"]
    assert [m["id"] for m in rows] == [mission.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("value", [1.7976931348623155e308, 2**70, True, "12abc", -3])
def test_ids_the_database_cannot_hold_are_400(client, value):
    response = client.post("/api/v1/dependencies/", {"task": value, "depends_on": value})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"task", "depends_on"}


@pytest.mark.django_db
def test_nul_bytes_in_names_of_related_objects_are_400(client, mission):
    response = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "owner": "le\x00ad"})
    assert response.status_code == 400 and list(response.json()["errors"]) == ["owner"]
    listed = client.get("/api/v1/missions/", {"owner": "le\x00ad"})
    assert listed.status_code == 400


@pytest.mark.django_db
def test_a_huge_id_in_the_path_is_404(client):
    assert client.get(f"/api/v1/missions/{2**70}/").status_code == 404
    assert client.get(f"/api/v1/tasks/{2**70}/").status_code == 404


@pytest.mark.django_db
def test_an_email_list_of_numbers_is_400_not_500(client):
    # Found by schemathesis: the model's validator assumed text.
    response = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "escalation_emails": [7422447]})
    assert response.status_code == 400
    assert response.json()["errors"] == {"escalation_emails": ["Must be a list of email addresses."]}
