"""Filters for connections and agents, shared by pages and the API."""

from __future__ import annotations

import django_filters

from agents.choices import Engine, Purpose
from agents.models import Agent, Connection
from genesis.filters import StrictBooleanFilter


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
