"""Backfill verification: each period of a target whose grain has one (its day, week, month or year; a month when
the spec does not say) is verified against the source (its rows and its measure totals, both sides in one grouped
pass each), and only the periods that differ are rebuilt; targets
without a period are verified whole-table (their rows against the distinct grain keys of the source, and no grain
key twice).

Expected rows of a target for a month = the distinct values of its grain among the partition table's rows of that
month. Grain columns that come from the partition's date (report year/month) are constant within a month and
drop out; the others are matched to the partition table's columns by their source column, else by name. A task
may override this per target with ``config["expected_sql"][TARGET]``: a query returning (month 'YYYY-MM', rows).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from genesis.exceptions import DomainError
from pipeline.dbt.spec import TargetSpec
from pipeline.dbt.sqlgen import PERIOD_KEY, Partition, period_key, period_unit, target_period_sql
from pipeline.quality.reconcile import RELATIVE, _number, compared, reconcile
from pipeline.quality.results import CheckResult

BIG = 10_000_000


def month_expr(adapter, column: str, unit: str = "month") -> str:
    """The key of the period (of ``unit``) a source row's date falls in, as ``target_period_sql`` keys built rows."""
    return period_key(adapter.quote(column), unit, adapter.dialect)


def distinct_keys_sql(key: str, *, unique: bool = False) -> str:
    """The distinct values of the quoted column ``key`` as SELECT DISTINCT and GROUP BY count them, a missing value
    counting as one; over a column the database keeps ``unique``, its values counted without hashing them."""
    counted = f"COUNT({key})" if unique else f"COUNT(DISTINCT {key})"
    return f"{counted} + COALESCE(MAX(CASE WHEN {key} IS NULL THEN 1 ELSE 0 END), 0)"


def month_partitioned(project, targets: list[TargetSpec]) -> list[str]:
    """The targets whose model reads the partition table through the month filter: a month's run builds only that
    month of them, so the months together are the whole target."""
    return [t.name for t in targets
            if "genesis_month_filter(" in project.files.get(f"models/{t.name}.sql", "")]


def grain_source_columns(target: TargetSpec, partition: Partition, partition_columns: list[str]) -> list[str]:
    """The partition table's columns that carry the target's grain within one month."""
    available = {c.upper(): c for c in partition_columns}
    columns = []
    for name in target.grain:
        spec = target.column(name)
        source_column = spec.source_column if spec else ""
        if source_column.upper() == partition.column.upper():
            continue  # derived from the month itself
        match = available.get(source_column.upper()) or available.get(name.upper())
        if match:
            columns.append(match)
    return columns


def expected_sql(adapter, target: TargetSpec, partition: Partition, partition_columns: list[str]) -> str:
    expr = month_expr(adapter, partition.column, period_unit(target))
    keys = [adapter.quote(c) for c in grain_source_columns(target, partition, partition_columns)]
    distinct = ", ".join([f"{expr} AS genesis_month", *keys])
    return (f"SELECT genesis_month, COUNT(*) FROM (SELECT DISTINCT {distinct} "  # noqa: S608 - quoted identifiers
            f"FROM {adapter.quote(partition.table)} WHERE {adapter.quote(partition.column)} IS NOT NULL) "
            f"AS genesis_grain GROUP BY genesis_month")


@dataclass
class WholeResult:
    """A target without a period, verified whole: the rows the source says to expect, the rows built, and the grain
    keys held by more than one row."""

    target: str
    expected: int = 0
    actual: int = 0
    duplicate_keys: int = 0
    expected_sql: str = ""
    error: str = ""

    @property
    def variance(self) -> int:
        return self.actual - self.expected

    @property
    def ok(self) -> bool:
        return not self.error and self.variance == 0 and self.duplicate_keys == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "variance": self.variance, "ok": self.ok}


def split_by_period(project, targets: list[TargetSpec]) -> tuple[list[TargetSpec], list[TargetSpec]]:
    """(targets verified month by month, targets verified whole-table). A target goes month by month when its grain
    has a period (or, for a target whose spec does not say, when it is month-partitioned) and its model reads the
    month-partitioned table through the month filter, so that the months together are the whole target."""
    partitioned = set(month_partitioned(project, targets))
    by_month = [t for t in targets if t.name in partitioned and (t.period is None or bool(t.period))]
    return by_month, [t for t in targets if t not in by_month]


