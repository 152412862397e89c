"""Read-only access to a data connection for the checks (``sql_assert``, ``table_exists``, ``row_count``).

Checks run SQL exactly as agents do: through ``adapter_for(connection, mission=...)``, so a check reads only
connections granted to its mission (``agents.access``) and its query passes the adapters' one guard (a single
read, no file, catalog or extension functions, no ATTACH or PRAGMA).
"""

from __future__ import annotations

import re
from typing import Any

from agents.access import adapter_for, require_use
from agents.choices import Engine
from agents.connectors import ConnectorError
from agents.models import Connection

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
STATEMENT_TIMEOUT_SECONDS = 30.0
# What a check's evidence keeps of a value it read: enough to judge the check, never a channel to export data.
EVIDENCE_TEXT_CHARS = 200


class ConnectionProblem(Exception):
    """The connection could not be opened or the query could not run; the message says why."""


def connection_named(name: str, *, mission) -> Connection:
    """The connection called ``name``, if the mission may use it."""
    connection = Connection.objects.filter(name=name).first()
    if connection is None:
        raise ConnectionProblem(f"No connection is named {name!r}.")
    require_use(connection, mission)
    return connection


def query_value(connection: Connection, sql: str, *, mission) -> Any:
    """The first column of the first row of ``sql`` (one guarded read); refuses a query that returns no row. A refused
    or failed query raises the adapters' ``ConnectorError`` (its ``code`` says which)."""
    with adapter_for(connection, mission=mission) as adapter:
        rows = adapter.query(sql, limit=1, timeout=STATEMENT_TIMEOUT_SECONDS).rows
    if not rows:
        raise ConnectionProblem(f"The query returned no row on {connection.name}.")
    return rows[0][0]


def _lookup(adapter, name: str) -> str | None:
    schema, _, table = name.rpartition(".")
    cursor = adapter.raw.cursor()
    try:
        if adapter.engine == Engine.SQLITE:
            if schema:
                return None  # an attached or temp schema is not a table of this connection
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND lower(name) = lower(?)", (table,)
            )
            row = cursor.fetchone()
            return row[0] if row else None
        if adapter.engine == Engine.DUCKDB:
            # The connection's own database only (an attached one is not a table of this connection).
            cursor.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = "
                "current_database() AND lower(table_name) = lower(?) AND ((? = '' AND table_schema = "
                "current_schema()) OR lower(table_schema) = lower(?))", [table, schema, schema],
            )
            row = cursor.fetchone()
            if row is None:
                return None
            return f"{row[0]}.{row[1]}" if schema else row[1]
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE lower(table_name) = lower(%s) AND ("
            "  (lower(table_schema) = lower(%s)) OR (%s = '' AND "
            "   table_schema = ANY(current_schemas(false)))) "
            "ORDER BY array_position(current_schemas(false), table_schema::name) NULLS LAST",
            (table, schema, schema),
        )
        row = cursor.fetchone()
        return f"{row[0]}.{row[1]}" if row else None
    finally:
        cursor.close()
        if adapter.engine == Engine.POSTGRESQL:
            adapter.raw.rollback()


def find_tables(connection: Connection, names: list[str], *, mission) -> dict[str, str | None]:
    """For each requested table (``name`` or ``schema.name``, any case), its real name, or None if missing."""
    try:
        with adapter_for(connection, mission=mission) as adapter:
            return {name: _lookup(adapter, name) for name in names}
    except ConnectorError:
        raise
    except Exception as error:  # a driver error while listing: the check fails saying so
        raise ConnectionProblem(f"Listing tables failed on {connection.name}: {str(error).strip()}") from None


def count_rows(connection: Connection, table: str, *, mission) -> int:
    """Rows in ``table`` (matched case-insensitively); refuses a table that does not exist."""
    if not TABLE_NAME.match(table):
        raise ConnectionProblem(f"{table!r} is not a table name.")
    with adapter_for(connection, mission=mission) as adapter:
        real = _lookup(adapter, table)
        if real is None:
            raise ConnectionProblem(f"Table {table} does not exist on {connection.name}.")
        quoted = ".".join(adapter.quote(part) for part in real.split("."))
        result = adapter.run_internal(f"SELECT COUNT(*) FROM {quoted}",  # noqa: S608 - quoted name
                                      timeout=STATEMENT_TIMEOUT_SECONDS)
        return int(result.rows[0][0])


def evidence_value(value: Any) -> tuple[Any, dict[str, Any]]:
    """A value as a check's evidence shows it: text longer than ``EVIDENCE_TEXT_CHARS`` is cut and its length
    counted, so evidence can judge a check but never carry a table out."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value)
        return f"<{len(value)} bytes>", {"value_bytes": len(value), "value_truncated": True}
    if isinstance(value, bool | int | float) or value is None:
        return value, {}
    text = str(value)
    if len(text) <= EVIDENCE_TEXT_CHARS:
        return text if not isinstance(value, str) else value, {}
    return text[:EVIDENCE_TEXT_CHARS] + "…", {"value_chars": len(text), "value_truncated": True}
