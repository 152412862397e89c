"""Agent kinds the shipped blueprints name but that have no implementation yet.

Each is registered with its real name and description so blueprints validate and missions launch; its
``run`` fails for good (not retried) saying the kind is not implemented. A module that registers the real
implementation of a kind wins: ``register_planned`` runs once every implementation module is imported (from
``BlueprintsConfig.ready``, after the agents app is ready; import order inside this package does not matter)
and skips every kind already registered.
"""

from __future__ import annotations

from agents import registry
from agents.base import AgentContext, BaseAgent, Failed

PLANNED: dict[str, tuple[str, str]] = {
    "initialize": ("InitializeAgent", "Sets up the mission's tooling: a dbt project, profiles, connections and "
                                      "the agents the later steps need."),
    "profiling": ("ProfilingAgent", "Inventories the source tables: columns, types, null rates, distinct "
                                    "counts and sample values."),
    "field_mapping": ("FieldMappingAgent", "Maps source fields onto a target spec and writes a mapping spec "
                                           "with transformations and open questions."),
    "dbt_build": ("DbtBuildAgent", "Writes the dbt models for approved mapping specs and builds them."),
    "data_quality": ("DataQualityAgent", "Adds dbt tests (not null, unique, relationships, accepted values) "
                                         "and runs them."),
    "validation": ("ValidationAgent", "Compares the built models with the validation connection: counts, "
                                      "sums and key reconciliation."),
    "backfill": ("BackfillAgent", "Loads historical data into the models and verifies row counts per period."),
    "schedule": ("ScheduleAgent", "Schedules the refresh of the models and wires alerts on failure."),
    "handoff": ("HandoffAgent", "Collects the mission's artifacts and writes the handoff notes."),
}


class PlannedAgent(BaseAgent):
    """An agent kind that is declared but not built yet: every run fails, not retryable."""

    name = ""

    def run(self, context: AgentContext) -> Failed:
        return Failed(error=f"{self.kind} is not implemented yet", retryable=False)


def register_planned() -> list[str]:
    """Register a placeholder for every planned kind nothing else implements; the kinds it registered."""
    added = []
    for kind, (name, description) in PLANNED.items():
        if not registry.is_registered(kind):
            registry.register(type(name, (PlannedAgent,), {
                "kind": kind, "name": name, "description": description, "__module__": __name__,
                "__doc__": description,
            }))
            added.append(kind)
    return added
