"""Request parsers: a form or multipart body means what the same JSON body means, and no body can hold a worker.

DRF reads a form body (a ``QueryDict``) with HTML-form conventions: an empty value stands for "absent" or null, a
missing boolean is false, and a field sent twice silently keeps its last value. An API client that sends
``owner=`` or ``target_connection=7&target_connection=`` has sent something the schema does not allow, and is told
so. These parsers hand the serializers a plain dict instead, as the JSON parser does: a field sent once is its text,
a field sent several times is a list (refused by a field that takes one value), and an empty text is empty.

Limits: a multipart body whose Content-Length is over the upload limit is refused before it is read
(genesis/uploads.py), and JSON nested deeper than GENESIS_JSON_MAX_DEPTH is a 400 naming the limit, never a
RecursionError (genesis/documents.py). JSON and form bodies are bounded by DATA_UPLOAD_MAX_MEMORY_SIZE (Django).
"""

from __future__ import annotations

import codecs
import io
import re

from django.conf import settings
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.utils.http import parse_header_parameters
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

from genesis.documents import JSONTooDeep, loads_json
from genesis.uploads import refuse_oversized_upload


class FormText(str):
    """A value sent as form text. A JSON field reads it as JSON (a form has no other way to send a list or an
    object): DRF's JSONField parses a string that carries ``is_json_string``."""

    is_json_string = True


def _plain(multi, wrap=FormText) -> dict:
    """A ``QueryDict`` or ``MultiValueDict`` as a plain dict: one value as itself, several as a list."""
    return {key: wrap(values[0]) if len(values) == 1 else [wrap(value) for value in values]
            for key, values in multi.lists()}


def _keep(upload):
    return upload


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the nesting limit (``loads_json``)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
            return loads_json(text, parse_constant=strict_constant if self.strict else None)
        except JSONTooDeep as exc:
            raise ParseError(f"The JSON body has {exc.msg}.", code="too_deep") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return _plain(super().parse(stream, media_type, parser_context))


def spell_out_empty_parts(body: bytes, boundary: bytes) -> bytes:
    """A part may end right after its headers (RFC 2046: the body of a part is optional; werkzeug sends an empty
    field so). Django's parser cannot tell such a part from garbage and drops it, so ``owner`` sent empty would read
    as "not sent": give each such part the blank line and empty body Django expects."""
    delimiter = re.escape(b"--" + boundary)
    header_only = re.compile(rb"(?:\A|(?<=\r\n))(" + delimiter + rb"\r\n(?:[^\r\n]+\r\n)+)(?=\r\n" + delimiter + rb")")
    return header_only.sub(rb"\1\r\n", body)


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context["request"]
        refuse_oversized_upload(request.META)  # before any of the body is read, even the small ones read whole below
        encoding = parsers.get_encoding(parser_context)
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        boundary = parse_header_parameters(media_type or "")[1].get("boundary", "")
        length = str(meta.get("CONTENT_LENGTH") or "")
        # Bodies small enough to be form fields only are read whole (Django would hold them in memory anyway).
        if boundary.isascii() and length.isdigit() and 0 < int(length) <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            body = spell_out_empty_parts(stream.read(int(length)), boundary.encode("ascii"))
            stream, meta["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        try:
            data, files = DjangoMultiPartParser(meta, stream, request.upload_handlers, encoding).parse()
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
        return parsers.DataAndFiles(_plain(data), _plain(files, wrap=_keep))
