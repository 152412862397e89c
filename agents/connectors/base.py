"""What every connection adapter offers: introspection, guarded read-only queries and a sqlglot dialect."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from genesis.exceptions import DomainError

DEFAULT_ROW_LIMIT = 1000
DEFAULT_TIMEOUT_SECONDS = 30.0
# The timeout of the queries run where no caller gives one: DEFAULT_TIMEOUT_SECONDS for a person waiting on a page
# or an API call, the worker's longer limit while an agent runs (``query_timeout``).
_query_timeout: ContextVar[float | None] = ContextVar("genesis_query_timeout", default=None)


def _finite(value: float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def is_nan(value: float | Decimal) -> bool:
    """NaN, a Decimal's signalling one too (which no float conversion takes)."""
    return value.is_nan() if isinstance(value, Decimal) else math.isnan(value)


@contextmanager
def query_timeout(seconds: float) -> Iterator[None]:
    """Within this block (this thread, and the threads started with a copy of its context), queries that give no
    timeout of their own stop after ``seconds``: how a worker lets an agent's queries over large tables run longer
    than a preview may."""
    token = _query_timeout.set(float(seconds))
    try:
        yield
    finally:
        _query_timeout.reset(token)


def default_timeout() -> float:
    """The timeout of a query that gives none: the enclosing ``query_timeout``, else DEFAULT_TIMEOUT_SECONDS."""
    return _query_timeout.get() or DEFAULT_TIMEOUT_SECONDS
# The longest query text the guard parses (a spec's expression or a check's query is far shorter).
MAX_QUERY_CHARS = 100_000

# Functions no query of an agent, check or preview may call, whatever the engine: they read or write server files
# and large objects, run SQL given as text (which the table guard cannot see), reach other databases, change
# session settings, load code, or act on other sessions.
DENIED_FUNCTIONS = frozenset({
    "readfile", "writefile", "edit", "load_extension", "fts3_tokenizer", "zipfile", "sqlar_compress",
    "sqlar_uncompress", "dblink", "dblink_exec", "dblink_connect", "dblink_send_query", "query_to_xml",
    "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml", "table_to_xmlschema",
    "table_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema", "schema_to_xml", "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
    "ts_stat", "ts_rewrite", "current_setting", "set_config", "lo_import", "lo_export", "txid_current",
    "read_csv", "read_csv_auto", "read_parquet", "read_json", "read_json_auto", "read_text", "read_blob",
    "sniff_csv", "parquet_scan", "parquet_metadata", "parquet_schema", "query", "query_table",
    "getenv", "which_secret", "load_aws_credentials", "checkpoint", "force_checkpoint", "enable_logging",
    "disable_logging", "truncate_duckdb_logs", "st_read", "json_execute_serialized_sql",
})
# Prefixes of the same: PostgreSQL's server functions (pg_read_file, pg_ls_dir, pg_sleep, pg_terminate_backend, ...)
# and large objects (lo_*); SQLite's table-valued pragmas and internal tables; DuckDB's file readers (read_csv,
# read_ndjson_objects, ...), its catalog and settings functions (duckdb_settings, duckdb_secrets, ...) and the scanners
# of other databases and formats (sqlite_scan, postgres_scan, mysql_query, iceberg_scan, delta_scan, ducklake_*).
DENIED_FUNCTION_PREFIXES = ("pg_", "lo_", "pragma_", "sqlite_", "dblink", "read_", "duckdb_", "parquet_",
                            "postgres_", "mysql_", "iceberg_", "delta_", "ducklake_", "http_")
# Tables of the engines' own catalogs, which hold other sessions' queries, roles and passwords.
DENIED_TABLE_PREFIXES = ("pg_", "sqlite_", "duckdb_", "pragma_")
# The type families (``pipeline.dbt.spec.type_family``) whose values are numbers.
NUMBER_FAMILIES = frozenset({"integer", "numeric"})


