"""Months of a backfill built at once on PostgreSQL, which takes concurrent writers.

dbt runs one invocation at a time in a process (``dbtRunner`` keeps global state), so dbt compiles each month's SQL
one month after another (cheap: the parsed project is cached), and each month's delete+insert (the rows of that
month deleted, the month's rows inserted, as dbt's delete+insert strategy does) then runs in its own transaction on
its own connection, up to ``GENESIS_DBT_POSTGRES_THREADS`` months at once. SQLite and DuckDB files take one writer:
their months are built one after another through dbt.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from agents.connectors.platform import same_as_platform
from genesis.exceptions import DomainError


@dataclass
class MonthWork:
    """One month to build: per target, its table, the SQL of its month's rows, its month expression, its columns."""

    month: str
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MonthDone:
    """How building one month went."""

    month: str
    targets: list[str]
    ok: bool = True
    error: str = ""
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)


class _Gauge:
    """How many months are being written at the same moment, and the most there ever were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> _Gauge:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def _connect(connection: Any) -> Any:
    kwargs: dict[str, Any] = {"connect_timeout": 10, "autocommit": False}
    if connection.secret:
        kwargs["password"] = connection.secret
    try:
        raw = psycopg.connect(connection.location, **kwargs)
    except psycopg.Error as error:
        raise DomainError(f"Connection {connection.name}: cannot reach PostgreSQL: {str(error).strip()}",
                          field="location", code="unreachable") from None
    if same_as_platform(raw):
        raw.close()
        raise DomainError(f"Connection {connection.name} reaches the platform's own database, which is never a "
                          "data connection.", field="location", code="platform_database")
    return raw


def _build_month(connection: Any, work: MonthWork, gauge: _Gauge) -> MonthDone:
    started = time.monotonic()
    done = MonthDone(month=work.month, targets=[item["model"] for item in work.items])
    with gauge:
        try:
            raw = _connect(connection)
        except DomainError as error:
            done.ok, done.error = False, error.message
            return done
        try:
            with raw.transaction():
                for item in work.items:
                    relation, columns = item["relation"], ", ".join(item["columns"]) or "*"
                    into = f" ({columns})" if item["columns"] else ""
                    raw.execute(f"DELETE FROM {relation} WHERE {item['period']} = %s",  # noqa: S608 - dbt's names
                                [work.month])
                    cursor = raw.execute(f"INSERT INTO {relation}{into} SELECT {columns} "  # noqa: S608
                                         f"FROM ({item['sql']}) AS genesis_period")
                    done.rows[item["model"]] = cursor.rowcount
        except psycopg.Error as error:
            done.ok, done.error = False, str(error).strip()
        finally:
            raw.close()
    done.seconds = round(time.monotonic() - started, 3)
    return done


def build_months(connection: Any, work: list[MonthWork], *, degree: int) -> tuple[list[MonthDone], int]:
    """Build the months on ``degree`` connections at once; returns each month's outcome (in the order given) and
    the most months that were being written at the same moment."""
    gauge = _Gauge()
    with ThreadPoolExecutor(max_workers=max(1, degree), thread_name_prefix="genesis-month") as pool:
        done = list(pool.map(lambda item: _build_month(connection, item, gauge), work))
    return done, gauge.most
