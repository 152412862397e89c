"""Filters for connections and agents, shared by pages and the API."""

from __future__ import annotations

import django_filters

from agents.choices import Engine, MappingStatus, Purpose
from agents.models import Agent, Connection, Environment, MappingSpecVersion
from genesis.filters import IdFilter, StrictBooleanFilter


class ConnectionFilterSet(django_filters.FilterSet):
    engine = django_filters.ChoiceFilter(choices=Engine.choices)
    purpose = django_filters.ChoiceFilter(choices=Purpose.choices)
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=100)

    class Meta:
        model = Connection
        fields = ["engine", "purpose", "name"]


class AgentFilterSet(django_filters.FilterSet):
    kind = django_filters.CharFilter(max_length=100)
    enabled = StrictBooleanFilter()
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=100)

    class Meta:
        model = Agent
        fields = ["kind", "enabled", "name"]


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
    target = IdFilter(field_name="target_id", label="Target connection id")

    class Meta:
        model = Environment
        fields = ["mission", "name", "target"]