class ConnectorError(DomainError):
    """The connection could not be opened or a query failed."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "connector_error"):
        super().__init__(message, field=field, code=code)


class QueryRefused(ConnectorError):
    """A query the guard does not allow: not read-only, or touching a table outside the allowed list."""

    def __init__(self, message: str, *, tables: Iterable[str] = (), sql: str = ""):
        super().__init__(message, field="sql", code="query_refused")
        self.tables = sorted(tables)
        self.sql = sql


class QueryTimeout(ConnectorError):
    def __init__(self, message: str):
        super().__init__(message, field="sql", code="query_timeout")


@dataclass
class ColumnInfo:
    """One column as the database declares it."""

    name: str
    declared_type: str
    nullable: bool = True
    position: int = 0


@dataclass
class TableInfo:
    """One table: its columns in order and its row count."""

    name: str
    columns: list[ColumnInfo] = field(default_factory=list)
    row_count: int = 0

    def column(self, name: str) -> ColumnInfo | None:
        wanted = name.lower()
        return next((c for c in self.columns if c.name.lower() == wanted), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QueryResult:
    """Rows of a read-only query, cut at the row limit (``truncated`` says whether more existed)."""

    columns: list[str]
    rows: list[tuple]
    truncated: bool = False
    elapsed_ms: float = 0.0


class Sample(NamedTuple):
    """Rows of a table picked for statistics: ``sql`` is a subquery with its alias, ``method`` says in words how the
    rows were picked (for a report)."""

    sql: str
    method: str


RefusalHook = Callable[[QueryRefused], None]


class Adapter:
    """Base of the per-engine adapters. Use as a context manager, or call ``close()``.

    ``allowed_tables`` (case-insensitive names) is the guard: when given, a query or an introspection that
    touches any other table is refused with ``QueryRefused`` and ``on_refused`` is told (the agents record
    it in the mission's history).
    """

    engine: str = ""
    dialect: str = ""
    # Functions refused on this engine only (a name that is harmless on another one, like SQLite's glob()).
    engine_denied_functions: frozenset[str] = frozenset()
    # Whether the engine gives a VALUES column one type for all its rows (PostgreSQL, DuckDB); SQLite keeps each
    # value's own type.
    values_typed_once = True

    def __init__(self, connection, *, allowed_tables: Iterable[str] | None = None,
                 on_refused: RefusalHook | None = None):
        self.connection = connection
        self.allowed_tables = None if allowed_tables is None else {t.lower() for t in allowed_tables}
        self.on_refused = on_refused
        self._raw = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> Adapter:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        if self._raw is None:
            self._raw = self._open()

    def close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            finally:
                self._raw = None

    @property
    def raw(self):
        self.connect()
        return self._raw

    # --- engine-specific ---------------------------------------------------------------------------
    def _open(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def list_tables(self) -> list[str]:  # pragma: no cover - abstract
        """Names of the base tables and views visible on this connection (names only, never contents)."""
        raise NotImplementedError

    def _columns(self, table: str) -> list[ColumnInfo]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _execute(self, sql: str, *, limit: int, timeout: float) -> QueryResult:  # pragma: no cover
        raise NotImplementedError

    def quote(self, name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(dialect=self.dialect)

    def literal(self, value: Any) -> str:
        """``value``, as this engine's driver returned it, written as a SQL literal that compares in this database as
        the value itself does (a keyset's bound: ``column > literal``). Whole numbers are written bare; anything else
        as a quoted string (sqlglot escapes it), which PostgreSQL and DuckDB cast to the compared column's type."""
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return self._bytes_literal(bytes(value))
        return exp.Literal.string(str(value)).sql(dialect=self.dialect)

    def lookup_literal(self, value: Any, family: str) -> str | None:
        """``value``, read on another engine (or read back for a lookup), written as a literal to compare with a
        column of this database whose ``type_family`` is ``family`` (an engine that compares some values otherwise
        overrides it). For an ``integer`` or ``numeric`` column a number, or a text that reads as a finite one, is
        written bare, and anything else (a boolean too) is None: no number can equal it. For a ``text`` column, the
        quoted text of the value. For any other family, numbers bare (a boolean as ``True``/``False``), a blob as
        this engine writes binary data, and anything else as its quoted text. NaN and the infinities are written by
        ``non_finite_literal``, never bare (SQL reads a bare ``nan`` or ``inf`` as a column's name)."""
        if isinstance(value, float | Decimal) and not _finite(value):
            return self.non_finite_literal(value, family)
        if family in NUMBER_FAMILIES:
            if isinstance(value, bool):
                return None
            if isinstance(value, int | float | Decimal):
                return str(value)
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation:
                return None
            return str(number) if number.is_finite() else None
        if family != "text" and isinstance(value, int | float):
            return str(value)
        if family != "text" and isinstance(value, bytes | bytearray | memoryview):
            return self._bytes_literal(bytes(value))
        return exp.Literal.string(str(value)).sql(dialect=self.dialect)

    def non_finite_literal(self, value: float | Decimal, family: str) -> str | None:
        """NaN or an infinity as a literal to compare with a column of ``family``: for numbers, None (the engines
        that can hold and compare them override this; the value is then reported missing, never silently found);
        for anything else, its quoted text."""
        if family in NUMBER_FAMILIES:
            return None
        return exp.Literal.string(str(value)).sql(dialect=self.dialect)

    def _bytes_literal(self, data: bytes) -> str:
        """Binary data as a literal: PostgreSQL's bytea hex input."""
        return f"'\\x{data.hex()}'"

    def sample_of(self, table: str, rows: int, *, total: int) -> Sample:
        """About ``rows`` of the ``total`` rows of ``table``, as a subquery with its alias, for statistics that need
        not read every row (distinct counts, frequent values, candidate keys to confirm). The engines that can pick
        rows cheaply across the whole table do so; this fallback takes the first rows the database returns."""
        return Sample(f"(SELECT * FROM {self.quote(table)} LIMIT {int(rows)}) AS genesis_sample",  # noqa: S608
                      "the first rows the database returns (LIMIT)")

    def unique_columns(self, table: str) -> set[str]:
        """The columns of ``table`` the database itself keeps unique: a primary key, or a unique index or constraint
        on that one column (not partial, not on an expression). Profiling takes such a column's uniqueness as
        proven instead of counting its distinct values over the whole table. Empty where the engine cannot say."""
        return set()

    def matching_literals_sql(self, table: str, column: str, literals: Sequence[str]) -> str:
        """A query whose rows are the positions in ``literals`` (SQL literals, as ``lookup_literal`` writes them) of
        those that equal a value of ``table.column``, as this database compares them: the IN list finds the
        column's values (the lookup an index serves), and a join of those values to the literals by position says
        which literal each value equals, so no comparison is left to the caller's language."""
        return self._matching_sql(table, column, [list(enumerate(literals))])

    def _matching_sql(self, table: str, column: str, groups: Sequence[Sequence[tuple[int, str]]]) -> str:
        """``matching_literals_sql`` over groups of (position, literal), each group an IN list of its own. The
        literals' column of a group's join is typed as its IN list types its values: PostgreSQL and DuckDB type a
        VALUES column once for all its rows, so a NULL of the column's own type comes first (as the column comes
        first in ``column IN (...)``) and equals nothing; SQLite keeps each value's own type, and compares a literal
        there as it compares it bare."""
        q = self.quote
        key, ref = q(column), q(table)
        ctes, selects = [], []
        for g, numbered in enumerate(groups):
            rows = [f"({n}, {literal})" for n, literal in numbered]
            if self.values_typed_once:
                rows.insert(0, f"(-1, (SELECT {key} FROM {ref} WHERE 1 = 0))")  # noqa: S608 - quoted identifiers
            ctes.append(f"v{g}(i, x) AS (VALUES {', '.join(rows)})")
            selects.append(f"SELECT v{g}.i FROM v{g} JOIN (SELECT DISTINCT {key} AS k FROM {ref} "  # noqa: S608
                           f"WHERE {key} IN ({', '.join(literal for _, literal in numbered)})) AS s{g} "
                           f"ON s{g}.k = v{g}.x")
        return f"WITH {', '.join(ctes)} SELECT DISTINCT i FROM ({' UNION ALL '.join(selects)}) AS m"  # noqa: S608

    def containment_sql(self, values: str, refs: Sequence[tuple[str, str]]) -> str:
        """A query of one row: how many values ``values`` holds (a subquery aliased ``x`` of distinct values in its
        column ``v``), then for each key ``(table, key)`` of ``refs`` how many of them the key lacks (a foreign key's
        orphans). This form looks each value up in each key."""
        # SQLite and DuckDB look each value up in the key (an index seek on SQLite).
        q = self.quote
        orphans = ", ".join(
            f"COALESCE(SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM {q(ref_table)} AS r "  # noqa: S608
            f"WHERE r.{q(ref_key)} = x.v) THEN 1 ELSE 0 END), 0)" for ref_table, ref_key in refs)
        return f"SELECT COUNT(*), {orphans} FROM {values}"  # noqa: S608

    def regex_match_sql(self, text: str, pattern: str) -> str | None:
        """A condition that holds when the text expression ``text`` matches the regular expression ``pattern``, or
        None where the engine has no regular expressions: SQLite, whose REGEXP operator calls a function no session
        of the platform's defines. Anchor ``pattern`` (``^...$``) where the whole text must match: PostgreSQL's form
        finds it anywhere in the text, DuckDB's matches only the whole text."""
        return None

    # --- shared ------------------------------------------------------------------------------------
    def ping(self) -> None:
        self._execute("SELECT 1", limit=1, timeout=5)

    def resolve_table(self, name: str) -> str:
        """The table's name as the database spells it (names are matched case-insensitively)."""
        for actual in self.list_tables():
            if actual.lower() == name.lower():
                return actual
        raise ConnectorError(f"Table {name!r} does not exist on connection {self.connection.name}.",
                             field="table", code="unknown_table")

    def introspect(self, tables: Iterable[str] | None = None) -> list[TableInfo]:
        """Columns, declared types and row counts of the given tables (default: every allowed table)."""
        if tables is None:
            names = [t for t in self.list_tables()
                     if self.allowed_tables is None or t.lower() in self.allowed_tables]
        else:
            wanted = list(tables)
            self.check_tables(wanted, sql=f"introspect {', '.join(wanted)}")
            names = [self.resolve_table(t) for t in wanted]
        infos = []
        for name in names:
            count = self._execute(f"SELECT COUNT(*) FROM {self.quote(name)}", limit=1,  # noqa: S608 - quoted name
                                  timeout=default_timeout()).rows[0][0]
            infos.append(TableInfo(name=name, columns=self._columns(name), row_count=int(count)))
        return infos

    def check_tables(self, tables: Iterable[str], *, sql: str = "") -> None:
        if self.allowed_tables is None:
            return
        outside = sorted({t for t in tables if t.lower() not in self.allowed_tables})
        if outside:
            allowed = ", ".join(sorted(self.allowed_tables)) or "none"
            self._refuse(QueryRefused(
                f"Refused: {', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not among the mission's "
                f"allowed source tables on {self.connection.name} ({allowed}).", tables=outside, sql=sql,
            ))

    def _refuse(self, error: QueryRefused) -> None:
        if self.on_refused is not None:
            self.on_refused(error)
        raise error

    def tables_of(self, sql: str) -> set[str]:
        """The tables a statement reads, CTE names excluded; refuses anything that is not one plain read: a
        statement that does not parse, several statements, anything but a SELECT (ATTACH, PRAGMA, COPY, ...), a
        SELECT that writes (INTO, a data-modifying CTE) or locks, and the functions and catalogs listed above."""
        if len(sql) > MAX_QUERY_CHARS:
            self._refuse(QueryRefused(f"The query is {len(sql):,} characters; at most {MAX_QUERY_CHARS:,} are read.",
                                      sql=sql[:2000]))
        try:
            statements = [s for s in sqlglot.parse(sql, read=self.dialect) if s is not None]
        except (ParseError, sqlglot.errors.TokenError, RecursionError) as error:
            self._refuse(QueryRefused(
                f"Refused: the query does not parse as one {self.dialect} SELECT ({str(error).splitlines()[0][:200]})",
                sql=sql))
        if len(statements) != 1:
            self._refuse(QueryRefused(f"Exactly one statement is allowed; got {len(statements)}.", sql=sql))
        statement = statements[0]
        if not isinstance(statement, exp.Query):
            self._refuse(QueryRefused(
                f"Only read-only SELECT queries are allowed; got {statement.key.upper()}.", sql=sql))
        writes = next(statement.find_all(exp.Into, exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create,
                                         exp.Drop, exp.Command, exp.Lock), None)
        if writes is not None:
            self._refuse(QueryRefused(
                f"Only plain reads are allowed; the query has {writes.key.upper()} in it.", sql=sql))
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        tables = set()
        for table in statement.find_all(exp.Table):
            if not table.name:
                continue
            if table.db or table.catalog:
                # Another schema or attached database would slip past a check by table name alone.
                self._refuse(QueryRefused(
                    f"Refused: {table.sql(dialect=self.dialect)} names a schema or database; agents read only "
                    f"the allowed tables of {self.connection.name}, unqualified.",
                    tables=[".".join(p for p in (table.catalog, table.db, table.name) if p)], sql=sql))
            if table.name.lower() in ctes and not table.db:
                continue
            tables.add(table.name)
        for func in statement.find_all(exp.Func):
            name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
            if (name in DENIED_FUNCTIONS or name in self.engine_denied_functions
                    or name.startswith(DENIED_FUNCTION_PREFIXES)):
                self._refuse(QueryRefused(f"The function {name}() is not allowed: queries read tables, never server "
                                          "files, settings or other databases.", sql=sql))
        catalog = sorted(t for t in tables if t.lower().startswith(DENIED_TABLE_PREFIXES))
        if catalog:
            self._refuse(QueryRefused(f"Refused: {', '.join(catalog)} belong(s) to the database's own catalog.",
                                      tables=catalog, sql=sql))
        return tables

    def query(self, sql: str, *, limit: int = DEFAULT_ROW_LIMIT, timeout: float | None = None) -> QueryResult:
        """Run one read-only SELECT, returning at most ``limit`` rows, stopped after ``timeout`` seconds (default:
        ``default_timeout()``)."""
        timeout = default_timeout() if timeout is None else timeout
        if limit < 1:
            raise ConnectorError("The row limit must be at least 1.", field="limit")
        self.check_tables(self.tables_of(sql), sql=sql)
        started = time.monotonic()
        result = self._execute(sql, limit=limit, timeout=timeout)
        result.elapsed_ms = round((time.monotonic() - started) * 1000, 2)
        return result

    def run_internal(self, sql: str, *, limit: int = 1, timeout: float | None = None) -> QueryResult:
        """Run SQL the platform wrote itself (quoted identifiers, no user text): the engine's read-only session,
        authorizer and timeout apply; the parse-level guard does not (it refuses the schema-qualified names the
        platform's own introspection needs)."""
        return self._execute(sql, limit=limit, timeout=default_timeout() if timeout is None else timeout)

    def scalar(self, sql: str, *, timeout: float | None = None) -> Any:
        rows = self.query(sql, limit=1, timeout=timeout).rows
        return rows[0][0] if rows else None
