"""Every agent kind the shipped blueprints name is registered, and a launch makes one agent per kind."""

import pytest

from agents import registry

SHIPPED_KINDS = ["backfill", "data_quality", "dbt_build", "field_mapping", "handoff", "initialize", "noop",
                 "profiling", "schedule", "validation"]


def test_every_kind_the_shipped_blueprints_use_is_registered_with_a_name_and_description():
    assert set(SHIPPED_KINDS) <= set(registry.kinds())
    for kind in SHIPPED_KINDS:
        cls = registry.get(kind)
        assert cls.kind == kind and cls.description


@pytest.mark.django_db
def test_launch_creates_one_agent_per_kind_named_after_it(connections, healthcare_spec, lead):
    from agents.models import Agent
    from blueprints.services import blueprint_launch
    from tests.blueprints.conftest import load_shipped

    blueprint_launch(version=load_shipped("build-marts"), name="HC", objective="", owner=lead, spec=healthcare_spec)
    kinds = dict(Agent.objects.values_list("kind", "name"))
    assert kinds == {
        "initialize": "InitializeAgent", "profiling": "ProfilingAgent", "field_mapping": "FieldMappingAgent",
        "dbt_build": "DbtBuildAgent", "data_quality": "DataQualityAgent", "validation": "ValidationAgent",
        "backfill": "BackfillAgent", "schedule": "ScheduleAgent", "handoff": "HandoffAgent",
    }
