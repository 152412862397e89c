"""DuckDB adapter: the database file is opened read-only with every way out of it switched off by the engine itself.

The session's configuration is fixed at open and then locked (``lock_configuration``): no file, URL or other database
can be reached (``enable_external_access = false`` refuses ATTACH, COPY, ``read_csv``/``read_parquet``/``glob`` and
``FROM 'file'``), no extension is installed or loaded (``autoinstall_known_extensions`` and
``autoload_known_extensions`` off, so a query that needs one fails saying so instead of downloading it), and ``SET``
cannot undo any of it. The SQL guard in ``base`` refuses the same statements before they reach DuckDB; this is the
second wall. A timer interrupts a query that outlives its timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
from django.conf import settings

from agents.connectors.base import (
    Adapter,
    ColumnInfo,
    ConnectorError,
    QueryRefused,
    QueryResult,
    QueryTimeout,
    Sample,
)
from agents.connectors.platform import refusal_for

# What every DuckDB session the platform opens on a connection is held to; the dbt profile uses the extension half.
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                "allow_community_extensions": False}
READ_ONLY_CONFIG = {**NO_DOWNLOADS, "enable_external_access": False, "lock_configuration": True}


def duckdb_config(**extra: object) -> dict:
    """The settings every DuckDB database the platform opens gets: no downloads, and the memory it may use
    (``GENESIS_DUCKDB_MEMORY_LIMIT``: DuckDB's own default is 80% of the machine, in a worker process that also
    runs agents and dbt; past the limit it spills to a temporary directory beside the file)."""
    return {**NO_DOWNLOADS, "memory_limit": settings.GENESIS_DUCKDB_MEMORY_LIMIT, **extra}


def _reads_as_double(literal: str) -> bool:
    """Whether DuckDB reads this literal as a DOUBLE: a bare number with an exponent (1e+20), or with more digits
    than a DECIMAL or HUGEINT holds (38)."""
    number = literal.lstrip("+-")
    if not number[:1].isdigit() and not number.startswith("."):
        return False
    return "e" in number.lower() or sum(ch.isdigit() for ch in number) > 38


# Characters a table name never holds but a path or URL does: DuckDB reads ``FROM 'data.csv'`` or
# ``FROM 's3://bucket/x.parquet'`` as a file scan.
_PATH_CHARACTERS = set("/\\:.*?")


def duckdb_path(location: str) -> Path:
    """The database file of a DuckDB connection's location (a path, optionally prefixed ``duckdb:///``)."""
    for prefix in ("duckdb:///", "duckdb://", "file:"):
        if location.startswith(prefix):
            location = location[len(prefix):]
    return Path(location)


def location_problem(location: str) -> str | None:
    """Why ``location`` is not a local DuckDB file the platform may open, or None. In-memory databases hold nothing
    to read; MotherDuck (``md:``) and remote URLs would need an extension downloaded at run time."""
    text = (location or "").strip()
    if not text:
        return "give the path of the DuckDB file"
    if text == ":memory:" or text.startswith(":memory:"):
        return "an in-memory DuckDB database holds no data to read or build into; give a file path"
    lowered = text.lower()
    if lowered.startswith(("md:", "motherduck:")) or ("://" in lowered and not lowered.startswith("duckdb://")):
        return "only a local DuckDB file is allowed (remote databases need extensions this platform never downloads)"
    return None


