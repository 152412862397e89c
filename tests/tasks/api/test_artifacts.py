"""Artifacts: multipart upload with the size limit, generated file names, link artifacts, and downloads that
check who is asking."""

import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tasks.models import Artifact
from tests.documents import GIB, MULTIPART, claiming
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db


def _upload(client, mission, content=b"select 1;\n", name="model.sql", **extra):
    data = {"mission": mission.pk, "kind": "sql", "file": SimpleUploadedFile(name, content, "text/x-sql"), **extra}
    return client.post("/api/v1/artifacts/", data, format="multipart")


def test_a_task_owner_uploads_and_a_stakeholder_downloads(as_user, analyst, viewer, mission, agent):
    task = TaskFactory(mission=mission, owner_agent=agent)
    response = _upload(as_user(analyst), mission, task=task.pk)
    assert response.status_code == 201, response.json()
    body = response.json()
    artifact = Artifact.objects.get(pk=body["id"])
    assert (artifact.name, artifact.version, artifact.size, artifact.task) == ("model.sql", 1, 10, task)
    assert body["sha256"] == hashlib.sha256(b"select 1;\n").hexdigest()
    assert body["created_by"] == "analyst"
    assert body["download_url"].endswith(f"/api/v1/artifacts/{artifact.pk}/download/")

    download = as_user(viewer).get(f"/api/v1/artifacts/{artifact.pk}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"select 1;\n"
    assert download["Content-Disposition"] == 'attachment; filename="model.sql"'
    assert download["Content-Type"] == "text/x-sql"


def test_a_same_named_upload_is_a_new_version(as_user, lead, mission):
    _upload(as_user(lead), mission)
    second = _upload(as_user(lead), mission, content=b"select 2;\n")
    assert second.json()["version"] == 2
    assert list(Artifact.objects.values_list("version", "size")) == [(2, 10), (1, 10)]


def test_the_uploaded_name_never_reaches_the_file_system(as_user, lead, mission):
    response = _upload(as_user(lead), mission, name="../../etc/passwd.sql")
    assert response.status_code == 201
    artifact = Artifact.objects.get()
    assert artifact.name == "passwd.sql"
    assert ".." not in artifact.file.name and "passwd" not in Path(artifact.file.name).name


def test_an_upload_over_the_limit_is_refused_and_stores_nothing(as_user, lead, mission, settings):
    too_big = b"x" * (settings.GENESIS_MAX_UPLOAD_BYTES + 1)
    response = _upload(as_user(lead), mission, content=too_big)
    assert response.status_code == 400
    assert response.json()["code"] == "file_too_large"
    assert list(response.json()["errors"]) == ["file"]
    assert Artifact.objects.count() == 0


def test_a_much_larger_upload_is_refused_before_it_is_read(as_user, lead, mission, settings):
    huge = b"x" * (settings.GENESIS_MAX_UPLOAD_BYTES * 3)
    response = _upload(as_user(lead), mission, content=huge)
    assert response.status_code == 400
    assert "the limit is" in response.json()["errors"]["file"][0]
    assert Artifact.objects.count() == 0


def test_a_link_artifact_redirects_on_download(as_user, lead, mission):
    response = as_user(lead).post("/api/v1/artifacts/", {
        "mission": mission.pk, "kind": "link", "name": "dbt docs", "url": "https://docs.example.com/dbt",
    })
    assert response.status_code == 201, response.json()
    assert response.json()["download_url"] is None
    download = as_user(lead).get(f"/api/v1/artifacts/{response.json()['id']}/download/")
    assert (download.status_code, download["Location"]) == (302, "https://docs.example.com/dbt")


def test_a_file_and_a_url_together_are_refused(as_user, lead, mission):
    response = _upload(as_user(lead), mission, url="https://example.com/x")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["file"]


def test_stakeholders_cannot_upload_and_outsiders_cannot_see(as_user, lead, viewer, outsider, mission):
    refused = _upload(as_user(viewer), mission)
    assert refused.status_code == 403
    artifact_id = _upload(as_user(lead), mission).json()["id"]
    assert as_user(outsider).get(f"/api/v1/artifacts/{artifact_id}/download/").status_code == 404
    assert as_user(outsider).get("/api/v1/artifacts/").json()["count"] == 0
    hidden = _upload(as_user(outsider), mission)
    assert hidden.status_code == 400 and list(hidden.json()["errors"]) == ["mission"]


def test_an_upload_claiming_two_gigabytes_is_refused_unread_even_with_a_session(lead, mission, settings):
    # A session's CSRF check reads a form body before the view runs: the limit acts in the parser, before that read.
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(lead)
    client.cookies["csrftoken"] = "a" * 32
    response = client.generic("POST", "/api/v1/artifacts/", b"--x--\r\n", content_type=MULTIPART,
                              **claiming(2 * GIB), HTTP_X_CSRFTOKEN="a" * 32)
    assert response.status_code == 400
    message = f"The upload is 2,147,483,648 bytes; the limit is {settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes."
    assert response.json() == {"code": "file_too_large", "detail": message, "errors": {"file": [message]}}
    assert Artifact.objects.count() == 0


# --- a finished mission takes no new artifact ----------------------------------------------------------------------


def _finish(mission, status):
    from missions.services import mission_transition

    path = {"completed": ["active", "completed"], "closed": ["active", "completed", "closed"],
            "cancelled": ["cancelled"]}[status]
    for step in path:
        mission = mission_transition(mission=mission, to=step)
    return mission


@pytest.mark.parametrize("status", ["completed", "closed", "cancelled"])
def test_an_upload_to_a_finished_mission_is_a_409_naming_its_status(as_user, lead, mission, status):
    _finish(mission, status)
    response = _upload(as_user(lead), mission)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "mission_finished"
    assert body["detail"].startswith(f"Mission “Healthcare Data Pipeline” is {status}: it takes no new artifacts")
    assert list(body["errors"]) == ["mission"]
    link = as_user(lead).post("/api/v1/artifacts/", {"mission": mission.pk, "kind": "link", "name": "Docs",
                                                     "url": "https://example.com/docs"})
    assert link.status_code == 409
    assert not Artifact.objects.filter(mission=mission).exists()


def test_an_active_mission_still_takes_uploads_and_a_refresh_still_records_on_a_closed_one(as_user, lead, mission):
    from missions.services import mission_transition
    from tasks import services

    mission_transition(mission=mission, to="active")
    assert _upload(as_user(lead), mission).status_code == 201
    for status in ("completed", "closed"):
        mission_transition(mission=mission, to=status)
    report = services.artifact_create(mission=mission, kind="report", name="refresh-run_results.json",
                                      file=b"{}", on_finished_mission=True)
    assert report.version == 1 and report.mission.status == "closed"


def test_the_admin_refuses_an_artifact_for_a_finished_mission_on_the_mission_field(client, admin_user, mission):
    _finish(mission, "cancelled")
    client.force_login(admin_user)
    response = client.post("/admin/tasks/artifact/add/", {
        "mission": mission.pk, "kind": "link", "name": "Docs", "url": "https://example.com/docs"})
    assert response.status_code == 200  # the form again, with the reason
    assert "is cancelled: it takes no new artifacts" in response.content.decode()
    assert not Artifact.objects.exists()
