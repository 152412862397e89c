"""What every workflow verb asks first: may this actor do it?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genesis.exceptions import DomainError
from history.services import Actor


def require(allowed: Callable[[Any, Any], bool], actor: Actor, obj: Any, *, doing: str, who_may: str) -> None:
    """Refuse (``forbidden``, a 403 over the API) unless ``actor`` may act on ``obj``. No actor is the system (the
    engine, a command), which may."""
    if actor is None:
        return
    if not getattr(actor, "is_authenticated", False) or not allowed(actor, obj):
        raise DomainError(f"Only {who_may} can {doing}.", field="actor", code="forbidden")
