"""Validating the built targets through the validation connection: the tables and their columns as the database
declares them (``sqlite_master`` and ``PRAGMA table_info`` on SQLite, ``information_schema`` on PostgreSQL and DuckDB),
compared with the spec, plus a row count and a few sample rows per target."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agents.access import adapter_for
from pipeline.dbt.spec import TargetSpec, type_family

# Families a spec type may land in on each engine (SQLite keeps dates and timestamps as ISO text).
_ACCEPTABLE = {
    "sqlite": {"date": {"date", "text"}, "timestamp": {"timestamp", "text"}, "boolean": {"boolean", "integer"},
               "numeric": {"numeric", "integer"}},
    "postgresql": {"numeric": {"numeric"}},
    "duckdb": {"numeric": {"numeric"}},
}


@dataclass
class TableValidation:
    """How one target table on the validation connection compares with its spec."""

    target: str
    exists: bool = False
    row_count: int = 0
    columns: list[dict[str, Any]] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    type_mismatches: list[dict[str, str]] = field(default_factory=list)
    sample_rows: list[list] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.exists and not self.missing_columns and not self.type_mismatches

    def problems(self) -> list[str]:
        if not self.exists:
            return [f"{self.target} does not exist"]
        found = [f"{self.target} lacks column {c}" for c in self.missing_columns]
        found += [f"{self.target}.{m['column']} is {m['actual']}, spec says {m['expected']}"
                  for m in self.type_mismatches]
        return found

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _declared_columns(adapter, table: str, queries: list[str]) -> tuple[bool, list[tuple[str, str]]]:
    if adapter.engine == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE"
        queries.append(sql.replace("?", f"'{table}'"))
        row = adapter.raw.execute(sql, (table,)).fetchone()
        if row is None:
            return False, []
        pragma = f"PRAGMA table_info({adapter.quote(row[0])})"
        queries.append(pragma)
        return True, [(r[1], r[2] or "") for r in adapter.raw.execute(pragma).fetchall()]
    if adapter.engine == "duckdb":
        # DuckDB's information_schema spells a decimal's precision in its data_type: DECIMAL(12,2).
        actual = next((name for name in adapter.list_tables() if name.lower() == table.lower()), None)
        shown = ("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() "
                 "AND table_name = '{}' ORDER BY ordinal_position")
        queries.append(shown.format(actual or table))
        if actual is None:
            return False, []
        return True, [(c.name, c.declared_type) for c in adapter._columns(actual)]
    sql = ("SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
           "WHERE table_schema = ANY (current_schemas(false)) AND table_name = %s ORDER BY ordinal_position")
    queries.append(sql.replace("%s", f"'{table}'"))
    with adapter.raw.cursor() as cursor:
        cursor.execute(sql, [table])
        rows = cursor.fetchall()
    adapter.raw.rollback()
    columns = []
    for name, dtype, precision, scale in rows:
        text = dtype.upper()
        if text == "NUMERIC" and precision is not None:
            text = f"NUMERIC({precision},{scale})"
        columns.append((name, text))
    return bool(rows), columns


def validate_target(adapter, target: TargetSpec, *, samples: int = 5) -> TableValidation:
    result = TableValidation(target=target.name)
    exists, declared = _declared_columns(adapter, target.name, result.queries)
    result.exists = exists
    if not exists:
        return result
    by_name = {name.upper(): dtype for name, dtype in declared}
    spec_names = {c.name.upper() for c in target.columns}
    result.extra_columns = [name for name, _ in declared if name.upper() not in spec_names]
    acceptable = _ACCEPTABLE.get(adapter.engine, {})
    for column in target.columns:
        actual = by_name.get(column.name.upper())
        if actual is None:
            result.missing_columns.append(column.name)
            continue
        family = column.family
        actual_family = type_family(actual)
        ok = actual_family in acceptable.get(family, {family})
        result.columns.append({"column": column.name, "expected": column.type, "actual": actual or "(none)",
                               "matches": ok})
        if not ok:
            result.type_mismatches.append({"column": column.name, "expected": column.type,
                                           "actual": actual or "(none)"})
    table = adapter.quote(target.name)
    count_sql = f"SELECT COUNT(*) FROM {table}"  # noqa: S608 - quoted identifier
    sample_sql = f"SELECT * FROM {table}"  # noqa: S608 - quoted identifier
    result.row_count = int(adapter.scalar(count_sql))
    result.sample_rows = [list(r) for r in adapter.query(sample_sql, limit=samples).rows]
    result.queries += [count_sql, f"{sample_sql} LIMIT {samples}"]
    return result


def validate(*, mission, targets: list[TargetSpec], connection) -> list[TableValidation]:
    with adapter_for(connection, mission=mission) as adapter:
        return [validate_target(adapter, target) for target in targets]
