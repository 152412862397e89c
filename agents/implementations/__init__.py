"""Agent implementations. Each module registers its kinds with ``agents.registry.register``; import it here."""

# Last: registers the kinds no module above implements yet (skips the ones already registered).
from agents.implementations import (  # noqa: E402,F401  (issue 6: initialize, profiling, field mapping)
    backfill,  # issue 7: dbt, quality, validation, backfill, schedule, handoff
    data_quality,
    dbt_build,
    field_mapping,
    handoff,
    initialize,
    noop,  # noqa: E402,F401
    planned,  # noqa: E402,F401
    profiling,
    schedule,
    validation,
)
