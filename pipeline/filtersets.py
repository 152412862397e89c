"""Filters for mapping spec versions and environments, shared by pages and the API."""

from __future__ import annotations

import django_filters

from genesis.filters import IdFilter
from pipeline.choices import MappingStatus
from pipeline.models import Environment, MappingSpecVersion


class MappingSpecVersionFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="spec__mission_id", label="Mission id")
    target_table = django_filters.CharFilter(field_name="spec__target_table", max_length=200)
    status = django_filters.MultipleChoiceFilter(choices=MappingStatus.choices)

    class Meta:
        model = MappingSpecVersion
        fields = ["mission", "target_table", "status"]


class EnvironmentFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="mission_id", label="Mission id")
    name = django_filters.MultipleChoiceFilter(choices=Environment.Name.choices)
    target = django_filters.CharFilter(field_name="target__name", max_length=100, label="Target connection (name)")

    class Meta:
        model = Environment
        fields = ["mission", "name", "target"]
