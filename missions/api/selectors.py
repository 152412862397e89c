"""Missions an API caller may see (the one visibility rule, ``missions.models.restrict_to_visible``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from missions.models import Mission

if TYPE_CHECKING:
    from history.services import Viewer


def missions_for_api(user: Viewer) -> QuerySet[Mission]:
    return Mission.objects.visible_to(user).select_related("owner")
