"""One adapter per connection engine; ``adapter_for(connection)`` picks it."""

from __future__ import annotations

from collections.abc import Iterable

from agents.connectors.base import (
    Adapter,
    ColumnInfo,
    ConnectorError,
    QueryRefused,
    QueryResult,
    QueryTimeout,
    RefusalHook,
    TableInfo,
)
from agents.connectors.duckdb import DuckDBAdapter
from agents.connectors.postgresql import PostgreSQLAdapter
from agents.connectors.sqlite import SQLiteAdapter

ADAPTERS: dict[str, type[Adapter]] = {"sqlite": SQLiteAdapter, "postgresql": PostgreSQLAdapter,
                                      "duckdb": DuckDBAdapter}

__all__ = [
    "ADAPTERS", "Adapter", "ColumnInfo", "ConnectorError", "QueryRefused", "QueryResult", "QueryTimeout",
    "TableInfo", "adapter_for", "dialect_for",
]


def adapter_for(connection, *, mission, allowed_tables: Iterable[str] | None = None,
                on_refused: RefusalHook | None = None) -> Adapter:
    """The guarded adapter for ``connection``, on behalf of ``mission``: refused (``ConnectionNotAllowed``) unless the
    connection is granted to the mission. ``mission=None`` is for staff-only tools that act for no mission (testing a
    connection from the admin); every path that runs SQL for a mission passes it."""
    if mission is not None:
        from agents.access import require_use

        require_use(connection, mission)
    try:
        cls = ADAPTERS[connection.engine]
    except KeyError:
        raise ConnectorError(
            f"Connection {connection.name}: engine {connection.engine!r} has no adapter yet "
            f"(available: {', '.join(sorted(ADAPTERS))}).", field="engine", code="unsupported_engine",
        ) from None
    return cls(connection, allowed_tables=allowed_tables, on_refused=on_refused)


def dialect_for(engine: str) -> str:
    return ADAPTERS[engine].dialect if engine in ADAPTERS else engine
