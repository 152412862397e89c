"""Request bodies: a form or multipart body means what the same JSON means (found by the randomized fuzzer: empty
and repeated form fields were read with HTML-form leniency), every body Django will not read answers the API's one
JSON error format (a 400 HTML page before), and text the database cannot store is refused by name."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token

from blueprints.models import Blueprint
from missions.models import Mission
from tasks.models import Task
from tests.documents import deep_json
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
MINIMAL_BLUEPRINT = ("slug: tiny\nname: Tiny\nphases:\n- name: One\n  actions:\n  - {key: a, title: A, owner: noop}\n")


@pytest.fixture
def client(lead, as_user):
    return as_user(lead)


def _json_error(response, status=400) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert set(body) >= {"code", "detail", "errors"}
    return body


# --- an empty owner (the fuzzer: POST /api/v1/projects/ accepted owner="") ------------------------------------------

@pytest.mark.parametrize("url", ["/api/v1/projects/", "/api/v1/missions/"])
def test_an_empty_owner_is_refused_in_json_and_in_a_form(client, url):
    as_json = client.post(url, {"name": "n", "objective": "o", "owner": ""}, format="json")
    assert _json_error(as_json)["errors"] == {"owner": ["This field may not be blank."]}
    as_form = client.generic("POST", url, "name=n&objective=o&owner=", content_type=FORM)
    assert _json_error(as_form)["errors"] == {"owner": ["This field may not be blank."]}
    assert not Mission.objects.exists()


def test_the_schema_says_an_owner_is_a_non_empty_name(client):
    owner = client.get("/api/schema/?format=json").json()["components"]["schemas"]["MissionRequest"]["properties"][
        "owner"]
    assert owner["type"] == "string" and owner["minLength"] == 1 and not owner.get("nullable")


def test_an_empty_id_is_not_read_as_null(client, mission, agent):
    task = {"mission": mission.pk, "key": "k", "title": "t", "owner_agent": "NoopAgent"}
    response = client.post("/api/v1/tasks/", {**task, "phase": ""}, format="json")
    assert _json_error(response)["errors"] == {"phase": ["An empty value is not an id: give a whole number from 1 up."]}
    # null itself is still null
    created = client.post("/api/v1/tasks/", {**task, "phase": None}, format="json")
    assert created.status_code == 201 and created.json()["phase"] is None


def test_an_empty_name_is_not_read_as_null(client):
    response = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "target_connection": ""},
                           format="json")
    assert _json_error(response)["errors"] == {"target_connection": ["This field may not be blank."]}
    created = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "target_connection": None},
                          format="json")
    assert created.status_code == 201 and created.json()["target_connection"] is None


def test_an_empty_task_owner_is_refused_not_read_as_no_owner(client, mission, agent):
    response = client.post("/api/v1/tasks/", {"mission": mission.pk, "key": "k", "title": "t", "owner_user": "",
                                              "owner_agent": "NoopAgent"}, format="json")
    assert _json_error(response)["errors"] == {"owner_user": ["This field may not be blank."]}
    assert not Task.objects.filter(key="k").exists()


# --- form bodies read like JSON (the fuzzer: target_connection sent 15 times, the last one empty, made a mission) ---

def test_a_field_sent_twice_in_a_form_is_refused_not_its_last_value_kept(client):
    source = ConnectionFactory()
    response = client.generic(
        "POST", "/api/v1/missions/", f"name=n&objective=o&target_connection=abc&target_connection={source.name}",
        content_type=FORM)
    assert list(_json_error(response)["errors"]) == ["target_connection"]
    twice = client.generic("POST", "/api/v1/missions/", "name=a&name=b&objective=o", content_type=FORM)
    assert _json_error(twice)["errors"] == {"name": ["Not a valid string."]}
    assert not Mission.objects.exists()


def test_an_empty_form_value_is_empty_not_absent(client):
    empty_id = client.generic("POST", "/api/v1/missions/", "name=n&objective=o&target_connection=", content_type=FORM)
    assert list(_json_error(empty_id)["errors"]) == ["target_connection"]
    empty_mode = client.generic("POST", "/api/v1/missions/", "name=n&objective=o&mode=", content_type=FORM)
    assert list(_json_error(empty_mode)["errors"]) == ["mode"]
    # An optional text field with a default: the default is for a field left out, not for one sent empty.
    empty_name = client.generic("POST", "/api/v1/blueprints/import/", "text=x&filename=", content_type=FORM)
    assert _json_error(empty_name)["errors"] == {"filename": ["This field may not be blank."]}
    assert not Mission.objects.exists()


def test_form_and_multipart_bodies_still_carry_lists_and_json(client):
    repeated = client.generic(
        "POST", "/api/v1/missions/",
        "name=Form&objective=o&mode=continuous&escalation_emails=a%40example.com&escalation_emails=b%40example.com",
        content_type=FORM)
    assert repeated.status_code == 201, repeated.json()
    assert (repeated.json()["mode"], repeated.json()["escalation_emails"]) == (
        "continuous", ["a@example.com", "b@example.com"])
    multipart = client.post("/api/v1/missions/", {"name": "Multipart", "objective": "o",
                                                  "success_criteria": json.dumps(["Specs approved", {"check": "x"}])},
                            format="multipart")
    assert multipart.status_code == 201, multipart.json()
    assert multipart.json()["success_criteria"] == ["Specs approved", {"check": "x"}]


def test_the_token_endpoint_still_takes_a_form(lead):
    from rest_framework.test import APIClient

    response = APIClient().generic("POST", "/api/v1/auth/token/", "username=lead&password=pw-for-tests-1",
                                   content_type=FORM)
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=lead).key}


def test_a_multipart_part_without_a_body_is_an_empty_value_not_a_missing_one(client):
    # The fuzzer (through werkzeug) sent owner="" as a part that ends after its headers, which RFC 2046 allows and
    # Django's parser silently dropped: the mission was created with the caller as owner.
    def body(empty_field):
        return (b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nn\r\n'
                b'--b\r\nContent-Disposition: form-data; name="objective"\r\n\r\no\r\n'
                b'--b\r\nContent-Disposition: form-data; name="' + empty_field + b'"\r\n'
                b'\r\n--b--\r\n')

    multipart = "multipart/form-data; boundary=b"
    refused = client.generic("POST", "/api/v1/missions/", body(b"owner"), content_type=multipart)
    assert _json_error(refused)["errors"] == {"owner": ["This field may not be blank."]}
    blank = client.generic("POST", "/api/v1/missions/", body(b"scope"), content_type=multipart)
    assert blank.status_code == 201 and blank.json()["scope"] == ""


def test_only_parts_without_a_body_are_spelled_out():
    from genesis.api.parsers import spell_out_empty_parts

    normal = (b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\r\n'
              b'--b\r\nContent-Disposition: form-data; name="f"; filename="x"\r\nContent-Type: text/plain\r\n'
              b'\r\nline\r\n\r\nx--b\r\ny\r\n--b--\r\n')
    assert spell_out_empty_parts(normal, b"b") == normal
    header_only = b'\r\n--b\r\nContent-Disposition: form-data; name="a"\r\nX-Other: 1\r\n\r\n--b--\r\n'
    assert spell_out_empty_parts(header_only, b"b") == (
        b'\r\n--b\r\nContent-Disposition: form-data; name="a"\r\nX-Other: 1\r\n\r\n\r\n--b--\r\n')


# --- bodies Django will not read (the fuzzer: blueprint import answered an HTML 400) -----------------------------

def test_a_multipart_text_over_the_body_limit_is_a_json_400(client, settings):
    # 1,000,000 characters are allowed, but in four-byte UTF-8 far fewer fit under DATA_UPLOAD_MAX_MEMORY_SIZE.
    text = "\U0001f600" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 4 + 10)
    response = client.post("/api/v1/blueprints/import/", {"text": text, "filename": "x.yaml"}, format="multipart")
    body = _json_error(response)
    assert body["code"] == "too_large"
    assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes" in body["detail"]
    assert not Blueprint.objects.exists()


@pytest.mark.parametrize("media_type", ["json", "form"])
def test_a_json_or_form_body_over_the_limit_is_a_json_400(client, settings, media_type):
    size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10
    if media_type == "json":
        response = client.generic("POST", "/api/v1/blueprints/import/",
                                  json.dumps({"text": "a" * size}), content_type="application/json")
    else:
        response = client.generic("POST", "/api/v1/blueprints/import/", "text=" + "a" * size, content_type=FORM)
    assert _json_error(response)["code"] == "too_large"


def test_too_many_fields_is_a_json_400(client, settings):
    count = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1
    as_form = client.generic("POST", "/api/v1/blueprints/import/", "&".join(f"f{i}=a" for i in range(count)),
                             content_type=FORM)
    assert _json_error(as_form)["code"] == "too_many_fields"
    multipart = client.post("/api/v1/blueprints/import/", {f"f{i}": "a" for i in range(count)}, format="multipart")
    assert _json_error(multipart)["code"] == "too_many_fields"
    in_the_query = client.get("/api/v1/missions/?" + "&".join(f"f{i}=a" for i in range(count)))
    assert _json_error(in_the_query)["code"] == "too_many_fields"


def test_too_many_files_is_a_json_400(client, settings):
    files = {f"f{i}": SimpleUploadedFile(f"{i}.yaml", b"x") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)}
    response = client.post("/api/v1/blueprints/import/", files, format="multipart")
    assert _json_error(response)["code"] == "too_many_files"


def _part(headers: str, content: bytes) -> bytes:
    return b"--x\r\n" + headers.encode("utf-8", "surrogateescape") + b"\r\n\r\n" + content + b"\r\n"


UNUSUAL = [
    # JSON: invalid UTF-8, a lone surrogate escaped and raw, NUL escaped, a BOM-less UTF-16 body
    ("application/json", b'{"text": "\xff\xfe", "filename": "x.yaml"}', "parse_error"),
    ("application/json", b'{"text": "\\ud800", "filename": "x.yaml"}', "invalid"),
    ("application/json", b'{"text": "a", "filename": "\xed\xa0\x80"}', "parse_error"),
    ("application/json", b'{"text": "a\\u0000b", "filename": "x.yaml"}', "invalid"),
    ("application/json", '{"text": "a"}'.encode("utf-16-le"), "parse_error"),
    ("application/json; charset=unknown-charset", b'{"text": "a"}', "invalid_blueprint"),  # charset ignored
    # forms: invalid UTF-8 percent-escapes and NUL
    (FORM, b"text=%ff%fe%ed%a0%80&filename=x.yaml", "invalid_blueprint"),
    (FORM, b"text=a&filename=%00", "invalid"),
    # multipart: invalid UTF-8 in a text part, in a file, in a file name; a NUL file name; unusual Unicode names
    ("multipart/form-data; boundary=x", _part('Content-Disposition: form-data; name="text"', b"\xff\xed\xa0\x80")
     + b"--x--\r\n", "invalid_blueprint"),
    ("multipart/form-data; boundary=x",
     _part('Content-Disposition: form-data; name="file"; filename="a.yaml"', b"\xff\xfe") + b"--x--\r\n", "invalid"),
    ("multipart/form-data; boundary=x",
     _part('Content-Disposition: form-data; name="file"; filename="\udced\udca0\udc80.yaml"', b"slug: a")
     + b"--x--\r\n", "invalid"),  # Django drops a file part whose name is not UTF-8
    ("multipart/form-data; boundary=x",
     _part('Content-Disposition: form-data; name="file"; filename="a\x00.yaml"', b"slug: a") + b"--x--\r\n",
     "invalid_blueprint"),
    ("multipart/form-data; boundary=x",
     _part('Content-Disposition: form-data; name="file"; filename="\u202e\u2028\U0001f600.yaml"', b"slug: a")
     + b"--x--\r\n", "invalid_blueprint"),
    ("multipart/form-data; boundary=x", _part('Content-Disposition: form-data; name="\udcff"', b"a") + b"--x--\r\n",
     "invalid"),
    ("multipart/form-data; boundary=\udcff".encode("utf-8", "surrogateescape").decode("latin-1"), b"--\xff\r\n",
     "parse_error"),
    ("multipart/form-data; boundary=x", b"--x\r\nnot multipart", "invalid"),
]


@pytest.mark.parametrize(("content_type", "body", "code"), UNUSUAL)
def test_unusual_bodies_are_answered_in_the_api_error_format(client, content_type, body, code):
    response = client.generic("POST", "/api/v1/blueprints/import/", body, content_type=content_type)
    assert _json_error(response)["code"] == code
    assert not Blueprint.objects.exists()


def test_a_blueprint_still_imports_from_a_multipart_file(client):
    upload = SimpleUploadedFile("tiny.yaml", MINIMAL_BLUEPRINT.encode(), "application/yaml")
    response = client.post("/api/v1/blueprints/import/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["slug"] == "tiny"


# --- text the database cannot store, and numbers that are not ASCII digits ----------------------------------------

@pytest.mark.parametrize("config", [{"\ud800": 1}, {"a": ["\udfff"]}])
def test_a_lone_surrogate_in_a_json_field_is_refused(client, mission, agent, config):
    # PostgreSQL's jsonb refuses a lone surrogate; it used to reach the database as a 500 there.
    body = json.dumps({"mission": mission.pk, "key": "k", "title": "t", "owner_agent": "NoopAgent", "config": config})
    response = client.generic("POST", "/api/v1/tasks/", body, content_type="application/json")
    assert _json_error(response)["errors"] == {
        "config": ["Lone surrogate characters (U+D800 to U+DFFF) are not allowed."]}


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662", "1\u00b2"])
def test_an_id_in_digits_of_another_script_is_400_not_500(client, value):
    response = client.post("/api/v1/dependencies/", {"task": value, "depends_on": value}, format="json")
    assert set(_json_error(response)["errors"]) == {"task", "depends_on"}
    listed = client.get("/api/v1/tasks/", {"mission": value})
    assert list(_json_error(listed)["errors"]) == ["mission"]


@pytest.mark.parametrize("value", [" 2", "1_0", "\u0662", "+3"])
def test_a_page_number_is_ascii_digits(client, value):
    response = client.get("/api/v1/missions/", {"page_size": value})
    assert list(_json_error(response)["errors"]) == ["page_size"]


@pytest.mark.parametrize("ordering", [",", ",,,", "name,", ",-name", "name,,id"])
def test_an_ordering_with_an_empty_item_is_refused_not_ignored(client, ordering):
    # Found by the fuzzer: "ordering=,,," was read as no ordering at all.
    response = client.get("/api/v1/missions/", {"ordering": ordering, "status": "sleeping"})
    assert _json_error(response)["errors"] == {
        "ordering": ["Give comma-separated values with no empty item."],
        "status": ["Select a valid choice. sleeping is not one of the available choices."]}
    assert client.get("/api/v1/questions/", {"ordering": ","}).status_code == 400
    assert client.get("/api/v1/missions/", {"ordering": "name,-id"}).status_code == 200


@pytest.mark.parametrize("media_type", ["json", "multipart"])
def test_a_blueprint_whose_yaml_escapes_make_a_lone_surrogate_is_a_400(client, media_type):
    # Found by the fuzzer: the refusal repeated the key, which could not be encoded as JSON (a 500).
    text = '{"a\\ud8d2\\ude71": [1], "\\u00c1": []}'
    response = client.post("/api/v1/blueprints/import/", {"text": text, "filename": "x.yaml"}, format=media_type)
    body = _json_error(response)
    assert body["code"] == "invalid_blueprint"
    assert body["errors"]["file"][0].startswith("x.yaml: (top level): a key contains a NUL character or a lone")


# --- JSON nested too deep: a RecursionError (a 500) before the nesting limit (genesis/documents.py) ----------------

DEEP = "lists and objects nested more than 64 levels deep (GENESIS_JSON_MAX_DEPTH)"


def test_a_json_body_nested_five_thousand_levels_is_a_400_naming_the_limit(client, mission, agent):
    response = client.generic("POST", "/api/v1/tasks/", deep_json(5_000), content_type="application/json")
    assert _json_error(response) == {"code": "too_deep", "detail": f"The JSON body has {DEEP}.", "errors": {}}
    # The limit itself is read: the body, config and the 62 lists of its value are 64 levels.
    config = {"a": json.loads("[" * 62 + "]" * 62)}
    body = {"mission": mission.pk, "key": "k", "title": "t", "owner_agent": "NoopAgent", "config": config}
    assert client.post("/api/v1/tasks/", body, format="json").status_code == 201
    assert list(Task.objects.values_list("key", "config")) == [("k", config)]
    config["a"] = [config["a"]]
    assert _json_error(client.post("/api/v1/tasks/", {**body, "key": "k2"}, format="json"))["code"] == "too_deep"


@pytest.mark.parametrize("media_type", ["form", "multipart"])
def test_json_form_text_nested_too_deep_is_refused_by_its_field(client, media_type):
    criteria = "[" * 5_000 + "]" * 5_000
    if media_type == "form":
        response = client.generic("POST", "/api/v1/missions/", f"name=n&objective=o&success_criteria={criteria}",
                                  content_type=FORM)
    else:
        response = client.post("/api/v1/missions/", {"name": "n", "objective": "o", "success_criteria": criteria},
                               format="multipart")
    assert _json_error(response)["errors"] == {"success_criteria": [f"The JSON has {DEEP}."]}
    assert not Mission.objects.exists()
