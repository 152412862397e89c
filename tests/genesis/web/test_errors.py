"""Errors a person can act on: 400/403/404/500 in the site's layout with the navigation, previews that never fail,
the favicon, and request warnings logged once, on one line."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from missions.models import Mission
from tasks import services as task_services
from tests.documents import GIB, MULTIPART, claiming

pytestmark = pytest.mark.django_db

NAV = '<nav aria-label="Main">'
ROOT = Path(__file__).resolve().parents[3]


def _artifact(mission, lead, name, content, kind="data"):
    return task_services.artifact_create(mission=mission, kind=kind, name=name, file=content, actor=lead)


def test_a_refused_action_is_a_styled_403_with_navigation_and_the_reason(client_for, mission, viewer):
    response = client_for(viewer).post(reverse("missions:control", args=[mission.pk, "launch"]))
    assert response.status_code == 403
    content = response.content.decode()
    assert NAV in content and "genesis/app.css" in content
    assert "You can’t do this here" in content
    assert "Only the Mission Owner can do this." in content
    assert 'href="/missions/"' in content


def test_a_refused_htmx_request_gets_the_reason_not_a_page(client_for, mission, viewer):
    response = client_for(viewer).post(reverse("missions:control", args=[mission.pk, "launch"]),
                                       HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert response.content.decode() == "Only the Mission Owner can do this."


def test_an_expired_form_is_a_styled_403_that_says_what_to_do(lead, mission):
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    response = client.post(reverse("missions:control", args=[mission.pk, "launch"]))
    assert response.status_code == 403
    content = response.content.decode()
    assert NAV in content and "This form has expired" in content and "reload the page" in content
    mission.refresh_from_db()
    assert mission.status == "draft"


def test_an_unknown_page_is_a_styled_404_with_navigation(client_for, lead):
    response = client_for(lead).get("/missions/no-such-page/")
    assert response.status_code == 404
    content = response.content.decode()
    assert NAV in content and "This page doesn’t exist, or isn’t shared with you" in content
    assert "<code>/missions/no-such-page/</code>" in content


def test_another_missions_cockpit_is_the_same_404(client_for, mission, outsider):
    response = client_for(outsider).get(reverse("missions:cockpit", args=[mission.pk]))
    assert response.status_code == 404
    assert "isn’t shared with you" in response.content.decode()
    assert mission.name not in response.content.decode()


def test_an_unknown_api_path_answers_in_the_api_format(client_for, lead):
    response = client_for(lead).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_failing_view_is_a_styled_500_with_navigation(settings, lead):
    settings.DEBUG = False
    settings.ROOT_URLCONF = "tests.genesis.web.error_urls"
    client = Client(raise_request_exception=False)
    client.force_login(lead)
    response = client.get("/fails/")
    assert response.status_code == 500
    content = response.content.decode()
    assert NAV in content and "Something went wrong on our side" in content
    assert "the view failed" not in content and "Traceback" not in content
    assert 'href="/missions/"' in content and 'href="/my-work/"' in content


def test_the_500_page_renders_without_a_request():
    from genesis.errors import server_error

    class Bare:  # no session, no user, nothing a context processor could read
        path_info = "/missions/1/"
        META = {}

    response = server_error(Bare())
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_a_launch_upload_claiming_two_gigabytes_is_the_styled_400_naming_the_limit(lead, settings):
    # As in production: the CSRF check reads the form first, so the limit acts there, before the view runs.
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    client.get(reverse("blueprints:launch"))
    response = client.generic("POST", reverse("blueprints:launch"), b"--x--\r\n", content_type=MULTIPART,
                              **claiming(2 * GIB), HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 400
    content = response.content.decode()
    assert NAV in content and "genesis/app.css" in content and "Error 400" in content
    assert (f"The upload is 2,147,483,648 bytes; the limit is {settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes."
            in content)
    assert "Signed in as <strong>lead</strong>" in content and 'href="/missions/"' in content
    assert not Mission.objects.exists()


def test_the_launch_view_reading_an_oversized_upload_itself_gives_the_same_page(client_for, lead, settings):
    response = client_for(lead).generic("POST", reverse("blueprints:launch"), b"--x--\r\n", content_type=MULTIPART,
                                        **claiming(settings.GENESIS_MAX_UPLOAD_BYTES + 10 * 1024 * 1024))
    assert response.status_code == 400
    assert "; the limit is 65,536 bytes." in response.content.decode() and NAV in response.content.decode()


def test_too_many_fields_on_a_page_is_the_styled_400_naming_the_limit(client_for, lead, settings):
    query = "&".join(f"f{i}=a" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client_for(lead).get(f"{reverse('missions:list')}?{query}")
    assert response.status_code == 400
    content = response.content.decode()
    assert NAV in content
    assert f"more than the {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields or parameters this server reads" in content
    fragment = client_for(lead).get(f"{reverse('missions:list')}?{query}", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 400 and fragment.content.decode().startswith("The request has more than the")


def test_a_request_for_a_host_the_site_does_not_serve_is_a_400_page_and_json_under_the_api(client_for, lead):
    client = client_for(lead)
    page = client.get(reverse("missions:list"), HTTP_HOST="elsewhere.example")
    assert page.status_code == 400
    assert "Error 400" in page.content.decode() and "could not be read" in page.content.decode()
    api = client.get("/api/v1/missions/", HTTP_HOST="elsewhere.example")
    assert api.status_code == 400
    assert api.json() == {"code": "bad_request", "detail": "The request could not be read."}


def test_the_api_names_the_same_limit_in_its_own_format(as_user, lead, settings):
    response = as_user(lead).generic("POST", "/api/v1/artifacts/", b"--x--\r\n", content_type=MULTIPART,
                                     **claiming(2 * GIB))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "file_too_large"
    assert body["errors"]["file"] == [
        f"The upload is 2,147,483,648 bytes; the limit is {settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes."]


def test_the_favicon_is_served_and_linked(client_for, lead):
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("genesis/favicon.ico")
    page = client_for(lead).get(reverse("missions:list")).content.decode()
    assert 'rel="icon"' in page and "genesis/favicon.svg" in page


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("broken.csv", 'id,name\n1,"unterminated\x00\n', "it holds binary data, not text"),
    ("quoted.csv", 'a,b\n"x"y,1\n', None),
    ("broken.json", '{"target": ', "it is not valid JSON"),
    ("latin1.csv", "name\nJos\xe9\n".encode("latin-1"), "it is not UTF-8 text"),
    ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "it is not a text file"),
])
def test_an_unreadable_file_is_shown_as_cannot_preview_with_a_download(client_for, mission, lead, name, content,
                                                                        reason):
    artifact = _artifact(mission, lead, name, content)
    response = client_for(lead).get(reverse("tasks:artifact", args=[artifact.pk]))
    assert response.status_code == 200
    text = response.content.decode()
    if reason is None:  # odd but legal CSV: a table, not a failure
        assert "<table" in text
        return
    assert "Cannot preview this file: " + reason in text
    assert reverse("tasks:artifact_download", args=[artifact.pk]) in text


def test_a_csv_the_reader_refuses_is_cannot_preview(client_for, mission, lead):
    limit = csv.field_size_limit()
    csv.field_size_limit(10)
    try:
        artifact = _artifact(mission, lead, "wide.csv", "a,b\n" + "x" * 100 + ",1\n")
        response = client_for(lead).get(reverse("tasks:artifact", args=[artifact.pk]))
    finally:
        csv.field_size_limit(limit)
    assert response.status_code == 200
    assert "Cannot preview this file: it is not valid CSV (field larger than field limit (10))" in \
        response.content.decode()


def test_json_larger_than_the_preview_is_cannot_preview(client_for, mission, lead, monkeypatch):
    monkeypatch.setattr("tasks.previews.PREVIEW_BYTES", 64)
    artifact = _artifact(mission, lead, "big.json", "[" + ",".join(["1"] * 200) + "]")
    response = client_for(lead).get(reverse("tasks:artifact", args=[artifact.pk]))
    assert response.status_code == 200
    assert "too large to read as JSON here" in response.content.decode()


# Django's handlers log a refused or failed request through log_response, with the exception attached; the site's
# LOGGING is applied in a fresh process, as ``manage.py runserver`` applies it (Django's defaults first, DEBUG on),
# since reconfiguring logging inside the test process would close pytest's own log handlers.
LOG_SCRIPT = """
import django
django.setup()
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseForbidden, HttpResponseNotFound, HttpResponseServerError
from django.utils.log import log_response

