"""Data-quality checks over the built targets: non-null keys, type conformity, referential integrity against the
bronze tables, and uniqueness of each target's grain. Each result carries the failing row count, sample offending
keys and the SQL it ran (the handoff ships those queries)."""

from __future__ import annotations

from agents.access import adapter_for
from pipeline.dbt.spec import TargetSpec, type_family
from pipeline.quality.reconcile import reconcile
from pipeline.quality.results import SAMPLE, CheckResult

BIG = 50_000_000


def _keys_sql(adapter, target: TargetSpec) -> str:
    return ", ".join(adapter.quote(g) for g in (target.grain or [c.name for c in target.columns[:1]]))


def _key(row: tuple):
    return row[0] if len(row) == 1 else list(row)


_SQLITE_BAD_TYPE = {
    "integer": "typeof({c}) NOT IN ('integer', 'null')",
    "numeric": "typeof({c}) NOT IN ('integer', 'real', 'null')",
    "text": "typeof({c}) NOT IN ('text', 'null')",
    "date": "{c} IS NOT NULL AND (typeof({c}) <> 'text' OR {c} NOT GLOB "
            "'[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]' OR date({c}) IS NULL OR date({c}) <> {c})",
    "timestamp": "{c} IS NOT NULL AND datetime({c}) IS NULL",
    "boolean": "{c} IS NOT NULL AND {c} NOT IN (0, 1)",
}


def _row_conditions(adapter, target: TargetSpec) -> list[tuple[str, str, str, str]]:
    """(check, column, condition a failing row meets, detail) of the row-by-row checks: non-null keys, and on
    SQLite (which stores any value in any column) each value's storage class."""
    conditions = [("not_null", column, f"{adapter.quote(column)} IS NULL", "") for column in target.key_columns]
    if adapter.engine == "sqlite":
        for column in target.columns:
            bad = _SQLITE_BAD_TYPE.get(column.family)
            if bad is not None:
                conditions.append(("type", column.name, bad.format(c=adapter.quote(column.name)),
                                   f"expected {column.type} ({column.family})"))
    return conditions


def check_rows(adapter, target: TargetSpec) -> list[CheckResult]:
    """The row-by-row checks, counted in one pass over the target; each result keeps the standalone query that
    counts its own failing rows (the handoff ships those) and samples the keys of failing rows."""
    conditions = _row_conditions(adapter, target)
    if not conditions:
        return []
    table = adapter.quote(target.name)
    sums = ", ".join(f"COALESCE(SUM(CASE WHEN {where} THEN 1 ELSE 0 END), 0)" for _, _, where, _ in conditions)
    counts = adapter.query(f"SELECT {sums} FROM {table}", limit=1).rows[0]  # noqa: S608 - quoted identifiers
    results = []
    for (check, column, where, detail), failing in zip(conditions, counts, strict=True):
        count_sql = f"SELECT COUNT(*) FROM {table} WHERE {where}"  # noqa: S608 - quoted identifiers
        result = CheckResult(check=check, target=target.name, column=column, passed=not failing,
                             failing_rows=int(failing), detail=detail, sql=[count_sql])
        if failing:
            sample_sql = f"SELECT {_keys_sql(adapter, target)} FROM {table} WHERE {where}"  # noqa: S608
            result.sample_keys = [_key(r) for r in adapter.query(sample_sql, limit=SAMPLE).rows]
            result.sql.append(sample_sql)
        results.append(result)
    return results


def check_declared_types(adapter, target: TargetSpec) -> list[CheckResult]:
    """PostgreSQL and DuckDB enforce each column's type: its declared type is compared with the spec's."""
    if adapter.engine not in {"postgresql", "duckdb"}:
        return []

    table = adapter.quote(target.name)
    declared = {c.name.upper(): type_family(c.declared_type) for c in adapter._columns(target.name)}
    results = []
    for column in target.columns:
        family = column.family
        actual = declared.get(column.name.upper(), "missing")
        ok = actual == family or (family == "numeric" and actual == "integer")
        count_sql = f"SELECT COUNT({adapter.quote(column.name)}) FROM {table}"  # noqa: S608 - quoted identifiers
        failing = 0 if ok else int(adapter.scalar(count_sql)) if actual != "missing" else 0
        results.append(CheckResult(check="type", target=target.name, column=column.name, passed=ok,
                                   failing_rows=failing, sql=[count_sql],
                                   detail=f"expected {column.type} ({family}), column is {actual}"))
    return results


