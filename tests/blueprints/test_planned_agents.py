"""The agent kinds the shipped blueprints name are registered; the ones nobody implements yet say so."""

import pytest

from agents import registry
from agents.base import AgentContext, Failed
from agents.implementations.planned import PLANNED, PlannedAgent, register_planned

SHIPPED_KINDS = ["backfill", "data_quality", "dbt_build", "field_mapping", "handoff", "initialize", "noop",
                 "profiling", "schedule", "validation"]


def test_every_kind_the_shipped_blueprints_use_is_registered_with_a_name_and_description():
    assert set(SHIPPED_KINDS) <= set(registry.kinds())
    for kind in SHIPPED_KINDS:
        cls = registry.get(kind)
        assert cls.kind == kind and cls.description


def test_a_planned_kind_fails_for_good_saying_it_is_not_implemented(monkeypatch):
    # Whatever other modules implement by now, a kind nobody implements gets the planned placeholder.
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry._REGISTRY.pop("handoff", None)
    assert register_planned() == ["handoff"]
    cls = registry.get("handoff")
    assert issubclass(cls, PlannedAgent) and (cls.name, cls.description) == PLANNED["handoff"]
    context = AgentContext(mission=None, task=None, run=None, agent=None, config={}, connections={})
    assert cls().run(context) == Failed(error="handoff is not implemented yet", retryable=False)


def test_a_real_implementation_is_never_shadowed(monkeypatch):
    from agents.base import BaseAgent

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry._REGISTRY.pop("schedule", None)

    class RealScheduler(BaseAgent):
        kind = "schedule"
        description = "The real one."

    registry.register(RealScheduler)
    added = register_planned()
    assert "schedule" not in added and registry.get("schedule") is RealScheduler
    assert register_planned() == []  # idempotent


@pytest.mark.django_db
def test_launch_creates_one_agent_per_kind_named_after_it(connections, lead):
    from agents.models import Agent
    from blueprints.services import blueprint_launch
    from tests.blueprints.conftest import load_shipped

    blueprint_launch(version=load_shipped("healthcare-data-pipeline"), name="HC", objective="", owner=lead)
    kinds = dict(Agent.objects.values_list("kind", "name"))
    assert kinds == {
        "initialize": "InitializeAgent", "profiling": "ProfilingAgent", "field_mapping": "FieldMappingAgent",
        "dbt_build": "DbtBuildAgent", "data_quality": "DataQualityAgent", "validation": "ValidationAgent",
        "backfill": "BackfillAgent", "schedule": "ScheduleAgent", "handoff": "HandoffAgent",
    }
