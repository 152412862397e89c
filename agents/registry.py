"""The registry of agent kinds. The engine and the blueprint validator look kinds up here."""

from __future__ import annotations

from agents.base import BaseAgent

_REGISTRY: dict[str, type[BaseAgent]] = {}


class UnknownAgentKind(LookupError):
    pass


def register(cls: type[BaseAgent]) -> type[BaseAgent]:
    """Class decorator: make an agent implementation available under its ``kind``."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    existing = _REGISTRY.get(cls.kind)
    if existing is not None and existing is not cls:
        raise ValueError(f"agent kind {cls.kind!r} is registered twice ({existing.__name__}, {cls.__name__})")
    _REGISTRY[cls.kind] = cls
    return cls


def get(kind: str) -> type[BaseAgent]:
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownAgentKind(f"Unknown agent kind {kind!r}; known kinds: {known}.") from None


def kinds() -> dict[str, type[BaseAgent]]:
    return dict(sorted(_REGISTRY.items()))


def is_registered(kind: str) -> bool:
    return kind in _REGISTRY
