"""Writing the tables into the connection, all of one ingest in one transaction of the target database.

Each table is filled under a staging name (``_ingest_<random>``), then the table of the same name, if any, is dropped
and the staging table renamed to it. A failure anywhere (the database refusing a value, the disk filling up, a lost
connection, a cancel) rolls the whole transaction back: every table is as it was before, and no staging table is
left. On PostgreSQL the old table is locked only for the drop and rename at the end, so readers are not held up for
the whole load. On DuckDB the rows go from the reader's database to the target's through a Parquet file in the
ingest's scratch folder (every type kept as DuckDB inferred it, no row through Python).

The adapters of ``agents.connectors`` only read; these open their own read-write session, and refuse the platform's
own database at every open: a SQLite (or DuckDB) file that is the platform's file, a PostgreSQL session whose server
says it is the platform's database (``agents.connectors.platform``).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from agents.connectors.duckdb import duckdb_config, duckdb_path, location_problem
from agents.connectors.platform import refusal_for, same_as_platform
from agents.connectors.sqlite import sqlite_path
from pipeline.ingest.errors import IngestCancelled, IngestError
from pipeline.ingest.landing import landing_for
from pipeline.ingest.reading import LoadedFile, Reader, quote

LOCK_TIMEOUT_SECONDS = 60
MAX_POSTGRES_NAME_BYTES = 63


class Target:
    """A read-write session on one connection. Use as a context manager."""

    engine = ""
    driver_error: type[BaseException] = Exception

    def __init__(self, connection: Any):
        self.connection = connection
        self.raw: Any = None
        self.created = False

    def __enter__(self) -> Target:
        self.open()
        return self

    def __exit__(self, exc_type: Any, *_exc: object) -> None:
        if self.raw is not None:
            self.raw.close()
            self.raw = None
        if exc_type is not None and self.created:
            self._discard()

    def _refuse(self, problem: str, *, code: str = "ingest_refused") -> IngestError:
        return IngestError(f"Connection {self.connection.name}: {problem}", field="connection", code=code)

    # --- per engine ---------------------------------------------------------------------------------------------
    def open(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def where(self) -> str:  # pragma: no cover - abstract
        """Where the tables land, for the report: the SQLite or DuckDB file or the PostgreSQL schema."""
        raise NotImplementedError

    def existing(self, table: str) -> str | None:  # pragma: no cover - abstract
        """``table`` or ``view`` when an object of that name is where the table lands, else None."""
        raise NotImplementedError

    def _begin(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _insert(self, staging: str, loaded: LoadedFile, reader: Reader) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _prepare(self, reader: Reader) -> None:
        """Anything the session needs to know of the reader before the load (DuckDB: its scratch folder)."""

    def _qualified(self, name: str) -> str:
        return quote(name)

    def _discard(self) -> None:
        """Remove what ``open`` created for a load that failed (the new SQLite file)."""

    # --- shared -------------------------------------------------------------------------------------------------
    def check(self, loaded: list[LoadedFile]) -> None:
        """Refuse, before writing, a view standing where a table would land."""
        for item in loaded:
            if self.existing(item.file.table) == "view":
                raise self._refuse(f"{item.file.table} is a view; ingest replaces tables only ({item.file.shown} "
                                   "would land there). Drop the view or rename the file.")

    def replace(self, loaded: list[LoadedFile], reader: Reader, *,
                on_table: Callable[[LoadedFile], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> None:
        """Load every file's rows (read by ``reader``) into its table, replacing the table's content, all in one
        transaction."""
        self._prepare(reader)
        self._begin()
        try:
            self.check(loaded)
            for item in loaded:
                if cancelled is not None and cancelled():
                    raise IngestCancelled()
                started = time.monotonic()
                item.declared = [landing_for(c.type, self.engine).declared for c in item.columns]
                staging = f"_ingest_{uuid.uuid4().hex[:12]}"
                try:
                    body = ", ".join(f"{quote(c.name)} {declared}" for c, declared in zip(item.columns, item.declared,
                                                                                         strict=True))
                    self.raw.execute(f"CREATE TABLE {self._qualified(staging)} ({body})")
                    written = self._insert(staging, item, reader)
                    if written != item.rows:
                        raise self._refuse(f"{item.file.shown}: {written:,} rows were written of the {item.rows:,} "
                                           "read; nothing was loaded.")
                    self.raw.execute(f"DROP TABLE IF EXISTS {self._qualified(item.file.table)}")
                    self.raw.execute(f"ALTER TABLE {self._qualified(staging)} RENAME TO {quote(item.file.table)}")
                except self.driver_error as error:
                    raise self._refuse(f"loading {item.file.shown} into table {item.file.table} failed: "
                                       f"{_driver_message(error)}. Nothing was loaded.") from None
                item.write_seconds = time.monotonic() - started
                if on_table is not None:
                    on_table(item)
            self.raw.commit()
        except BaseException:
            try:
                self.raw.rollback()
            except self.driver_error:
                pass  # a lost session: the server rolls the transaction back itself
            raise


def _driver_message(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    message = text[0] if text else type(error).__name__
    diag = getattr(error, "diag", None)
    detail = getattr(diag, "message_detail", None) if diag is not None else None
    return f"{message} ({detail})" if detail else message


class SQLiteTarget(Target):
    """A SQLite file, opened read-write; created when it does not exist yet (its folder must)."""

    engine = "sqlite"
    driver_error = sqlite3.Error

    def path(self) -> Path:
        return sqlite_path(self.connection.location)

    def where(self) -> str:
        return str(self.path())

    def open(self) -> None:
        refusal = refusal_for(self.engine, self.connection.location)
        if refusal:
            raise self._refuse(f"this location is refused: {refusal}.", code="platform_database")
        path = self.path()
        if path.is_dir():
            raise self._refuse(f"{path} is a folder, not a SQLite file.")
        if not path.exists():
            if not path.parent.is_dir():
                raise self._refuse(f"the SQLite file {path} does not exist and neither does its folder "
                                   f"{path.parent}; create the folder, or register the connection elsewhere.")
            self.created = True
        try:
            # Transactions are begun and ended here, explicitly (isolation_level None: no implicit ones).
            self.raw = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
            self.raw.execute("SELECT count(*) FROM sqlite_master").fetchone()
            # Renaming the staging table must not re-check views that name the table being replaced.
            self.raw.execute("PRAGMA legacy_alter_table = ON")
        except sqlite3.Error as error:
            if self.raw is not None:
                self.raw.close()
                self.raw = None
            raise self._refuse(f"cannot open {path} as a SQLite database: {error}.") from None

    def _discard(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path()}{suffix}").unlink(missing_ok=True)

    def existing(self, table: str) -> str | None:
        row = self.raw.execute("SELECT type FROM sqlite_master WHERE lower(name) = lower(?) AND type IN "
                               "('table', 'view')", [table]).fetchone()
        return row[0] if row else None

    def _begin(self) -> None:
        try:
            self.raw.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise self._refuse(f"cannot start writing to {self.path()}: {error}.") from None

    def _insert(self, staging: str, loaded: LoadedFile, reader: Reader) -> int:
        marks = ", ".join("?" * len(loaded.columns))
        sql = f"INSERT INTO {quote(staging)} VALUES ({marks})"  # noqa: S608 - a generated name
        written = 0
        for rows in reader.batches(loaded, engine=self.engine):
            self.raw.executemany(sql, rows)
            written += len(rows)
        return written


class PostgreSQLTarget(Target):
    """A PostgreSQL database; the tables land in the first schema of the connection's search path."""

    engine = "postgresql"
    driver_error = psycopg.Error

    def __init__(self, connection: Any):
        super().__init__(connection)
        self.schema = ""

    def where(self) -> str:
        return f"schema {self.schema}"

    def _qualified(self, name: str) -> str:
        # Always in the schema tables are created in: an unqualified DROP could reach a table of that name in a
        # later schema of the search path.
        return f"{quote(self.schema)}.{quote(name)}"

    def open(self) -> None:
        kwargs: dict[str, Any] = {"connect_timeout": 10, "autocommit": False}
        if self.connection.secret:
            kwargs["password"] = self.connection.secret
        try:
            self.raw = psycopg.connect(self.connection.location, **kwargs)
        except psycopg.Error as error:
            raise self._refuse(f"cannot reach PostgreSQL: {str(error).strip()}", code="unreachable") from None
        if same_as_platform(self.raw):
            raise self._refuse("it reaches the platform's own database, which is never a data connection.",
                               code="platform_database")
        self.schema = self.raw.execute("SELECT current_schema()").fetchone()[0] or ""
        self.raw.rollback()
        if not self.schema:
            raise self._refuse("no schema of its search path exists to create the tables in.")

    def check(self, loaded: list[LoadedFile]) -> None:
        for item in loaded:
            for column in item.columns:
                if len(column.name.encode()) > MAX_POSTGRES_NAME_BYTES:
                    raise IngestError(
                        f"{item.file.shown}: the column name {column.name[:80]!r}… is longer than PostgreSQL's "
                        f"{MAX_POSTGRES_NAME_BYTES} bytes (it would be cut short); shorten it in the file.",
                        file=item.file.shown)
        super().check(loaded)

    def existing(self, table: str) -> str | None:
        row = self.raw.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = %s AND "
                               "table_name = %s", [self.schema, table]).fetchone()
        if row is None:
            return None
        return "view" if row[0] == "VIEW" else "table"

    def _begin(self) -> None:
        self.raw.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")

    def _insert(self, staging: str, loaded: LoadedFile, reader: Reader) -> int:
        written = 0
        with self.raw.cursor() as cursor, cursor.copy(f"COPY {self._qualified(staging)} FROM STDIN") as copy:
            for rows in reader.batches(loaded, engine=self.engine):
                for row in rows:
                    copy.write_row(row)
                written += len(rows)
        return written


