"""Building a mission's approved dbt project in one of its environments (dev, test, stage, prod)."""

from __future__ import annotations

from history.services import Actor
from pipeline.dbt.services import environment_build_request
from pipeline.models import Environment


def environment_build(*, environment: Environment, actor: Actor) -> None:
    """Ask for a background build (recorded; its outcome follows in the mission's history). Who may build where
    (prod: the Mission Owner; the others: a Mission Owner or Task Owner) is checked by the service."""
    environment_build_request(environment=environment, actor=actor)
