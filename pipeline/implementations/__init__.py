"""The data-pipeline agents. Each module registers its kinds with ``agents.registry.register``; import it here."""

from pipeline.implementations import (  # noqa: F401
    backfill,
    data_quality,
    dbt_build,
    field_mapping,
    handoff,
    initialize,
    profiling,
    schedule,
    validation,
)
