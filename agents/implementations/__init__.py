"""Agent implementations. Each module registers its kinds with ``agents.registry.register``; import it here."""

# Last: registers the kinds no module above implements yet (skips the ones already registered).
from agents.implementations import (
    noop,  # noqa: E402,F401
    planned,  # noqa: E402,F401
)