def check_grain(adapter, target: TargetSpec) -> list[CheckResult]:
    if not target.grain:
        return []
    table = adapter.quote(target.name)
    keys = _keys_sql(adapter, target)
    sql = (f"SELECT {keys}, COUNT(*) FROM {table} GROUP BY {keys} "  # noqa: S608 - quoted identifiers
           f"HAVING COUNT(*) > 1")
    rows = adapter.query(sql, limit=BIG).rows
    failing = sum(int(r[-1]) for r in rows)
    return [CheckResult(check="unique_grain", target=target.name, column=", ".join(target.grain),
                        passed=not rows, failing_rows=failing,
                        sample_keys=[_key(r[:-1]) for r in rows[:SAMPLE]],
                        detail=f"{len(rows):,} duplicated key(s)" if rows else "", sql=[sql])]


def check_reference(target_adapter, source_adapter, target: TargetSpec, column: str, ref_table: str,
                    ref_column: str) -> CheckResult:
    """Every value of ``target.column`` must exist in the bronze ``ref_table.ref_column``. Both sides are read
    through their own connections (they may be different databases) and compared here."""
    table, col = target_adapter.quote(target.name), target_adapter.quote(column)
    values_sql = (f"SELECT {col}, COUNT(*) FROM {table} WHERE {col} IS NOT NULL "  # noqa: S608
                  f"GROUP BY {col}")
    counts = {row[0]: int(row[1]) for row in target_adapter.query(values_sql, limit=BIG).rows}
    ref_sql = (f"SELECT DISTINCT {source_adapter.quote(ref_column)} "  # noqa: S608 - quoted identifiers
               f"FROM {source_adapter.quote(ref_table)}")
    known = {row[0] for row in source_adapter.query(ref_sql, limit=BIG).rows}
    known_text = {str(k) for k in known}
    missing = sorted((v for v in counts if v not in known and str(v) not in known_text), key=str)
    failing = sum(counts[v] for v in missing)
    result = CheckResult(check="references", target=target.name, column=column, passed=not missing,
                         failing_rows=failing, detail=f"{ref_table}.{ref_column}", sql=[values_sql, ref_sql])
    if missing:
        result.detail += f"; missing {ref_table}.{ref_column} values: " + ", ".join(str(m) for m in missing[:SAMPLE])
        result.detail += f" ({len(missing)} distinct)" if len(missing) > SAMPLE else ""
        marks = ", ".join(_literal(m) for m in missing[:SAMPLE])
        sample_sql = (f"SELECT {_keys_sql(target_adapter, target)} FROM {table} "  # noqa: S608
                      f"WHERE {col} IN ({marks})")
        result.sample_keys = [_key(r) for r in target_adapter.query(sample_sql, limit=SAMPLE).rows]
        result.sql.append(sample_sql)
    return result


def _literal(value) -> str:
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def infer_references(targets: list[TargetSpec], bronze_first_columns: dict[str, str],
                     declared: dict[str, str] | None = None) -> list[tuple[TargetSpec, str, str, str]]:
    """(target, column, bronze table, bronze column) pairs to check. Declared in the spec or config first;
    otherwise a target column named like the key (first column) of a bronze table other than its own source."""
    declared = {k.upper(): v for k, v in (declared or {}).items()}
    pairs = []
    for target in targets:
        for column in target.columns:
            ref = column.references or declared.get(f"{target.name}.{column.name}".upper(), "")
            if not ref:
                for table, first in bronze_first_columns.items():
                    if first.upper() == column.name.upper() and table.upper() != column.source_table.upper():
                        ref = f"{table}.{first}"
                        break
            if ref:
                ref_table, ref_column = ref.split(".", 1)
                pairs.append((target, column.name, ref_table, ref_column))
    return pairs


def run_checks(*, mission, targets: list[TargetSpec], target_connection, source_connection,
               references: dict[str, str] | None = None) -> list[CheckResult]:
    results: list[CheckResult] = []
    with adapter_for(target_connection, mission=mission) as target_adapter, \
            adapter_for(source_connection, mission=mission) as source_adapter:
        bronze = source_adapter.introspect()
        first_columns = {t.name: t.columns[0].name for t in bronze if t.columns}
        for target in targets:
            results += check_rows(target_adapter, target)
            results += check_declared_types(target_adapter, target)
            results += check_grain(target_adapter, target)
        for target, column, ref_table, ref_column in infer_references(targets, first_columns, references):
            results.append(check_reference(target_adapter, source_adapter, target, column, ref_table, ref_column))
        for target in targets:
            results += reconcile(target_adapter, source_adapter, target)
    return results