for error, response, message in [
    (PermissionDenied("Only the Mission Owner can do this."), HttpResponseForbidden(),
     "Forbidden (Permission denied): %s"),
    (Http404("No Mission matches the given query."), HttpResponseNotFound(), "Not Found: %s"),
    (RuntimeError("the view failed"), HttpResponseServerError(), "Internal Server Error: %s"),
]:
    try:
        raise error
    except Exception as caught:
        log_response(message, "/missions/1/launch/", response=response, exception=caught)
"""


@pytest.fixture(scope="module")
def request_log(tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "LOG_LEVEL"}}
    env.update({"DJANGO_SETTINGS_MODULE": "genesis.settings", "DEBUG": "1",
                "GENESIS_VAR_DIR": str(tmp_path_factory.mktemp("var"))})
    result = subprocess.run([sys.executable, "-c", LOG_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=True)
    return result.stderr


def test_a_routine_403_is_logged_once_on_one_line_without_a_traceback(request_log):
    lines = [line for line in request_log.splitlines() if "Forbidden" in line]
    assert len(lines) == 1, request_log
    assert lines[0].endswith("WARNING django.request Forbidden (Permission denied): /missions/1/launch/ "
                             "(Only the Mission Owner can do this.)")
    assert "PermissionDenied" not in request_log


def test_a_404_is_logged_once_without_a_traceback(request_log):
    lines = [line for line in request_log.splitlines() if "Not Found" in line]
    assert len(lines) == 1, request_log
    assert lines[0].endswith("WARNING django.request Not Found: /missions/1/launch/ "
                             "(No Mission matches the given query.)")
    assert "Http404" not in request_log


def test_a_server_error_is_logged_once_and_keeps_its_traceback(request_log):
    assert request_log.count("ERROR django.request Internal Server Error: /missions/1/launch/") == 1
    assert request_log.count("Traceback (most recent call last)") == 1
    assert "RuntimeError: the view failed" in request_log
