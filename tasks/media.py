"""Stored files (``MEDIA_URL``), served only to people whose role lets them read the mission a file belongs to.

Nothing under ``MEDIA_ROOT`` is public: an artifact's file and a mission's spec file are served to whoever may see
their mission (staff: every mission), as attachments that are never sniffed; any other stored file (a docs index's
documents) to staff only. Anonymous callers are sent to sign in. This keeps every ``FieldFile.url`` (the admin's
file links) working in development and production alike, behind the same rule as the pages; the API serves the
same files through its own views (``/api/v1/artifacts/{id}/download/``, ``/api/v1/missions/{id}/spec-file/``).
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePath

from django.contrib.auth.decorators import login_required
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_GET

from missions.models import Mission
from missions.permissions import can_view
from tasks.models import Artifact


def file_response(field_file, *, filename: str, content_type: str = "") -> FileResponse:
    """A stored file as a download: an attachment under its display name, its type never sniffed, kept out of shared
    caches."""
    try:
        handle = field_file.open("rb")
    except (OSError, ValueError):
        raise Http404("The file is missing from storage.") from None
    content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def _mission_of(name: str) -> tuple[Mission | None, object | None, str, str]:
    """The mission a stored file belongs to, the file field, its download name and its content type."""
    artifact = Artifact.objects.select_related("mission").filter(file=name).first()
    if artifact is not None:
        return artifact.mission, artifact.file, artifact.name, artifact.content_type
    mission = Mission.objects.filter(spec_file=name).first()
    if mission is not None:
        return mission, mission.spec_file, spec_file_name(mission), ""
    return None, None, "", ""


def spec_file_name(mission: Mission) -> str:
    """The name a mission's spec file downloads under: ``mission-12-spec.yml`` (stored names are random)."""
    return f"mission-{mission.pk}-spec{PurePath(mission.spec_file.name).suffix}"


@login_required(login_url="login")
@require_GET
def media_file(request: HttpRequest, name: str) -> FileResponse:
    mission, field_file, filename, content_type = _mission_of(name)
    if mission is not None:
        if not can_view(request.user, mission):
            raise Http404
        return file_response(field_file, filename=filename, content_type=content_type)
    if not request.user.is_staff:
        raise Http404
    try:
        if not default_storage.exists(name):
            raise Http404
    except SuspiciousFileOperation:
        raise Http404 from None
    return file_response(_StoredFile(name), filename=name.rsplit("/", 1)[-1])


class _StoredFile:
    """A stored file by name, opened like a model's ``FieldFile``."""

    def __init__(self, name: str):
        self.name = name

    def open(self, mode="rb"):
        return default_storage.open(self.name, mode)
