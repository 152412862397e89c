"""Upload rules shared by every path that takes a file: generated names and one size limit, GENESIS_MAX_UPLOAD_BYTES,
checked twice: on the request's Content-Length before its body is read (``refuse_oversized_upload``, run for every
multipart body by ``UploadLimitHandler``), and on the file itself (``validate_upload_size``)."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.files.uploadhandler import FileUploadHandler
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


# Multipart framing around the file: a body over the upload limit by more than this cannot be one upload within it.
UPLOAD_FRAMING_BYTES = 64 * 1024


class UploadTooLarge(RequestDataTooBig):
    """A request whose Content-Length is over the upload limit: refused before its body is read. Django answers
    400 (as for any body it will not read); the API answers in its error format under ``file``."""

    def __init__(self, length: int):
        self.length = length
        self.message = f"The upload is {length:,} bytes; the limit is {settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes."
        super().__init__(self.message)


def refuse_oversized_upload(meta) -> None:
    """Raise ``UploadTooLarge`` when the request (its ``META``) says its multipart body is larger than any it may
    send: a file up to GENESIS_MAX_UPLOAD_BYTES, or form fields up to DATA_UPLOAD_MAX_MEMORY_SIZE (which Django
    checks as it reads them, and names when they are too many), with their framing."""
    length = str(meta.get("CONTENT_LENGTH") or "")
    most = max(settings.GENESIS_MAX_UPLOAD_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE) + UPLOAD_FRAMING_BYTES
    if length.isdigit() and int(length) > most:
        raise UploadTooLarge(int(length))


class UploadLimitHandler(FileUploadHandler):
    """First of ``FILE_UPLOAD_HANDLERS``: Django calls it before reading any multipart body, wherever the body is
    read first (the CSRF check of an admin form, a form, the API's parser). It passes every chunk on unchanged."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        refuse_oversized_upload(META)

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None


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
