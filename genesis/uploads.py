"""Upload rules shared by every model that stores a file: generated names and a size limit."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

_EXTENSION = re.compile(r"^\.[a-z0-9]{1,10}$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_extension(filename: str) -> str:
    """The file's extension, lower-cased, if it is short and plain; otherwise none."""
    suffix = PurePath(filename.replace("\\", "/")).suffix.lower()
    return suffix if _EXTENSION.match(suffix) else ""


def display_name(filename: str) -> str:
    """A harmless display name from an uploaded name: its last path part, unsafe characters removed."""
    base = PurePath(filename.replace("\\", "/")).name
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .")
    return cleaned[:200] or "upload"


@deconstructible
class GeneratedName:
    """``upload_to`` callable: ``<folder>/<yyyy>/<random hex><ext>``; the uploaded name never reaches disk."""

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, instance, filename: str) -> str:
        return f"{self.folder}/{uuid.uuid4().hex}{safe_extension(filename)}"

    def __eq__(self, other):
        return isinstance(other, GeneratedName) and other.folder == self.folder


def validate_upload_size(file) -> None:
    limit = settings.GENESIS_MAX_UPLOAD_BYTES
    size = getattr(file, "size", None)
    if size is not None and size > limit:
        raise ValidationError(
            f"The file is {size:,} bytes; the limit is {limit:,} bytes.", code="file_too_large"
        )


def sha256_of(file) -> str:
    digest = hashlib.sha256()
    if hasattr(file, "seek"):
        file.seek(0)
    for chunk in file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(65536), b""):
        digest.update(chunk)
    if hasattr(file, "seek"):
        file.seek(0)
    return digest.hexdigest()
