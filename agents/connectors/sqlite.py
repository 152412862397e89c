"""SQLite adapter: the database file is opened read-only; a progress handler enforces the timeout."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from agents.connectors.base import (
    DENIED_FUNCTION_PREFIXES,
    DENIED_FUNCTIONS,
    Adapter,
    ColumnInfo,
    ConnectorError,
    QueryResult,
    QueryTimeout,
    Sample,
    default_timeout,
    is_nan,
)

# What a statement on a source may do, asked by SQLite itself of every statement it prepares (``set_authorizer``):
# read tables and call harmless functions. ATTACH, DETACH, writes, schema changes, transactions and every pragma but
# the adapter's own introspection (``table_info``, ``index_list``, ``index_info``: they read the schema only) are
# denied before they run, whatever the SQL guard above made of the text.
_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
_PRAGMAS = {"table_info", "table_xinfo", "index_list", "index_info"}


def sqlite_path(location: str) -> Path:
    """The database file a SQLite location names: a path, optionally prefixed ``sqlite:///`` or ``file:``, without
    its ``?`` URI parameters."""
    for prefix in ("sqlite:///", "sqlite://", "file:"):
        location = location.removeprefix(prefix)
    return Path(location.split("?", 1)[0])


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    if action in _READS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        name = (arg2 or "").lower()
        if name in DENIED_FUNCTIONS or name.startswith(DENIED_FUNCTION_PREFIXES):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


class SQLiteAdapter(Adapter):
    engine = "sqlite"
    dialect = "sqlite"
    values_typed_once = False

    @property
    def path(self) -> Path | None:
        """The database file, resolved, so that two locations that spell one file differently (relative, with a
        ``sqlite:///`` or ``file:`` prefix, with URI parameters) compare equal; None when the location is empty."""
        return sqlite_path(self.connection.location).resolve() if self.connection.location else None

    def literal(self, value: Any) -> str:
        """As ``Adapter.literal``, keeping each value's storage class, which decides how SQLite compares it with a
        column's values (numbers before text before blobs): whole numbers and reals bare, text quoted, blobs as
        ``X'..'``."""
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, float):
            if math.isnan(value):
                return "NULL"  # SQLite stores a NaN as NULL
            if math.isinf(value):
                return "9e999" if value > 0 else "-9e999"
            return repr(value)
        return super().literal(value)

    def non_finite_literal(self, value: float | Decimal, family: str) -> str | None:
        """As ``Adapter.non_finite_literal``: an infinity compared with anything but text is SQLite's (a REAL holds
        one); SQLite stores a NaN as NULL, so no row holds one."""
        if family == "text":
            return super().non_finite_literal(value, family)
        if is_nan(value):
            return None
        return "9e999" if value > 0 else "-9e999"

    def _bytes_literal(self, data: bytes) -> str:
        return f"X'{data.hex()}'"

    def _open(self):
        # Checked, and named in the messages, as the location writes it (an empty one writes ".", no file); only a
        # file found there is resolved (as ``path`` resolves it) and opened: resolving a symlink loop would raise.
        written = sqlite_path(self.connection.location)
        if not written.is_file():
            raise ConnectorError(
                f"Connection {self.connection.name}: the SQLite file {written} does not exist.", field="location",
                code="unreachable",
            )
        try:
            raw = sqlite3.connect(f"{written.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            raw.execute("PRAGMA query_only = ON")
            raw.execute("SELECT count(*) FROM sqlite_master").fetchone()
            raw.set_authorizer(_authorize)
        except sqlite3.DatabaseError as error:
            raise ConnectorError(f"Connection {self.connection.name}: cannot open {written}: {error}",
                                 field="location", code="unreachable") from None
        return raw

    @contextmanager
    def attached(self, other: SQLiteAdapter, alias: str) -> Iterator[None]:
        """``other``'s database file attached to this session, read-only, as ``alias`` for the block, so that one
        statement of the platform's (``run_internal``) reads both files: a reference check's anti-join. The session's
        authorizer refuses ATTACH and DETACH to every query; it is lifted only here, for these two statements."""
        if not alias.isidentifier():
            raise ConnectorError(f"{alias!r} is not a name a database can be attached under.", field="alias")
        if other.path is None:
            raise ConnectorError(f"Connection {other.connection.name} names no SQLite file to attach.",
                                 field="location")
        source = f"{other.path.as_uri()}?mode=ro"
        raw = self.raw
        raw.set_authorizer(None)
        try:
            raw.execute(f"ATTACH DATABASE ? AS {alias}", (source,))
        except sqlite3.DatabaseError as error:
            raise self._failure(error) from None
        finally:
            raw.set_authorizer(_authorize)
        try:
            yield
        finally:
            raw.set_authorizer(None)
            try:
                raw.execute(f"DETACH DATABASE {alias}")
            finally:
                raw.set_authorizer(_authorize)

    def list_tables(self) -> list[str]:
        rows = self.raw.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        ).fetchall()
        return [row[0] for row in rows]

    def _columns(self, table: str) -> list[ColumnInfo]:
        rows = self.raw.execute(f"PRAGMA table_info({self.quote(table)})").fetchall()
        return [
            ColumnInfo(name=name, declared_type=(declared or "").upper(), nullable=not notnull and not pk,
                       position=cid + 1)
            for cid, name, declared, notnull, _default, pk in rows
        ]

    def unique_columns(self, table: str) -> set[str]:
        self.check_tables([table])
        raw, name = self.raw, self.quote(table)
        key = [(column, (declared or "").upper()) for _cid, column, declared, _nn, _default, pk
               in raw.execute(f"PRAGMA table_info({name})").fetchall() if pk]
        # An INTEGER PRIMARY KEY is the rowid itself, unique without an index of its own; any other primary key or
        # UNIQUE constraint has an index, listed here (a partial one, with a WHERE, proves nothing for the rest).
        found = {key[0][0]} if len(key) == 1 and key[0][1] == "INTEGER" else set()
        for _seq, index, unique, _origin, partial in raw.execute(f"PRAGMA index_list({name})").fetchall():
            if unique and not partial:
                parts = raw.execute(f"PRAGMA index_info({self.quote(index)})").fetchall()
                if len(parts) == 1 and parts[0][2] is not None:  # one column, not an expression
                    found.add(parts[0][2])
        return found

    def _failure(self, error: sqlite3.DatabaseError) -> ConnectorError:
        if "not authorized" in str(error):
            return ConnectorError(f"Refused on {self.connection.name}: only reads are allowed ({error}).",
                                  field="sql", code="query_refused")
        return ConnectorError(f"The query failed on {self.connection.name}: {error}", field="sql")

    def sample_of(self, table: str, rows: int, *, total: int) -> Sample:
        """Rows spread over the whole table: the rowid range is cut into as many equal strides as rows are wanted and
        one rowid is looked up in each, at a repeatable pseudo-random offset within its stride (index seeks, never a
        scan; no bias to the first, often oldest, rows). Gaps in the rowids make the sample a little smaller. A view,
        a table without rowid or one whose rowids are mostly gaps gets the first rows."""
        name = self.quote(table)
        try:
            # Two subqueries: SQLite reads a lone MIN or MAX of the rowid at an end of the b-tree, both in one
            # SELECT by scanning the table.
            low, high = self._execute(f"SELECT (SELECT MIN(rowid) FROM {name}), (SELECT MAX(rowid) FROM {name})",  # noqa: S608
                                      limit=1, timeout=default_timeout()).rows[0]
        except ConnectorError:
            low = high = None
        if not isinstance(low, int) or not isinstance(high, int) or high - low + 1 > 4 * max(total, 1):
            return super().sample_of(table, rows, total=total)
        span = high - low + 1
        probes = max(1, min(span, -(-rows * span // max(total, 1))))  # enough probes for ``rows`` rows at this density
        n = "genesis_probe.n"
        start = f"{n} * {span} / {probes}"
        width = f"(({n} + 1) * {span} / {probes} - {start})"
        sql = (f"(WITH RECURSIVE genesis_probe(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM genesis_probe "  # noqa: S608
               f"WHERE n < {probes - 1}) SELECT genesis_row.* FROM genesis_probe JOIN {name} AS genesis_row "
               f"ON genesis_row.rowid = {low} + {start} + ({n} * 2654435761) % 4294967296 % {width}) "
               "AS genesis_sample")
        return Sample(sql, f"one row at a repeatable pseudo-random rowid in each of {probes:,} equal strides of the "
                           "table's rowid range")

    def _execute(self, sql: str, *, limit: int, timeout: float) -> QueryResult:
        deadline = time.monotonic() + timeout
        raw = self.raw
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        try:
            cursor = raw.execute(sql)
            rows = cursor.fetchmany(limit + 1)
            columns = [d[0] for d in cursor.description or []]
            cursor.close()
        except sqlite3.OperationalError as error:
            if "interrupted" in str(error):
                raise QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped (an agent's "
                                   "queries may run GENESIS_AGENT_QUERY_TIMEOUT_SECONDS).") from None
            raise self._failure(error) from None
        except sqlite3.DatabaseError as error:
            raise self._failure(error) from None
        finally:
            raw.set_progress_handler(None, 0)
        return QueryResult(columns=columns, rows=rows[:limit], truncated=len(rows) > limit)
