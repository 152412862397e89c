"""Reconciliation checks generated from the approved mapping specs: for each summed or counted measure of a target,
the target's total must equal the source's total over the same rows.

The mapping spec records, per measure column, the source table it aggregates and the expression over that table's
own columns (with the spec's ``where`` filter and scale folded in). The source's total is computed on that table
alone, never through the mapping's joins: a join on the wrong key (rows of one table matched to another table's
rows by a coincident id) drops or repeats rows, and the totals then differ. A mismatch fails the check and names
the target, the column and both totals.

The same comparison proves a language model's mapping proposal before anyone sees it (``reconcile_select``): there
the target's totals are read from the mapping's SELECT on the source, since nothing is built yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from pipeline.dbt.spec import TargetSpec
from pipeline.quality.results import CheckResult

# Totals are compared as numbers: equal within this relative tolerance (floating-point sums), plus half a unit of
# the last kept decimal per target row when the column is rounded row by row.
RELATIVE = 1e-9


def _number(value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, Decimal):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def source_total_sql(source_adapter, measure: dict) -> str:
    function = {"sum": "SUM", "count": "COUNT"}[measure["function"]]
    table = source_adapter.quote(measure["table"])
    return f"SELECT {function}({measure['expression']}) FROM {table}"  # noqa: S608 - platform-written SQL


@dataclass
class Totals:
    """One measure's target total against its source total, with the figures kept."""

    column: str
    target_total: float
    source_total: float
    target_rows: int
    passed: bool
    detail: str
    sql: list[str] = field(default_factory=list)


def compared(measure: dict, target_total, rows, source_total, sql: list[str]) -> Totals:
    got, want = _number(target_total), _number(source_total)
    tolerance = RELATIVE * max(1.0, abs(want))
    if measure.get("round") is not None:
        tolerance += 0.5 * 10 ** -int(measure["round"]) * int(rows or 0)
    passed = abs(got - want) <= tolerance
    what = measure.get("describe") or f"{measure['function'].upper()}({measure['expression']})"
    detail = (f"target total {got:,.6g} equals the source total {want:,.6g} ({what})" if passed else
              f"target total {got:,.6g} but source total {want:,.6g} ({what}): the target "
              f"{'misses' if got < want else 'repeats'} source rows; a join on the wrong key does this")
    return Totals(column=measure["column"], target_total=got, source_total=want, target_rows=int(rows or 0),
                  passed=passed, detail=detail, sql=sql)


def reconcile(target_adapter, source_adapter, target: TargetSpec) -> list[CheckResult]:
    """One ``reconcile`` result per summed or counted measure of ``target``."""
    results = []
    for measure in target.measures:
        if measure.get("function") not in {"sum", "count"}:
            continue
        column = measure["column"]
        table = target_adapter.quote(target.name)
        target_sql = (f"SELECT SUM({target_adapter.quote(column)}), COUNT(*) "  # noqa: S608 - quoted identifiers
                      f"FROM {table}")
        target_total, rows = target_adapter.query(target_sql, limit=1).rows[0]
        source_sql = source_total_sql(source_adapter, measure)
        source_total = source_adapter.query(source_sql, limit=1).rows[0][0]
        totals = compared(measure, target_total, rows, source_total, [target_sql, source_sql])
        results.append(CheckResult(check="reconcile", target=target.name, column=column, passed=totals.passed,
                                    detail=totals.detail, sql=totals.sql))
    return results


def reconcile_select(adapter, sql: str, measures: list[dict]) -> list[Totals]:
    """The reconciliation of ``measures`` (each with its ``column``) before anything is built: the target's totals
    summed over the mapping's SELECT ``sql``, run on the source ``adapter``, against each measured table's own
    total. One query for the target's totals, one per measure for the source's."""
    wanted = [m for m in measures if m.get("function") in {"sum", "count"}]
    if not wanted:
        return []
    sums = ", ".join(f"SUM(q.{adapter.quote(m['column'])})" for m in wanted)
    target_sql = f"SELECT {sums}, COUNT(*) FROM ({sql}) AS q"  # noqa: S608 - platform-written SQL, quoted names
    row = adapter.query(target_sql, limit=1).rows[0]
    results = []
    for index, measure in enumerate(wanted):
        source_sql = source_total_sql(adapter, measure)
        source_total = adapter.query(source_sql, limit=1).rows[0][0]
        results.append(compared(measure, row[index], row[-1], source_total, [target_sql, source_sql]))
    return results


def reconcile_mapping(source_adapter, target: TargetSpec) -> list[CheckResult]:
    """``reconcile``'s results before anything is built: the target's totals read from its mapping SQL run on the
    source as it is now (how a mission reusing another's approved mapping proves it still holds on its source)."""
    return [CheckResult(check="reconcile", target=target.name, column=t.column, passed=t.passed, detail=t.detail,
                        sql=t.sql) for t in reconcile_select(source_adapter, target.sql, target.measures)]
