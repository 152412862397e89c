"""PostgreSQL adapter (psycopg 3): read-only transactions and a server-side statement timeout."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors

from agents.connectors.base import Adapter, ColumnInfo, ConnectorError, QueryResult, QueryTimeout, Sample
from agents.connectors.platform import same_as_platform


class PostgreSQLAdapter(Adapter):
    engine = "postgresql"
    dialect = "postgres"

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
        raw.read_only = True
        if same_as_platform(raw):
            raw.close()
            raise ConnectorError(
                f"Connection {self.connection.name} reaches the platform's own database, which is never a data "
                "connection.", field="location", code="platform_database",
            )
        return raw

    def list_tables(self) -> list[str]:
        with self.raw.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = ANY (current_schemas(false)) AND table_type IN ('BASE TABLE', 'VIEW') "
                "ORDER BY table_name"
            )
            rows = cursor.fetchall()
        self.raw.rollback()
        return [row[0] for row in rows]

    def _columns(self, table: str) -> list[ColumnInfo]:
        with self.raw.cursor() as cursor:
            cursor.execute(
                "SELECT column_name, data_type, is_nullable, ordinal_position FROM information_schema.columns "
                "WHERE table_schema = ANY (current_schemas(false)) AND table_name = %s ORDER BY ordinal_position",
                [table],
            )
            rows = cursor.fetchall()
        self.raw.rollback()
        return [ColumnInfo(name=name, declared_type=dtype.upper(), nullable=nullable == "YES", position=pos)
                for name, dtype, nullable, pos in rows]

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

    def _execute(self, sql: str, *, limit: int, timeout: float) -> QueryResult:
        raw = self.raw
        try:
            with raw.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                cursor.execute(sql)
                rows = cursor.fetchmany(limit + 1)
                columns = [d.name for d in cursor.description or []]
        except pg_errors.QueryCanceled:
            raw.rollback()
            raise QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped (an agent's "
                                   "queries may run GENESIS_AGENT_QUERY_TIMEOUT_SECONDS).") from None
        except psycopg.Error as error:
            raw.rollback()
            raise ConnectorError(f"The query failed on {self.connection.name}: {str(error).strip()}",
                                 field="sql") from None
        raw.rollback()
        return QueryResult(columns=columns, rows=rows[:limit], truncated=len(rows) > limit)