class DuckDBAdapter(Adapter):
    engine = "duckdb"
    dialect = "duckdb"
    # glob() lists files on DuckDB (on SQLite it is the GLOB operator's function).
    engine_denied_functions = frozenset({"glob"})

    def matching_literals_sql(self, table: str, column: str, literals: Sequence[str]) -> str:
        """As ``Adapter.matching_literals_sql``, with the numbers DuckDB reads as DOUBLE (an exponent, or more digits
        than a DECIMAL holds) looked up apart from the others: one of them in a list types the whole list DOUBLE, and
        a FLOAT column's 1.1, which equals the literal 1.1 alone (compared as a FLOAT), then differs from it."""
        others: list[tuple[int, str]] = []
        doubles: list[tuple[int, str]] = []
        for n, literal in enumerate(literals):
            (doubles if _reads_as_double(literal) else others).append((n, literal))
        return self._matching_sql(table, column, [group for group in (others, doubles) if group])

    def _bytes_literal(self, data: bytes) -> str:
        return "'" + "".join(f"\\x{byte:02X}" for byte in data) + "'::BLOB"

    def _open(self):
        problem = location_problem(self.connection.location)
        if problem:
            raise ConnectorError(f"Connection {self.connection.name}: {problem}.", field="location",
                                 code="unreachable")
        path = duckdb_path(self.connection.location)
        if not path.is_file():
            raise ConnectorError(
                f"Connection {self.connection.name}: the DuckDB file {path} does not exist.", field="location",
                code="unreachable",
            )
        if refusal_for("duckdb", str(path)):
            raise ConnectorError(
                f"Connection {self.connection.name} reaches the platform's own database, which is never a data "
                "connection.", field="location", code="platform_database",
            )
        try:
            raw = duckdb.connect(str(path.resolve()), read_only=True, config=duckdb_config(**READ_ONLY_CONFIG))
            raw.execute("SELECT 1").fetchall()
            self._tables = self._catalog = None
        except duckdb.Error as error:
            raise ConnectorError(f"Connection {self.connection.name}: cannot open {path} as a DuckDB database: "
                                 f"{_first_line(error)}", field="location", code="unreachable") from None
        return raw

    # The session is read-only and holds the file's shared lock, so no one writes the catalog while it is open: it is
    # read from DuckDB's own catalog functions (information_schema is a layer of views over them, about twice as
    # slow) and kept until the session closes, the names at the first need of them and the columns at the first need
    # of those (many sessions only look for a table: reading the columns too costs a new instance about 6 ms more).
    # ``_open`` clears both.
    _tables: list[str] | None = None
    _catalog: dict[str, list[ColumnInfo]] | None = None
    _HERE = "database_name = current_database() AND schema_name = current_schema()"

    def list_tables(self) -> list[str]:
        if self._tables is None:
            self._tables = [name for (name,) in self.raw.execute(
                f"SELECT table_name FROM duckdb_tables() WHERE {self._HERE} UNION ALL "  # noqa: S608 - fixed text
                f"SELECT view_name FROM duckdb_views() WHERE {self._HERE} AND NOT internal ORDER BY 1").fetchall()]
        return list(self._tables)

    def _read_catalog(self) -> dict[str, list[ColumnInfo]]:
        if self._catalog is None:
            catalog: dict[str, list[ColumnInfo]] = {name: [] for name in self.list_tables()}
            for table, name, dtype, nullable, position in self.raw.execute(
                    f"SELECT table_name, column_name, data_type, is_nullable, column_index FROM duckdb_columns() "  # noqa: S608
                    f"WHERE {self._HERE} ORDER BY table_name, column_index").fetchall():
                if table in catalog:
                    catalog[table].append(ColumnInfo(name=name, declared_type=dtype.upper(), nullable=bool(nullable),
                                                     position=position))
            self._catalog = catalog
        return self._catalog

    def _columns(self, table: str) -> list[ColumnInfo]:
        return list(self._read_catalog().get(table, []))

    def unique_columns(self, table: str) -> set[str]:
        self.check_tables([table])
        rows = self.raw.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = current_database() "
            "AND schema_name = current_schema() AND table_name = ? AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
            [table]).fetchall()
        return {names[0] for (names,) in rows if len(names) == 1}

    def tables_of(self, sql: str) -> set[str]:
        tables = super().tables_of(sql)
        paths = sorted(t for t in tables if _PATH_CHARACTERS & set(t))
        if paths:
            self._refuse(QueryRefused(
                f"Refused: {', '.join(paths)} reads a file or URL; queries read only the tables of "
                f"{self.connection.name}.", tables=paths, sql=sql))
        return tables

    def containment_sql(self, values: str, refs: Sequence[tuple[str, str]]) -> str:
        """The values and each key's orphans (``Adapter.containment_sql``), each key read once into a hash set."""
        # DuckDB plans NOT EXISTS inside an aggregate as a mark join that keeps every value of both sides; NOT IN over
        # the key (its missing values left out, so that one NULL cannot make every test unknown) builds one hash of
        # the key and probes it: half the time at ten million values, and exact whether or not the key is unique.
        q = self.quote
        orphans = ", ".join(
            f"COUNT(*) FILTER (WHERE x.v NOT IN (SELECT {q(ref_key)} FROM {q(ref_table)} "  # noqa: S608
            f"WHERE {q(ref_key)} IS NOT NULL))" for ref_table, ref_key in refs)
        return f"SELECT COUNT(*), {orphans} FROM {values}"  # noqa: S608

    def regex_match_sql(self, text: str, pattern: str) -> str:
        """``Adapter.regex_match_sql``: the whole text matched."""
        return f"regexp_full_match({text}, {self.literal(pattern)})"

    # System sampling keeps whole vectors (2,048 rows) at random and reads only those; a reservoir sample reads the
    # whole table and measured slower than the exact statistics it replaces. A table of fewer than a hundred vectors
    # gets a reservoir (system sampling would keep all of it or nothing).
    def sample_of(self, table: str, rows: int, *, total: int) -> Sample:
        name = self.quote(table)
        if total < 100 * 2048:
            return Sample(f"(SELECT * FROM {name} USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE (7)) "  # noqa: S608
                          "AS genesis_sample", "DuckDB's USING SAMPLE: a reservoir of rows at random, repeatable")
        percent = min(100.0, round(100.0 * rows / max(total, 1), 4))
        return Sample(f"(SELECT * FROM {name} USING SAMPLE {percent} PERCENT (system, 7)) AS genesis_sample",  # noqa: S608
                      "DuckDB's USING SAMPLE: random blocks of rows (system), repeatable")

    def _execute(self, sql: str, *, limit: int, timeout: float) -> QueryResult:
        raw = self.raw
        timer = threading.Timer(timeout, raw.interrupt)
        timer.daemon = True
        timer.start()
        try:
            cursor = raw.execute(sql)
            rows = cursor.fetchmany(limit + 1)
            columns = [d[0] for d in cursor.description or []]
        except duckdb.InterruptException:
            raise QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped (an agent's "
                                   "queries may run GENESIS_AGENT_QUERY_TIMEOUT_SECONDS).") from None
        except duckdb.PermissionException as error:
            raise ConnectorError(f"Refused on {self.connection.name}: queries read only this database's tables "
                                 f"({_first_line(error)}).", field="sql", code="query_refused") from None
        except duckdb.Error as error:
            raise ConnectorError(f"The query failed on {self.connection.name}: {_first_line(error)}",
                                 field="sql") from None
        finally:
            timer.cancel()
        return QueryResult(columns=columns, rows=rows[:limit], truncated=len(rows) > limit)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
