"""Serializer fields shared by the API: JSON that refuses NUL characters (PostgreSQL cannot store them) and says
what shape it must have."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# Long free text (objectives, descriptions, feedback) has a bound, so a huge string is refused, not stored.
TEXT_MAX = 20_000


def _contains_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


class CleanJSONField(serializers.JSONField):
    shape: type | None = None
    shape_message = ""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if self.shape is not None and not isinstance(value, self.shape):
            self.fail_with(self.shape_message)
        if _contains_nul(value):
            self.fail_with("NUL characters are not allowed.")
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


class IdRelatedField(serializers.PrimaryKeyRelatedField):
    """A related object by id: a whole number in range (not a float, a boolean or a huge value the database
    would refuse) before it is looked up."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not (isinstance(data, int) or (isinstance(data, str) and data.isdigit())):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 1 <= int(data) <= ID_MAX:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(int(data))


class NameRelatedField(serializers.SlugRelatedField):
    """A related object by name (a username, an agent's name): text without NUL bytes, checked before lookup."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or "\x00" in data or len(data) > 200:
            self.fail("invalid")
        return super().to_internal_value(data)
