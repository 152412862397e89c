"""Background jobs of the agents app (django-q2): thin functions that take ids and call the services."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from missions.models import Mission
from pipeline.dbt.services import environment_build as build
from pipeline.models import Environment
from pipeline.quality.refresh import refresh_run


def refresh_mission(mission_id: int) -> dict:
    """The scheduled refresh: rebuild and re-check the mission's targets, alerting its channels on failure."""
    mission = Mission.objects.filter(pk=mission_id).first()
    if mission is None:
        return {"ok": False, "error": f"Mission {mission_id} no longer exists."}
    return refresh_run(mission=mission, label="scheduled refresh").as_dict()


def environment_build(environment_id: int, actor_id: int | None = None) -> dict:
    environment = Environment.objects.select_related("mission", "target").filter(pk=environment_id).first()
    if environment is None:
        return {"ok": False, "error": f"Environment {environment_id} no longer exists."}
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    return build(environment=environment, actor=actor).as_dict()