def whole_expected_sql(adapter, target: TargetSpec, bronze: dict[str, str]) -> str:
    """The rows a target without a period must have: the distinct values of its grain in the one source table its
    grain columns come from (counted without hashing when the database keeps that one column unique); else (grain
    from several tables, or unknown) the distinct grain keys of its model's SQL run on the source."""
    columns = [target.column(name) for name in target.grain]
    tables = {c.source_table.upper() for c in columns if c is not None and c.source_table}
    if columns and len(tables) == 1 and all(c is not None and c.source_column for c in columns) \
            and next(iter(tables)) in bronze:
        name = bronze[next(iter(tables))]
        table = adapter.quote(name)
        if len(columns) == 1 and columns[0] is not None:
            declared = {c.upper(): c for c in adapter.unique_columns(name)}
            if key := declared.get(columns[0].source_column.upper()):
                # The database keeps the key unique: its rows that have one are its distinct values.
                return f"SELECT {distinct_keys_sql(adapter.quote(key), unique=True)} FROM {table}"  # noqa: S608
        keys = ", ".join(adapter.quote(c.source_column) for c in columns if c is not None)
        return f"SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM {table}) AS genesis_grain"  # noqa: S608
    keys = ", ".join(adapter.quote(name) for name in target.grain) or "*"
    return f"SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM ({target.sql}) AS q) AS genesis_grain"  # noqa: S608


def verify_whole(source, target_adapter, targets: list[TargetSpec],
                 overrides: dict[str, str] | None = None) -> list[WholeResult]:
    """Verify each target whole-table: expected rows from the source (``overrides[TARGET]``: a query returning one
    count), built rows and grain keys on more than one row from the target."""
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    bronze = {name.upper(): name for name in source.list_tables()}
    results = []
    for target in targets:
        result = WholeResult(target=target.name)
        try:
            result.expected_sql = overrides.get(target.name.upper()) or whole_expected_sql(source, target, bronze)
            result.expected = int(source.scalar(result.expected_sql) or 0)
            table = target_adapter.quote(target.name)
            distinct = None
            if len(target.grain) == 1:
                # The rows and the distinct keys (a missing key counting as one, as GROUP BY groups it) in one
                # pass: as many keys as rows means no key on several rows, and the count of those is not needed.
                key = target_adapter.quote(target.grain[0])
                rows, distinct = target_adapter.query(
                    f"SELECT COUNT(*), {distinct_keys_sql(key)} FROM {table}", limit=1).rows[0]  # noqa: S608
                result.actual = int(rows or 0)
            else:
                result.actual = int(target_adapter.scalar(f"SELECT COUNT(*) FROM {table}") or 0)  # noqa: S608
            if target.grain and distinct != result.actual:
                keys = ", ".join(target_adapter.quote(name) for name in target.grain)
                result.duplicate_keys = int(target_adapter.scalar(
                    f"SELECT COUNT(*) FROM (SELECT {keys} FROM {table} GROUP BY {keys} "  # noqa: S608
                    f"HAVING COUNT(*) > 1) AS genesis_dup") or 0)
        except DomainError as error:
            result.error = error.message
        results.append(result)
    return results


def require_partition(partition: Partition | None) -> Partition:
    if partition is None:
        raise DomainError(
            "The backfill needs a month partition: no date-typed target column names its source column; set "
            "config partition: {table: ..., column: ...}.", field="partition", code="no_partition")
    return partition


@dataclass
class PeriodCheck:
    """One month of one target, verified: the rows and measure totals the source says to expect against those
    built (``measures``: column -> {"expected", "built", "tolerance"})."""

    target: str
    month: str
    expected_rows: int = 0
    rows: int = 0
    measures: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def variance(self) -> dict[str, float]:
        """Built minus expected: ``rows`` and each measure column that differs beyond its tolerance."""
        out: dict[str, float] = {"rows": self.rows - self.expected_rows}
        for column, totals in self.measures.items():
            difference = totals["built"] - totals["expected"]
            if abs(difference) > totals["tolerance"]:
                out[column] = round(difference, 6)
        return out

    @property
    def ok(self) -> bool:
        return all(value == 0 for value in self.variance.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "variance": self.variance, "ok": self.ok}


