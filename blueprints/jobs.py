"""Background jobs of the blueprints app, named by dotted path in queue messages."""

from __future__ import annotations

from blueprints.explain import phase_explain as _phase_explain


def phase_explain(phase_id: int) -> str:
    """Explain a phase's failed exit checks (``blueprints.explain``)."""
    return _phase_explain(phase_id)
