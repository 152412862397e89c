"""A mission's spec file over the API: its URL is the API's own permission-checked download, never a public
/media/ path."""

import pytest
from django.core.files.base import ContentFile

from missions import services as mission_services

pytestmark = pytest.mark.django_db

SPEC = b"project: healthcare\n"


@pytest.fixture
def spec_mission(mission, lead):
    return mission_services.mission_update(mission=mission, actor=lead,
                                           spec_file=ContentFile(SPEC, name="project.yml"))


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_api_gives_the_spec_file_a_permission_checked_url(as_user, lead, viewer, outsider, spec_mission):
    body = as_user(viewer).get(f"/api/v1/missions/{spec_mission.pk}/").json()
    assert body["spec_file"] == f"http://testserver/api/v1/missions/{spec_mission.pk}/spec-file/"
    response = as_user(viewer).get(body["spec_file"])
    assert response.status_code == 200 and _body(response) == SPEC
    assert as_user(outsider).get(body["spec_file"]).status_code == 404
    assert as_user(None).get(body["spec_file"]).status_code == 401


def test_a_mission_without_a_spec_file_says_so(as_user, lead, mission):
    assert as_user(lead).get(f"/api/v1/missions/{mission.pk}/").json()["spec_file"] is None
    response = as_user(lead).get(f"/api/v1/missions/{mission.pk}/spec-file/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "This mission has no spec file.", "errors": {}}
