"""Read-only access to a data connection for the checks (``sql_assert``, ``table_exists``, ``row_count``).

All database access of the checks goes through ``open_readonly``; the helpers below only use the DB-API
cursor it returns, so a richer adapter layer can replace this one function later.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agents.choices import Engine
from agents.models import Connection

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
STATEMENT_TIMEOUT_MS = 30_000


class ConnectionProblem(Exception):
    """The connection could not be opened or the query could not run; the message says why."""


def connection_named(name: str) -> Connection:
    connection = Connection.objects.filter(name=name).first()
    if connection is None:
        raise ConnectionProblem(f"No connection is named {name!r}.")
    return connection


@contextmanager
def open_readonly(connection: Connection) -> Iterator[Any]:
    """A DB-API connection that cannot write: SQLite opened with ``mode=ro``, PostgreSQL in a read-only
    session with a statement timeout. Closed on exit."""
    if connection.engine == Engine.SQLITE:
        path = connection.location.removeprefix("sqlite:///").removeprefix("file:")
        if not Path(path).is_file():
            raise ConnectionProblem(f"Connection {connection.name}: no SQLite file at {path}.")
        try:
            db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error as error:
            raise ConnectionProblem(f"Connection {connection.name}: {error}") from None
        try:
            yield db
        finally:
            db.close()
    elif connection.engine == Engine.POSTGRESQL:
        import psycopg

        try:
            db = psycopg.connect(
                connection.location, password=connection.secret or None, connect_timeout=10,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c default_transaction_read_only=on",
            )
        except psycopg.Error as error:
            raise ConnectionProblem(f"Connection {connection.name}: {error}".strip()) from None
        try:
            db.read_only = True
            yield db
        finally:
            db.close()
    else:
        raise ConnectionProblem(
            f"Connection {connection.name}: checks cannot read {connection.get_engine_display()} connections yet."
        )


def _driver_errors() -> tuple[type[Exception], ...]:
    import psycopg

    return (sqlite3.Error, psycopg.Error)


def query_value(connection: Connection, sql: str) -> Any:
    """The first column of the first row of ``sql``; refuses a query that returns no row."""
    with open_readonly(connection) as db:
        try:
            cursor = db.cursor()
            cursor.execute(sql)
            row = cursor.fetchone()
        except _driver_errors() as error:
            raise ConnectionProblem(f"The query failed on {connection.name}: {str(error).strip()}") from None
    if row is None:
        raise ConnectionProblem(f"The query returned no row on {connection.name}.")
    return row[0]


def find_tables(connection: Connection, names: list[str]) -> dict[str, str | None]:
    """For each requested table (``name`` or ``schema.name``, any case), its real name, or None if missing."""
    found: dict[str, str | None] = {}
    with open_readonly(connection) as db:
        cursor = db.cursor()
        try:
            for name in names:
                schema, _, table = name.rpartition(".")
                if connection.engine == Engine.SQLITE:
                    cursor.execute(
                        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND lower(name) = lower(?)",
                        (table,),
                    )
                    row = cursor.fetchone()
                    found[name] = row[0] if row else None
                else:
                    cursor.execute(
                        "SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE lower(table_name) = lower(%s) AND ("
                        "  (lower(table_schema) = lower(%s)) OR (%s = '' AND "
                        "   table_schema = ANY(current_schemas(false)))) "
                        "ORDER BY array_position(current_schemas(false), table_schema::name) NULLS LAST",
                        (table, schema, schema),
                    )
                    row = cursor.fetchone()
                    found[name] = f"{row[0]}.{row[1]}" if row else None
        except _driver_errors() as error:
            raise ConnectionProblem(f"Listing tables failed on {connection.name}: {str(error).strip()}") from None
    return found


def _quoted(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def count_rows(connection: Connection, table: str) -> int:
    """Rows in ``table`` (matched case-insensitively); refuses a table that does not exist."""
    if not TABLE_NAME.match(table):
        raise ConnectionProblem(f"{table!r} is not a table name.")
    real = find_tables(connection, [table])[table]
    if real is None:
        raise ConnectionProblem(f"Table {table} does not exist on {connection.name}.")
    return int(query_value(connection, f"SELECT COUNT(*) FROM {_quoted(real)}"))  # noqa: S608 - quoted name
