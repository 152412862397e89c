"""django-filter for the API, strict: a filter given with an empty value (or a list with an empty item) is refused
(400) unless it is free text, and an error is keyed by the query parameter the client sent.

The pages share these FilterSets and submit empty form fields meaning "any"; an API client that sends
``created_before=`` or ``mission=`` has sent something malformed, and is told so instead of being ignored. A range
filter (``created``) is read from two parameters (``created_after``, ``created_before``): its error names the one
that is wrong, not the filter, which is no parameter at all."""

from __future__ import annotations

import django_filters
from django import forms
from django_filters.filters import BaseCSVFilter
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.widgets import SuffixedMultiWidget
from rest_framework.exceptions import ValidationError

_RANGE_SUFFIXES = ("_after", "_before", "_min", "_max")


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        filters = filterset.base_filters
        errors = {}
        for name, values in request.query_params.lists():
            declared = filters.get(name) or filters.get(_strip_suffix(name))
            if declared is None:
                continue
            if any(value == "" for value in values) and not isinstance(declared, django_filters.CharFilter):
                errors[name] = ["Give a value, or leave the parameter out."]
            elif isinstance(declared, BaseCSVFilter) and any(
                    part.strip() == "" for value in values for part in value.split(",")):
                # "ordering=,name" would otherwise be read as "name" and "ordering=," as no ordering at all.
                errors[name] = ["Give comma-separated values with no empty item."]
        if not filterset.is_valid():
            errors = {**_errors_by_parameter(filterset, request.query_params), **errors}
        if errors:
            raise ValidationError(errors)
        return filterset.qs


def _errors_by_parameter(filterset, params) -> dict:
    errors = {}
    for name, messages in filterset.errors.items():
        field = filterset.form.fields.get(name)
        widget = getattr(field, "widget", None)
        if not isinstance(widget, SuffixedMultiWidget) or not isinstance(field, forms.MultiValueField):
            errors[name] = list(messages)
            continue
        parameters = [widget.suffixed(name, suffix) for suffix in widget.suffixes]
        wrong = {}
        for parameter, part in zip(parameters, field.fields, strict=True):
            if parameter not in params:
                continue
            try:
                part.clean(params[parameter])
            except forms.ValidationError as error:
                wrong[parameter] = list(error.messages)
        # An error of the range as a whole (neither end wrong by itself) goes to every end the client sent.
        sent = {parameter: list(messages) for parameter in parameters if parameter in params}
        errors.update(wrong or sent or {name: list(messages)})
    return errors


def _strip_suffix(name: str) -> str:
    for suffix in _RANGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
