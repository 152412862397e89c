"""django-filter for the API, strict: a query parameter the operation does not know is refused (400) instead of
ignored, a filter given with an empty value (or a list with an empty item) is refused unless it is free text, and
an error is keyed by the query parameter the client sent.

A client that misspells a filter (``?key=`` where the list had no such filter) would otherwise get the unfiltered
list and act on the wrong object: every GET names what it does not know and lists what it does.

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
from rest_framework.settings import api_settings

_RANGE_SUFFIXES = ("_after", "_before", "_min", "_max")


def filter_parameters(filterset_class) -> list[str]:
    """The query parameters a FilterSet reads: a range filter (``created``) is read from its suffixed ends."""
    names = []
    for name, declared in filterset_class.base_filters.items():
        widget = declared.field.widget
        if isinstance(widget, SuffixedMultiWidget):
            names += [widget.suffixed(name, suffix) for suffix in widget.suffixes]
        else:
            names.append(name)
    return names


def known_query_parameters(view) -> list[str]:
    """What a GET of this view's action reads from the query string: a list its filters and pages, any action
    the parameters it declares in ``query_parameters``, and every operation DRF's ``format`` override."""
    action = getattr(view, "action", None)
    known = list(getattr(view, "query_parameters", {}).get(action, ()))
    if action == "list":
        filterset_class = getattr(view, "filterset_class", None)
        if filterset_class is not None:
            known += filter_parameters(filterset_class)
        paginator = getattr(view, "paginator", None)
        if paginator is not None:
            known += [paginator.page_query_param, paginator.page_size_query_param]
    if api_settings.URL_FORMAT_OVERRIDE:
        known.append(api_settings.URL_FORMAT_OVERRIDE)
    return sorted(set(known) - {None})


class UnknownQueryParameters(ValidationError):
    """Query parameters the operation does not read: a 400 with code ``unknown_parameter``, each named under
    ``errors`` and the known ones listed (``known``)."""

    body_code = "unknown_parameter"

    def __init__(self, unknown: list[str], known: list[str]):
        listed = ", ".join(known)
        super().__init__({name: [f"Unknown query parameter. This operation reads: {listed}."] for name in unknown})
        self.body_extra = {"known": known}
        self.body_detail = (f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                            f"This operation reads: {listed}.")


def refuse_unknown_query_parameters(request, view) -> None:
    if request.method not in ("GET", "HEAD"):
        return
    known = known_query_parameters(view)
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        raise UnknownQueryParameters(unknown, known)


class KnownQueryParametersMixin:
    """For every API view: a GET with a query parameter the operation does not read is a 400, before any work.
    An action that reads parameters of its own names them in ``query_parameters = {action: (name, ...)}``."""

    query_parameters: dict[str, tuple[str, ...]] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        refuse_unknown_query_parameters(request, self)


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
