"""django-filter for the API, strict: a filter given with an empty value is refused (400) unless it is free text.

The pages share these FilterSets and submit empty form fields meaning "any"; an API client that sends
``created_before=`` or ``mission=`` has sent something malformed, and is told so instead of being ignored."""

from __future__ import annotations

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

_RANGE_SUFFIXES = ("_after", "_before", "_min", "_max")


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            filters = filterset_class.base_filters
            errors = {}
            for name, values in request.query_params.lists():
                if not any(value == "" for value in values):
                    continue
                declared = filters.get(name) or filters.get(_strip_suffix(name))
                if declared is not None and not isinstance(declared, django_filters.CharFilter):
                    errors[name] = ["Give a value, or leave the parameter out."]
            if errors:
                raise ValidationError(errors)
        return super().filter_queryset(request, queryset, view)


def _strip_suffix(name: str) -> str:
    for suffix in _RANGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
