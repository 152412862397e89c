"""Filter types shared by the FilterSets of every app (pages and API): ids that are whole numbers in range and
booleans that are true or false, so a malformed value is refused instead of reaching the database."""

from __future__ import annotations

import re

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field

ID_MAX = 2**63 - 1
_WHOLE = re.compile(r"^\d{1,19}$")


class IdField(forms.IntegerField):
    default_error_messages = {"invalid": "Enter an id: a whole number from 1 up."}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if not _WHOLE.match(str(value).strip()):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": ID_MAX})
class IdFilter(django_filters.NumberFilter):
    """An object id (``mission=12``)."""

    field_class = IdField


@extend_schema_field({"type": "boolean"})
class StrictBooleanFilter(django_filters.ChoiceFilter):
    """``true`` or ``false``; anything else is refused (a plain BooleanFilter reads "null" as "any")."""

    def __init__(self, *args, **kwargs):
        kwargs["choices"] = [("true", "true"), ("false", "false")]
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value in ("", None):
            return qs
        return super().filter(qs, value == "true")
