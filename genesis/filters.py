"""Filter types shared by the FilterSets of every app (pages and API): ids that are whole numbers in range and
booleans that are true or false, so a malformed value is refused instead of reaching the database."""

from __future__ import annotations

import re
from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField, RangeField
from django_filters.widgets import DateRangeWidget
from drf_spectacular.utils import extend_schema_field

ID_MAX = 2**63 - 1
_WHOLE = re.compile(r"^[0-9]{1,19}$")  # ASCII digits only: "\d" also matches other scripts' digits


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


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, turned into UTC before it reaches the database (PostgreSQL refuses offsets beyond
    ±15:59 and some far dates); one that cannot be expressed in UTC is refused."""

    default_error_messages = {"invalid": "Enter an ISO 8601 date-time between years 1 and 9999, e.g. "
                                         "2026-01-31T12:00:00Z."}

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            utc = parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if utc.year < 2:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return utc


class UtcDateTimeRangeField(RangeField):
    widget = DateRangeWidget

    def __init__(self, *args, **kwargs):
        super().__init__((UtcDateTimeField(), UtcDateTimeField()), *args, **kwargs)


class DateTimeRangeFilter(django_filters.IsoDateTimeFromToRangeFilter):
    """``<name>_after`` / ``<name>_before`` in ISO 8601, compared in UTC."""

    field_class = UtcDateTimeRangeField
