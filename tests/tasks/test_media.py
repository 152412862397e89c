"""Stored files are never public: ``/media/...`` serves a file only to someone who may read its mission (staff: any),
anonymous callers are sent to sign in, and the API serves a mission's spec file at its own permission-checked URL."""

import importlib

import pytest
from django.core.files.base import ContentFile
from django.urls import resolve

from missions import services as mission_services
from tasks import services as task_services

pytestmark = pytest.mark.django_db

SPEC = b"project: healthcare\n"


@pytest.fixture
def spec_mission(mission, lead):
    return mission_services.mission_update(mission=mission, actor=lead,
                                           spec_file=ContentFile(SPEC, name="project.yml"))


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_url_conf_serves_no_public_media_even_in_debug(settings):
    import genesis.urls

    settings.DEBUG = True
    try:
        reloaded = importlib.reload(genesis.urls)
        match = resolve("/media/specs/abc.yml", urlconf=reloaded)
        assert match.func.__module__ == "tasks.media" and match.url_name == "media"
        assert not any("static" in getattr(p.callback, "__module__", "") for p in reloaded.urlpatterns
                       if hasattr(p, "callback"))
    finally:
        settings.DEBUG = False
        importlib.reload(genesis.urls)


def test_an_anonymous_visitor_is_sent_to_sign_in_and_gets_no_spec_file(client, spec_mission):
    response = client.get(spec_mission.spec_file.url)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/media/specs/")
    assert SPEC not in response.content


def test_a_member_downloads_the_spec_file_and_an_outsider_gets_404(client, spec_mission, viewer, outsider, admin_user):
    url = spec_mission.spec_file.url
    client.force_login(viewer)
    response = client.get(url)
    assert response.status_code == 200 and _body(response) == SPEC
    assert response["Content-Disposition"] == f'attachment; filename="mission-{spec_mission.pk}-spec.yml"'
    assert response["X-Content-Type-Options"] == "nosniff" and "private" in response["Cache-Control"]
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(admin_user)
    assert _body(client.get(url)) == SPEC


def test_an_artifact_file_is_served_to_its_missions_members_only(client, mission, viewer, outsider, agent):
    artifact = task_services.artifact_create(mission=mission, kind="sql", name="claims.sql", file=b"select 1",
                                             actor=agent)
    client.force_login(outsider)
    assert client.get(artifact.file.url).status_code == 404
    client.force_login(viewer)
    response = client.get(artifact.file.url)
    assert _body(response) == b"select 1"
    assert response["Content-Disposition"] == 'attachment; filename="claims.sql"'


def test_a_file_no_mission_owns_is_for_staff_and_a_path_outside_media_is_404(client, lead, admin_user):
    from django.core.files.storage import default_storage

    name = default_storage.save("docs/handbook.md", ContentFile(b"# Handbook"))
    client.force_login(lead)
    assert client.get(f"/media/{name}").status_code == 404
    client.force_login(admin_user)
    assert _body(client.get(f"/media/{name}")) == b"# Handbook"
    assert client.get("/media/../genesis/settings.py").status_code == 404
    assert client.get("/media/docs/missing.md").status_code == 404
