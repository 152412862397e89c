"""Serializer fields shared by the API: JSON that refuses NUL characters and lone surrogates (PostgreSQL cannot store
them) and says what shape it must have; related objects by id or by name that refuse an empty value instead of
reading it as null or "not given"."""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from genesis.documents import JSONTooDeep, loads_json

# Long free text (objectives, descriptions, feedback) has a bound, so a huge string is refused, not stored.
TEXT_MAX = 20_000


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unstorable(value) -> str | None:
    """Why PostgreSQL's jsonb would refuse this value (a NUL character, a lone surrogate), or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "NUL characters are not allowed."
        if _SURROGATE.search(value):
            return "Lone surrogate characters (U+D800 to U+DFFF) are not allowed."
        return None
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else []
    for item in items:
        reason = _unstorable(item)
        if reason:
            return reason
    return None


class CleanJSONField(serializers.JSONField):
    shape: type | None = None
    shape_message = ""

    def to_internal_value(self, data):
        if getattr(data, "is_json_string", False):  # form text (genesis/api/parsers.py), read with the depth limit
            try:
                data = loads_json(data)
            except JSONTooDeep as error:
                self.fail_with(f"The JSON has {error.msg}.")
            except ValueError:
                self.fail("invalid")
        value = super().to_internal_value(data)
        if self.shape is not None and not isinstance(value, self.shape):
            self.fail_with(self.shape_message)
        reason = _unstorable(value)
        if reason:
            self.fail_with(reason)
        return value

    def fail_with(self, message: str):
        raise serializers.ValidationError(message, code="invalid")


@extend_schema_field({"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object"}]}})
class CriteriaField(CleanJSONField):
    """A list of statements (text) or check definitions (objects)."""

    shape = list
    shape_message = "Must be a list of statements (text) or check definitions (objects)."

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not all(isinstance(item, str | dict) for item in value):
            self.fail_with(self.shape_message)
        return value


@extend_schema_field({"type": "array", "items": {"type": "string", "format": "email"}})
class EmailListField(CleanJSONField):
    shape = list
    shape_message = "Must be a list of email addresses."

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not all(isinstance(item, str) and len(item) <= 320 for item in value):
            self.fail_with(self.shape_message)
        return value


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(CleanJSONField):
    """A JSON object (agent parameters, configuration)."""

    shape = dict
    shape_message = "Must be a JSON object."


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


ID_MAX = 2**63 - 1


class _NoBlankMixin:
    """DRF reads an empty string sent for a related field as null (or, in a form, as "not given"): an API client
    that sends ``"owner": ""`` has sent neither, and the schema does not allow it."""

    def run_validation(self, data=serializers.empty):
        if data == "":
            self.fail("blank")
        return super().run_validation(data)


class IdRelatedField(_NoBlankMixin, serializers.PrimaryKeyRelatedField):
    """A related object by id: a whole number in range (not a float, a boolean or a huge value the database
    would refuse) before it is looked up."""

    default_error_messages = {"blank": "An empty value is not an id: give a whole number from 1 up."}

    def to_internal_value(self, data):
        whole_text = isinstance(data, str) and data.isascii() and data.isdigit()  # not "²": int() refuses it
        if isinstance(data, bool) or not (isinstance(data, int) or whole_text):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 1 <= int(data) <= ID_MAX:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(int(data))


class NameRelatedField(_NoBlankMixin, serializers.SlugRelatedField):
    """A related object by name (a username, an agent's name): non-empty text without NUL bytes, checked before
    lookup."""

    default_error_messages = {"blank": "This field may not be blank."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or "\x00" in data or len(data) > 200:
            self.fail("invalid")
        return super().to_internal_value(data)


def file_name_only(path: str) -> str:
    """The last part of a file path, whichever separator it uses: the server's folders are not the caller's
    business."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


class FileNameField(serializers.CharField):
    """A stored file path, shown as its file name only (``build-marts.yaml``, not the folder it was
    loaded from on the server)."""

    def to_representation(self, value):
        return file_name_only(str(value))


class StaffOnlyCharField(serializers.CharField):
    """Text only staff read (a connection's location: a SQLite file path is a path on the server, a DSN names a
    host); everyone else reads null. The schema says so (genesis/api/schema.py)."""

    def get_attribute(self, instance):
        request = self.context.get("request")
        if request is None or not getattr(request.user, "is_staff", False):
            return None
        return super().get_attribute(instance)
