from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from genesis.exceptions import DomainError
from history.models import HistoryEntry
from tasks.models import Artifact
from tasks.services import artifact_create
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db


def test_an_upload_is_stored_under_a_generated_name(mission, lead):
    upload = SimpleUploadedFile("../../etc/x.sql", b"select 1;", content_type="text/plain")
    artifact = artifact_create(mission=mission, kind="sql", name=upload.name, file=upload, actor=lead)
    stored = Path(artifact.file.path).resolve()
    assert stored.is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    assert stored.parent.name == "artifacts"
    assert ".." not in artifact.file.name and "etc" not in artifact.file.name
    assert stored.suffix == ".sql" and len(stored.stem) == 32
    assert stored.read_bytes() == b"select 1;"
    assert artifact.name == "x.sql"
    import hashlib

    assert artifact.sha256 == hashlib.sha256(b"select 1;").hexdigest()
    assert artifact.size == 9
    assert artifact.created_by_user == lead
    assert HistoryEntry.objects.filter(event="artifact.created", data__artifact=artifact.pk).exists()


def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(mission):
    big = SimpleUploadedFile("big.csv", b"x" * (settings.GENESIS_MAX_UPLOAD_BYTES + 1))
    files_before = set(Path(settings.MEDIA_ROOT).rglob("*"))
    with pytest.raises(DomainError, match="limit") as error:
        artifact_create(mission=mission, kind="data", name="big.csv", file=big)
    assert error.value.field == "file"
    assert not Artifact.objects.exists()
    assert set(Path(settings.MEDIA_ROOT).rglob("*")) == files_before


def test_exactly_one_of_file_or_url(mission):
    with pytest.raises(DomainError, match="exactly one"):
        artifact_create(mission=mission, kind="link", name="both", file=b"x", url="https://example.com/")
    with pytest.raises(DomainError, match="exactly one"):
        artifact_create(mission=mission, kind="link", name="neither")
    link = artifact_create(mission=mission, kind="link", name="dbt docs", url="https://example.com/docs")
    assert (link.url, link.file.name) == ("https://example.com/docs", "")


def test_a_saved_artifact_is_immutable_and_a_new_one_is_a_new_version(mission, agent):
    task = TaskFactory(mission=mission, owner_agent=agent)
    first = artifact_create(mission=mission, task=task, kind="sql", name="claim_summary.sql", file=b"select 1")
    second = artifact_create(mission=mission, task=task, kind="sql", name="claim_summary.sql", file=b"select 2")
    assert (first.version, second.version) == (1, 2)
    first.name = "changed"
    with pytest.raises(PermissionError):
        first.save()
    with pytest.raises(PermissionError):
        Artifact.objects.filter(pk=first.pk).update(name="changed")
    with pytest.raises(PermissionError):
        first.delete()
    first.refresh_from_db()
    assert first.name == "claim_summary.sql"
    assert Path(first.file.path).read_bytes() == b"select 1"


def test_refuses_an_unknown_kind_and_a_task_of_another_mission(mission, agent):
    with pytest.raises(DomainError) as error:
        artifact_create(mission=mission, kind="video", name="v", url="https://example.com")
    assert error.value.field == "kind"
    with pytest.raises(DomainError) as error:
        artifact_create(mission=mission, task=TaskFactory(owner_agent=agent), kind="doc", name="d", file=b"x")
    assert error.value.field == "task"