def period_measures(target: TargetSpec, partition: Partition) -> list[dict]:
    """The target's summed or counted measures whose rows a month holds: those over the partition table or one of
    its child tables (a measure over another table, e.g. a dimension, has no month)."""
    tables = {partition.table.upper(), *(t.upper() for t, _ in partition.children)}
    return [m for m in target.measures if m.get("function") in {"sum", "count"}
            and str(m.get("table", "")).upper() in tables and m.get("column")]


@dataclass
class SourcePeriods:
    """What the source says of every period of one unit: its period keys, the rows of the partition table that fall
    in none, per target the rows to expect per period and the measure totals per period, and the queries run."""

    keys: list[str] = field(default_factory=list)
    undated: int = 0
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    measures: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    row_sql: dict[str, str] = field(default_factory=dict)
    measure_sql: list[str] = field(default_factory=list)


def _aggregate(measure: dict) -> str:
    return f"{'SUM' if measure['function'] == 'sum' else 'COUNT'}({measure['expression']})"


def read_source_periods(adapter, targets: list[TargetSpec], partition: Partition, unit: str = "month",
                        overrides: dict[str, str] | None = None) -> SourcePeriods:
    """Everything the verification needs from the source for the targets of one unit, in as few passes as exact
    answers allow: ONE grouped pass over the partition table gives the periods, the undated rows, the expected rows
    of every target whose grain is at most one of its columns within a period (distinct values, a missing value
    counting as one, as SELECT DISTINCT counts it) and every measure over the partition table; one grouped pass per
    child table gives the measures over it (each child row takes its parent's period; the child table drives the
    join, read in its own order, each parent found by its key); targets with a wider grain, and overrides, one query
    each (as ``expected_counts``)."""
    q = adapter.quote
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    result = SourcePeriods()
    columns = adapter.query(f"SELECT * FROM {q(partition.table)} WHERE 1 = 0", limit=1).columns  # noqa: S608
    single = {t.name: keys for t in targets if t.name.upper() not in overrides
              and len(keys := grain_source_columns(t, partition, columns)) <= 1}
    by_table: dict[str, list[tuple[str, dict]]] = {}
    for target in targets:
        for measure in period_measures(target, partition):
            by_table.setdefault(str(measure["table"]).upper(), []).append((target.name, measure))
    own = by_table.pop(partition.table.upper(), [])
    expr = month_expr(adapter, partition.column, unit)
    # Distinct counts once per key column, however many targets share it.
    key_columns = sorted({keys[0] for keys in single.values() if keys})
    parts = ["COUNT(*)"]
    parts += [distinct_keys_sql(q(c)) for c in key_columns]
    parts += [_aggregate(m) for _, m in own]
    sql = (f"SELECT {expr} AS genesis_month, {', '.join(parts)} "  # noqa: S608 - quoted identifiers
           f"FROM {q(partition.table)} GROUP BY {expr}")
    rows = adapter.query(sql, limit=BIG).rows
    distinct_at = {c: 2 + i for i, c in enumerate(key_columns)}
    measure_at = 2 + len(key_columns)
    for row in rows:
        key = row[0]
        if isinstance(key, str) and re.fullmatch(PERIOD_KEY[unit], key):
            result.keys.append(key)
        else:
            result.undated += int(row[1])
        if key is None:
            continue  # no date: no period's rows, no period's totals
        for name, keys in single.items():
            result.rows.setdefault(name, {})[str(key)] = int(row[distinct_at[keys[0]]]) if keys else 1
        for index, (name, measure) in enumerate(own, start=measure_at):
            result.measures.setdefault(name, {}).setdefault(measure["column"], {})[str(key)] = _number(row[index])
    result.keys.sort()
    for name in single:
        result.rows.setdefault(name, {})
        result.row_sql[name] = sql
    if own:
        result.measure_sql.append(sql)
    for target in targets:
        if target.name in single:
            continue
        target_sql = overrides.get(target.name.upper()) or expected_sql(adapter, target, partition, columns)
        result.row_sql[target.name] = target_sql
        result.rows[target.name] = {str(m): int(n) for m, n in adapter.query(target_sql, limit=BIG).rows}
    children = {t.upper(): (t, c) for t, c in partition.children}
    for table, measures in by_table.items():
        child, column = children[table]
        parent_month = period_key(f"genesis_parent.{q(partition.column)}", unit, adapter.dialect)
        # CROSS JOIN: SQLite keeps the child table as the outer loop (a sequential read of it, each parent found by
        # its key) instead of reading the child rows in the parent's date order (a random read of every row);
        # PostgreSQL and DuckDB plan it as the inner join it is.
        rows_sql = (f"SELECT genesis_child.*, {parent_month} AS genesis_month "  # noqa: S608
                    f"FROM {q(child)} AS genesis_child CROSS JOIN {q(partition.table)} AS genesis_parent "
                    f"WHERE genesis_child.{q(column)} = genesis_parent.{q(partition.key)} "
                    f"AND genesis_parent.{q(partition.column)} IS NOT NULL")
        child_sql = (f"SELECT genesis_month, {', '.join(_aggregate(m) for _, m in measures)} "  # noqa: S608
                     f"FROM ({rows_sql}) AS genesis_rows GROUP BY genesis_month")
        result.measure_sql.append(child_sql)
        for row in adapter.query(child_sql, limit=BIG).rows:
            for index, (name, measure) in enumerate(measures, start=1):
                result.measures.setdefault(name, {}).setdefault(measure["column"], {})[str(row[0])] = \
                    _number(row[index])
    return result