class DuckDBTarget(Target):
    """A DuckDB file, opened read-write; created when it does not exist yet (its folder must). The session downloads
    no extension and, once the load starts, reaches no file but its own and the ingest's scratch folder."""

    engine = "duckdb"
    driver_error = duckdb.Error

    def path(self) -> Path:
        return duckdb_path(self.connection.location)

    def where(self) -> str:
        return str(self.path())

    def open(self) -> None:
        problem = location_problem(self.connection.location)
        if problem:
            raise self._refuse(f"this location is refused: {problem}.")
        refusal = refusal_for(self.engine, self.connection.location)
        if refusal:
            raise self._refuse(f"this location is refused: {refusal}.", code="platform_database")
        path = self.path()
        if path.is_dir():
            raise self._refuse(f"{path} is a folder, not a DuckDB file.")
        if not path.exists():
            if not path.parent.is_dir():
                raise self._refuse(f"the DuckDB file {path} does not exist and neither does its folder "
                                   f"{path.parent}; create the folder, or register the connection elsewhere.")
            self.created = True
        try:
            self.raw = duckdb.connect(str(path), config=duckdb_config())
            self.raw.execute("SELECT count(*) FROM information_schema.tables").fetchone()
        except duckdb.Error as error:
            if self.raw is not None:
                self.raw.close()
                self.raw = None
            raise self._refuse(f"cannot open {path} as a DuckDB database for writing: "
                               f"{_driver_message(error)}.") from None

    def _prepare(self, reader: Reader) -> None:
        scratch = str(reader.scratch)
        self.raw.execute("SET temp_directory = ?", [scratch])
        self.raw.execute("SET allowed_directories = ?", [[scratch]])
        self.raw.execute("SET enable_external_access = false")
        self.raw.execute("SET lock_configuration = true")

    def _discard(self) -> None:
        for suffix in ("", ".wal"):
            Path(f"{self.path()}{suffix}").unlink(missing_ok=True)

    def existing(self, table: str) -> str | None:
        row = self.raw.execute("SELECT table_type FROM information_schema.tables WHERE table_catalog = "
                               "current_database() AND table_schema = current_schema() AND lower(table_name) = "
                               "lower(?)", [table]).fetchone()
        if row is None:
            return None
        return "view" if row[0] == "VIEW" else "table"

    def _begin(self) -> None:
        try:
            self.raw.execute("BEGIN TRANSACTION")
        except duckdb.Error as error:
            raise self._refuse(f"cannot start writing to {self.path()}: {_driver_message(error)}.") from None

    def _insert(self, staging: str, loaded: LoadedFile, reader: Reader) -> int:
        parquet = reader.export(loaded)
        try:
            row = self.raw.execute(f"INSERT INTO {quote(staging)} SELECT * FROM read_parquet(?)",  # noqa: S608
                                   [str(parquet)]).fetchone()
        finally:
            parquet.unlink(missing_ok=True)
        return int(row[0]) if row else 0


TARGETS: dict[str, type[Target]] = {"sqlite": SQLiteTarget, "postgresql": PostgreSQLTarget, "duckdb": DuckDBTarget}
