"""Missions an API caller may see, as one semi-join (no DISTINCT: a membership is unique per mission and user),
so counting and paging 1,000 missions stays cheap."""

from __future__ import annotations

from django.db.models import QuerySet

from missions.models import Membership, Mission


def missions_for_api(user) -> QuerySet[Mission]:
    queryset = Mission.objects.select_related("owner")
    if not user.is_authenticated:
        return queryset.none()
    if user.is_staff:
        return queryset
    return queryset.filter(pk__in=Membership.objects.filter(user=user).values("mission_id"))
