"""Filters for missions, shared by the missions page and the API."""

from __future__ import annotations

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Q

from missions.choices import MissionMode, MissionStatus
from missions.models import Mission


class MissionFilterSet(django_filters.FilterSet):
    """Search by name or objective, and filter by status, mode and owner."""

    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.MultipleChoiceFilter(choices=MissionStatus.choices, label="Status")
    mode = django_filters.ChoiceFilter(choices=MissionMode.choices, label="Mode", empty_label="Any mode")
    owner = django_filters.ModelChoiceFilter(
        queryset=get_user_model().objects.all(), to_field_name="username", label="Owner",
        empty_label="Any owner",
    )

    class Meta:
        model = Mission
        fields = ["q", "status", "mode", "owner"]

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(objective__icontains=value))