def built_totals(adapter, target: TargetSpec, period_sql: str, measures: list[dict]
                 ) -> tuple[dict[str, tuple[int, dict[str, float]]], int, str]:
    """The built target in one grouped pass: {month: (rows, {column: total})}, the rows without a month, the SQL.
    Raises DomainError when the table cannot be read."""
    pattern = PERIOD_KEY[period_unit(target)]
    columns = [m["column"] for m in measures]
    parts = "".join(f", SUM({adapter.quote(c)})" for c in columns)
    sql = (f"SELECT {period_sql} AS genesis_month, COUNT(*){parts} "  # noqa: S608 - quoted identifiers
           f"FROM {adapter.quote(target.name)} GROUP BY {period_sql}")
    built, undated = {}, 0
    for row in adapter.query(sql, limit=BIG).rows:
        if not isinstance(row[0], str) or not re.fullmatch(pattern, row[0]):
            undated += int(row[1])  # no date, or not one with a year and month: as in the source, no month
            continue
        built[str(row[0])] = (int(row[1]), {c: _number(v) for c, v in zip(columns, row[2:], strict=True)})
    return built, undated, sql


def period_built_totals(adapter, target: TargetSpec, period_sql: str, measures: list[dict], key: str
                        ) -> tuple[tuple[int, dict[str, float]], str]:
    """One period of the built target, right after its build: (rows, {column: total}) of the rows whose period
    key is ``key``, and the SQL; the same key and totals as ``built_totals`` gives that period."""
    if not re.fullmatch(PERIOD_KEY[period_unit(target)], key):
        raise DomainError(f"{key!r} is not a {period_unit(target)} key.", field="period")
    columns = [m["column"] for m in measures]
    parts = "".join(f", SUM({adapter.quote(c)})" for c in columns)
    sql = (f"SELECT COUNT(*){parts} FROM {adapter.quote(target.name)} "  # noqa: S608 - quoted, key checked above
           f"WHERE {period_sql} = '{key}'")
    row = adapter.query(sql, limit=1).rows[0]
    return (int(row[0]), {c: _number(v) for c, v in zip(columns, row[1:], strict=True)}), sql


