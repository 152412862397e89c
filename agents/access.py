"""Who may run SQL on which connection: each connection's access list.

Running SQL is a permission tied to connections. A mission's agents, checks and previews open a connection only
when the connection is granted to that mission (``Connection.missions``): they open it through ``adapter_for`` here,
which asks ``require_use`` before it opens anything, so no path that runs SQL for a mission skips the question. A
connection is granted to a mission when the mission is launched or given a spec file or an environment that names
it, and only if whoever does so may grant it (``may_grant``): staff, a member of one of the connection's groups, or
the system itself (no actor: ``load_demo``, migrations). Staff can also edit the list in the admin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from agents.connectors import ADAPTERS, Adapter, ConnectorError
from agents.connectors.base import RefusalHook
from agents.models import Agent, Connection


class ConnectionNotAllowed(ConnectorError):
    """A mission (or a person) asked for a connection its access list does not give them."""

    def __init__(self, message: str, *, field: str | None = "connection"):
        super().__init__(message, field=field, code="connection_not_allowed")


def may_use(connection: Connection, mission: Any) -> bool:
    """Whether ``mission``'s agents, checks and previews may run SQL on ``connection`` (asked afresh each time: a
    grant or a revocation in the admin counts from the next query on)."""
    if mission is None or connection.pk is None or mission.pk is None:
        return False
    return Connection.missions.through.objects.filter(connection_id=connection.pk, mission_id=mission.pk).exists()


def require_use(connection: Connection, mission: Any) -> None:
    if not may_use(connection, mission):
        name = getattr(mission, "name", None) or "this mission"
        raise ConnectionNotAllowed(
            f"Mission “{name}” may not use connection {connection.name}: it is not on the connection's access "
            "list. Staff (or a member of one of the connection's groups) can grant it."
        )


def may_grant(actor: Any, connection: Connection) -> bool:
    """Whether ``actor`` may give ``connection`` to a mission: the system (None) and staff always; a person in one of
    the connection's groups; never an agent or an anonymous user."""
    if actor is None:
        return True
    if isinstance(actor, Agent) or not isinstance(actor, AbstractBaseUser):
        return False
    if not (actor.is_authenticated and actor.is_active):
        return False
    if actor.is_staff or actor.is_superuser:
        return True
    return connection.groups.filter(pk__in=actor.groups.values("pk")).exists()


def connections_named(names: Iterable[str], *, field: str = "connection") -> list[Connection]:
    """The connections with these names, in order; refuses a name no connection has, naming ``field``."""
    wanted = list(dict.fromkeys(n for n in names if n))
    found = {c.name: c for c in Connection.objects.filter(name__in=wanted)}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ConnectionNotAllowed(f"No connection is named {', '.join(map(repr, missing))}.", field=field)
    return [found[name] for name in wanted]


def require_grant(actor: Any, connections: Iterable[Connection], *, field: str = "connection") -> None:
    refused = [c.name for c in connections if not may_grant(actor, c)]
    if refused:
        who = getattr(actor, "get_username", lambda: str(actor))()
        raise ConnectionNotAllowed(
            f"{who} may not give connection(s) {', '.join(refused)} to a mission: only staff or members of the "
            "connection's groups may.", field=field,
        )


def adapter_for(connection: Connection, *, mission: Any, allowed_tables: Iterable[str] | None = None,
                on_refused: RefusalHook | None = None) -> Adapter:
    """The guarded adapter for ``connection``, on behalf of ``mission``: refused (``ConnectionNotAllowed``) unless the
    connection is granted to the mission. ``mission=None`` is for staff-only tools that act for no mission (testing a
    connection from the admin); every path that runs SQL for a mission passes it."""
    if mission is not None:
        require_use(connection, mission)
    try:
        cls = ADAPTERS[connection.engine]
    except KeyError:
        raise ConnectorError(
            f"Connection {connection.name}: engine {connection.engine!r} has no adapter yet "
            f"(available: {', '.join(sorted(ADAPTERS))}).", field="engine", code="unsupported_engine",
        ) from None
    return cls(connection, allowed_tables=allowed_tables, on_refused=on_refused)


# Keys of check params and task config that name connections.
CONNECTION_KEYS = frozenset({"connection", "equals_connection", "source_connection", "target_connection",
                             "validation_connection"})


def connection_names_in(value: Any, *, depth: int = 0) -> set[str]:
    """Every connection name that criteria or a task config (JSON-shaped) names under a connection key, or in a
    ``connections`` list."""
    names: set[str] = set()
    if depth > 50:
        return names
    if isinstance(value, dict):
        for key, item in value.items():
            if key in CONNECTION_KEYS and isinstance(item, str):
                names.add(item)
            elif key == "connections" and isinstance(item, list):
                names.update(n for n in item if isinstance(n, str))
            else:
                names |= connection_names_in(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            names |= connection_names_in(item, depth=depth + 1)
    return names
