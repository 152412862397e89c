"""PostgreSQL adapter (psycopg 3): read-only transactions and a server-side statement timeout.

A read is bounded on the server: it runs as ``SELECT * FROM (<query>) LIMIT limit + 1``, so a preview or a sample
of a large join reads a few rows instead of moving the whole result to the client. A LIMIT rather than a server-side
cursor, because PostgreSQL never plans a cursor's query on parallel workers: a full pass over a large table (a
profile's statistics, a period's totals) took about 1.8 times as long through one. A statement the wrapper cannot
hold (a trailing semicolon and comment, say) runs as written through a server-side cursor, so its errors name the
statement the user wrote. The default timeout is the session's own (set once when the connection
opens); another timeout is set for its query's transaction only. Introspection reads ``pg_catalog``, which is
faster than ``information_schema``'s views over it, with the same visibility rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlglot import exp

from agents.connectors.base import (
    Adapter,
    ColumnInfo,
    ConnectorError,
    QueryResult,
    QueryTimeout,
    Sample,
    default_timeout,
)
from agents.connectors.platform import same_as_platform

# The tables and views a session sees as information_schema.tables does ('BASE TABLE' is an ordinary or a
# partitioned table): in a schema of its search path, and only those the role has some privilege on.
LIST_TABLES_SQL = (
    "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ANY (current_schemas(false)) AND c.relkind IN ('r', 'p', 'v') "
    "AND (pg_catalog.pg_has_role(c.relowner, 'USAGE') "
    "OR pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') "
    "OR pg_catalog.has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')) "
    "ORDER BY c.relname"
)

# What a cursor can be declared for: a statement that starts (after comments and parentheses) with one of these.
_CURSOR_STATEMENT = re.compile(r"^(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*(?:select|with|values|table)\b", re.I | re.S)


class _UnwrappableStatement(Exception):
    """The statement is a read, but not one that parses inside ``SELECT * FROM (...)``."""


def _ms(timeout: float) -> int:
    return max(1, int(timeout * 1000))


class PostgreSQLAdapter(Adapter):
    engine = "postgresql"
    dialect = "postgres"
    # The statement timeout of the session (milliseconds) once it is open.
    _session_timeout_ms: int | None = None

    def _open(self):
        kwargs = {"connect_timeout": 10, "autocommit": False}
        if self.connection.secret:
            kwargs["password"] = self.connection.secret
        try:
            raw = psycopg.connect(self.connection.location, **kwargs)
        except psycopg.Error as error:
            raise ConnectorError(
                f"Connection {self.connection.name}: cannot reach PostgreSQL: {str(error).strip()}",
                field="location", code="unreachable",
            ) from None
        if same_as_platform(raw):
            raw.close()
            raise ConnectorError(
                f"Connection {self.connection.name} reaches the platform's own database, which is never a data "
                "connection.", field="location", code="platform_database",
            )
        # The default timeout (a page's, or the worker's while an agent runs) for the whole session, so that most
        # queries need no SET of their own (a session SET lasts only if its transaction commits).
        session_ms = _ms(default_timeout())
        try:
            raw.execute(f"SET statement_timeout = {session_ms}")
            raw.commit()
        except psycopg.Error as error:
            raw.close()
            raise ConnectorError(f"Connection {self.connection.name}: {str(error).strip()}",
                                 field="location", code="unreachable") from None
        self._session_timeout_ms = session_ms
        raw.read_only = True
        return raw

    def close(self) -> None:
        self._session_timeout_ms = None
        super().close()

    def list_tables(self) -> list[str]:
        with self.raw.cursor() as cursor:
            cursor.execute(LIST_TABLES_SQL)
            rows = cursor.fetchall()
        self.raw.rollback()
        return [row[0] for row in rows]

    def _columns(self, table: str) -> list[ColumnInfo]:
        # information_schema.columns' data_type, from pg_catalog: a domain shows its base type, an array ARRAY, an
        # enum or another type outside pg_catalog USER-DEFINED, and a built-in type its name without modifiers.
        with self.raw.cursor() as cursor:
            cursor.execute(
                "SELECT a.attname, CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN 'ARRAY' "
                "WHEN tn.nspname = 'pg_catalog' THEN pg_catalog.format_type(t.oid, NULL) "
                "ELSE 'USER-DEFINED' END, NOT (a.attnotnull OR (dt.typtype = 'd' AND dt.typnotnull)), a.attnum "
                "FROM pg_catalog.pg_attribute a "
                "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_catalog.pg_type dt ON dt.oid = a.atttypid "
                "JOIN pg_catalog.pg_type t ON t.oid = CASE WHEN dt.typtype = 'd' THEN dt.typbasetype ELSE dt.oid END "
                "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace "
                "WHERE c.relname = %s AND n.nspname = ANY (current_schemas(false)) "
                "AND c.relkind IN ('r', 'p', 'v', 'f') AND a.attnum > 0 AND NOT a.attisdropped "
                "AND (pg_catalog.pg_has_role(c.relowner, 'USAGE') "
                "OR pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES')) "
                "ORDER BY a.attnum",
                [table],
            )
            rows = cursor.fetchall()
        self.raw.rollback()
        return [ColumnInfo(name=name, declared_type=dtype.upper(), nullable=nullable, position=pos)
                for name, dtype, nullable, pos in rows]

    def unique_columns(self, table: str) -> set[str]:
        self.check_tables([table])
        # The table as a query names it (the search path decides); a valid unique index on one plain column.
        with self.raw.cursor() as cursor:
            cursor.execute(
                "SELECT a.attname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                "WHERE i.indrelid = pg_catalog.to_regclass(%s) AND i.indisunique AND i.indisvalid "
                "AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL",
                [self.quote(table)],
            )
            rows = cursor.fetchall()
        self.raw.rollback()
        return {name for (name,) in rows}

    def sample_of(self, table: str, rows: int, *, total: int) -> Sample:
        """PostgreSQL's TABLESAMPLE, repeatable: whole pages at random (SYSTEM, reads only those pages) on a large
        table, rows at random (BERNOULLI, reads every page) on a smaller one, where a few pages would make too coarse a
        sample. A view (which TABLESAMPLE cannot read) gets the first rows."""
        with self.raw.cursor() as cursor:
            cursor.execute(
                "SELECT table_type FROM information_schema.tables "
                "WHERE table_schema = ANY (current_schemas(false)) AND table_name = %s", [table])
            kinds = {row[0] for row in cursor.fetchall()}
        self.raw.rollback()
        if kinds != {"BASE TABLE"}:
            return super().sample_of(table, rows, total=total)
        percent = min(100.0, round(100.0 * rows / max(total, 1), 4))
        method = "SYSTEM" if total >= 100_000 else "BERNOULLI"
        how = "pages" if method == "SYSTEM" else "rows"
        return Sample(f"(SELECT * FROM {self.quote(table)} TABLESAMPLE {method} ({percent}) REPEATABLE (7)) "  # noqa: S608
                      "AS genesis_sample", f"PostgreSQL's TABLESAMPLE {method}: {percent}% of the {how} at random, "
                      "repeatable")

    def containment_sql(self, values: str, refs: Sequence[tuple[str, str]]) -> str:
        """The values and each key's orphans (``Adapter.containment_sql``) by outer joins to each key's distinct
        values."""
        # PostgreSQL runs a NOT EXISTS inside an aggregate as one index probe per value; outer joins to each key's
        # distinct values hash both sides instead (half the time at a million values). The DISTINCT keeps a key
        # that is not unique from counting a value twice.
        q = self.quote
        joins = " ".join(f"LEFT JOIN (SELECT DISTINCT {q(ref_key)} AS k FROM {q(ref_table)}) AS r{index} "  # noqa: S608
                         f"ON r{index}.k = x.v" for index, (ref_table, ref_key) in enumerate(refs))
        orphans = ", ".join(f"COUNT(*) - COUNT(r{index}.k)" for index in range(len(refs)))
        return f"SELECT COUNT(*), {orphans} FROM {values} {joins}"  # noqa: S608

    def lookup_literal(self, value: Any, family: str) -> str | None:
        """As ``Adapter.lookup_literal``, with a float compared with a column of numbers (or of a type not known)
        quoted. PostgreSQL reads a quoted literal as the compared column's own type, so that a ``real`` column's 1.1
        equals it; a bare 1.1 is ``numeric``, and ``real = numeric`` compares at double precision, where the two
        differ (in an IN list of one value: a longer list is resolved as ``real``). A number looked up in a boolean
        column is its truth value."""
        if isinstance(value, float) and family in {"numeric", "unknown"}:
            return exp.Literal.string(repr(value)).sql(dialect=self.dialect)
        if family == "boolean" and isinstance(value, int) and not isinstance(value, bool):
            # SQLite keeps a boolean as 1 or 0, which PostgreSQL refuses to compare with a boolean; no other number
            # can equal one.
            return {1: "TRUE", 0: "FALSE"}.get(value)
        return super().lookup_literal(value, family)

    def regex_match_sql(self, text: str, pattern: str) -> str:
        """``Adapter.regex_match_sql``: the pattern found in the text (POSIX ``~``)."""
        return f"{text} ~ {self.literal(pattern)}"

    def _execute(self, sql: str, *, limit: int, timeout: float) -> QueryResult:
        if not _CURSOR_STATEMENT.match(sql):
            # Any other statement (which the guard lets through only from the platform's own code) runs as it is,
            # and the read-only transaction refuses it if it writes.
            return self._fetch(sql, limit=limit, timeout=timeout)
        bounded = f"SELECT * FROM (\n{sql.rstrip().rstrip(';')}\n) AS genesis_query LIMIT {limit + 1}"  # noqa: S608
        try:
            return self._fetch(bounded, limit=limit, timeout=timeout, wrapped=True)
        except _UnwrappableStatement:
            return self._fetch(sql, limit=limit, timeout=timeout, cursor="genesis_query")

    def _fetch(self, sql: str, *, limit: int, timeout: float, cursor: str | None = None,
               wrapped: bool = False) -> QueryResult:
        """The first ``limit`` + 1 rows of ``sql`` in a transaction of its own, on a server-side cursor when one is
        named. ``wrapped``: a syntax error is the wrapper's (_UnwrappableStatement), not the statement's."""
        raw = self.raw
        handle = raw.cursor(name=cursor) if cursor else raw.cursor()
        try:
            if _ms(timeout) != self._session_timeout_ms:
                raw.execute(f"SET LOCAL statement_timeout = {_ms(timeout)}")
            handle.execute(sql)
            rows = handle.fetchmany(limit + 1)
            columns = [d.name for d in handle.description or []]
        except pg_errors.QueryCanceled:
            raw.rollback()
            raise QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped (an agent's "
                                   "queries may run GENESIS_AGENT_QUERY_TIMEOUT_SECONDS).") from None
        except psycopg.Error as error:
            raw.rollback()
            if wrapped and isinstance(error, pg_errors.SyntaxError):
                raise _UnwrappableStatement from None
            raise ConnectorError(f"The query failed on {self.connection.name}: {str(error).strip()}",
                                 field="sql") from None
        finally:
            # After the rollback a server-side cursor is gone with its transaction: closing it sends nothing more.
            if not raw.closed and raw.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                raw.rollback()
            handle.close()
        return QueryResult(columns=columns, rows=rows[:limit], truncated=len(rows) > limit)