def compare_periods(target: TargetSpec, months: list[str], expected_rows: dict[str, int],
                    expected_measures: dict[str, dict[str, float]], measures: list[dict],
                    built: dict[str, tuple[int, dict[str, float]]]) -> list[PeriodCheck]:
    """A check per month of ``months`` plus every other month the target holds (rows the source has no month for).
    Measures compare within the reconciliation's tolerance: relative, plus half a unit of the last kept decimal per
    row when the column is rounded row by row."""
    checks = []
    for month in sorted(set(months) | set(built)):
        rows, sums = built.get(month, (0, {}))
        check = PeriodCheck(target=target.name, month=month, expected_rows=expected_rows.get(month, 0), rows=rows)
        for measure in measures:
            column = measure["column"]
            want = expected_measures.get(column, {}).get(month, 0.0)
            tolerance = RELATIVE * max(1.0, abs(want))
            if measure.get("round") is not None:
                tolerance += 0.5 * 10 ** -int(measure["round"]) * max(rows, check.expected_rows)
            check.measures[column] = {"expected": want, "built": sums.get(column, 0.0), "tolerance": tolerance}
        checks.append(check)
    return checks


def reconcile_held_periods(target_adapter, source_adapter, targets: list[TargetSpec], partition: Partition, *,
                           every_period: bool = False) -> list[CheckResult]:
    """``reconcile`` of incremental targets, whose build loads their latest period and whose backfill loads the
    others (each verified there, and any period missing found): each measure over a period, summed over the periods
    the target holds now, against the source's total over the same periods; the source read in one grouped pass per
    unit for all of them (``read_source_periods``), each target in one. A row of the target without a period fails
    it (the source has nothing to match it with). A measure over a table without the period is reconciled
    whole-table, as a table target's are. ``every_period`` (once the history is built, e.g. a scheduled refresh): a
    period of the source that the target lacks fails it, named."""
    periodic = {t.name: period_measures(t, partition) for t in targets if target_period_sql(t, partition) is not None}
    sources: dict[str, SourcePeriods] = {}
    for unit in sorted({period_unit(t) for t in targets if periodic.get(t.name)}):
        sources[unit] = read_source_periods(source_adapter, [t for t in targets if periodic.get(t.name)
                                                             and period_unit(t) == unit], partition, unit)
    results = []
    for target in targets:
        measures = periodic.get(target.name) or []
        others = [m for m in target.measures if m not in measures]
        whole = reconcile(target_adapter, source_adapter, replace(target, measures=others)) if others else []
        if measures:
            results += _reconcile_held(target_adapter, target, partition, measures, sources[period_unit(target)],
                                       every_period=every_period)
        results += whole
    return results


def _reconcile_held(target_adapter, target: TargetSpec, partition: Partition, measures: list[dict],
                    source: SourcePeriods, *, every_period: bool) -> list[CheckResult]:
    """``reconcile_held_periods`` of one target's measures over a period, the source's side already read."""
    built, undated, target_sql = built_totals(target_adapter, target, target_period_sql(target, partition) or "",
                                              measures)
    held = sorted(built)
    if not held:
        latest = source.keys[-1] if source.keys else None
        return [CheckResult(check="reconcile", target=target.name, column=measure["column"],
                            passed=latest is None and not undated, sql=[target_sql, *source.measure_sql],
                            detail=(f"the target holds no period; its build loads the latest ({latest})"
                                    if latest else "neither the target nor the source holds a period")
                            + (f"; {undated} row(s) of the target have no period" if undated else ""))
                for measure in measures]
    span = f"{held[0]} to {held[-1]}" if len(held) > 1 else held[0]
    rows = sum(count for count, _ in built.values())
    lacking = sorted(set(source.keys) - set(held)) if every_period else []
    results = []
    for measure in measures:
        column = measure["column"]
        expected = source.measures.get(target.name, {}).get(column, {})
        totals = compared(measure, sum(built[p][1][column] for p in held), rows,
                          sum(expected.get(p, 0.0) for p in held), [target_sql, *source.measure_sql])
        detail = (f"over the {len(held)} period(s) the target holds ({span}; the build loads the latest, the "
                  f"backfill the others): {totals.detail}")
        if undated:
            detail += f"; {undated} row(s) of the target have no period"
        if lacking:
            detail += (f"; the source has {len(lacking)} period(s) the target lacks ({', '.join(lacking[:6])}"
                       f"{', ...' if len(lacking) > 6 else ''}): a build loads the latest only, so a period that "
                       "arrived between two refreshes is missing until the backfill builds it")
        results.append(CheckResult(check="reconcile", target=target.name, column=column,
                                   passed=totals.passed and not undated and not lacking, detail=detail,
                                   sql=totals.sql))
    return results
