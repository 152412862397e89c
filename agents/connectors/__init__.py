"""One adapter per connection engine (``ADAPTERS``). The adapters know nothing of missions or models: the guarded
opener that checks a mission's access list first is ``agents.access.adapter_for``."""

from __future__ import annotations

from agents.connectors.base import (
    Adapter,
    ColumnInfo,
    ConnectorError,
    QueryRefused,
    QueryResult,
    QueryTimeout,
    TableInfo,
)
from agents.connectors.duckdb import DuckDBAdapter
from agents.connectors.postgresql import PostgreSQLAdapter
from agents.connectors.sqlite import SQLiteAdapter

ADAPTERS: dict[str, type[Adapter]] = {"sqlite": SQLiteAdapter, "postgresql": PostgreSQLAdapter,
                                      "duckdb": DuckDBAdapter}

__all__ = [
    "ADAPTERS", "Adapter", "ColumnInfo", "ConnectorError", "QueryRefused", "QueryResult", "QueryTimeout",
    "TableInfo", "dialect_for",
]


def dialect_for(engine: str) -> str:
    return ADAPTERS[engine].dialect if engine in ADAPTERS else engine
