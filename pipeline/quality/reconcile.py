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


def _aggregate(measure: dict) -> str:
    function = {"sum": "SUM", "count": "COUNT"}[measure["function"]]
    return f"{function}({measure['expression']})"


def source_total_sql(source_adapter, measure: dict) -> str:
    table = source_adapter.quote(measure["table"])
    return f"SELECT {_aggregate(measure)} FROM {table}"  # noqa: S608 - platform-written SQL


def _key(measure: dict) -> tuple[str, str, str]:
    return measure["table"], measure["function"], measure["expression"]


def source_totals(source_adapter, measures: list[dict]) -> dict[tuple[str, str, str], tuple[object, str]]:
    """Each measure's source total and the query that read it, by (table, function, expression): one query per
    source table, every measure over that table summed in the same pass."""
    by_table: dict[str, list[tuple[str, str, str]]] = {}
    for measure in measures:
        keys = by_table.setdefault(measure["table"], [])
        if _key(measure) not in keys:
            keys.append(_key(measure))
    found: dict[tuple[str, str, str], tuple[object, str]] = {}
    for table, keys in by_table.items():
        totals = ", ".join(_aggregate({"function": function, "expression": expression})
                           for _, function, expression in keys)
        sql = f"SELECT {totals} FROM {source_adapter.quote(table)}"  # noqa: S608 - platform-written SQL
        row = source_adapter.query(sql, limit=1).rows[0]
        found.update({key: (row[position], sql) for position, key in enumerate(keys)})
    return found


def _measured(measures: list[dict]) -> list[dict]:
    return [m for m in measures if m.get("function") in {"sum", "count"}]


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


def target_aggregates(target_adapter, target: TargetSpec) -> list[str]:
    """What ``reconcile`` reads from the target in its one pass: each measure's SUM, then COUNT(*) (empty when the
    target has no measure); another pass over the target (the row checks') may compute them alongside its own."""
    wanted = _measured(target.measures)
    if not wanted:
        return []
    return [f"SUM({target_adapter.quote(m['column'])})" for m in wanted] + ["COUNT(*)"]


def reconcile(target_adapter, source_adapter, target: TargetSpec, *,
              totals: dict[tuple[str, str, str], tuple[object, str]] | None = None,
              target_row: tuple | list | None = None) -> list[CheckResult]:
    """One ``reconcile`` result per summed or counted measure of ``target``: one pass over the target for all of
    its measures, one pass over each source table for all the measures it feeds (``totals``, when given, holds the
    source totals already read for several targets at once; ``target_row``, the values of ``target_aggregates``
    already read from the target in another pass)."""
    wanted = _measured(target.measures)
    if not wanted:
        return []
    if totals is None or any(_key(m) not in totals for m in wanted):
        totals = source_totals(source_adapter, wanted)
    aggregates = ", ".join(target_aggregates(target_adapter, target))
    target_sql = f"SELECT {aggregates} FROM {target_adapter.quote(target.name)}"  # noqa: S608 - quoted names
    row = target_row if target_row is not None else target_adapter.query(target_sql, limit=1).rows[0]
    results = []
    for index, measure in enumerate(wanted):
        source_total, source_sql = totals[_key(measure)]
        compared_totals = compared(measure, row[index], row[-1], source_total, [target_sql, source_sql])
        results.append(CheckResult(check="reconcile", target=target.name, column=measure["column"],
                                   passed=compared_totals.passed, detail=compared_totals.detail,
                                   sql=compared_totals.sql))
    return results


def reconcile_targets(target_adapter, source_adapter, targets: list[TargetSpec],
                      target_rows: dict[str, tuple | list] | None = None) -> list[CheckResult]:
    """``reconcile`` of each target, the source tables read once for all of them (``target_rows``: the targets'
    ``target_aggregates`` already read, by target name)."""
    totals = source_totals(source_adapter, [m for t in targets for m in _measured(t.measures)])
    return [r for target in targets
            for r in reconcile(target_adapter, source_adapter, target, totals=totals,
                               target_row=(target_rows or {}).get(target.name))]


def reconcile_select(adapter, sql: str, measures: list[dict]) -> list[Totals]:
    """The reconciliation of ``measures`` (each with its ``column``) before anything is built: the target's totals
    summed over the mapping's SELECT ``sql``, run on the source ``adapter``, against each measured table's own
    total. One query for the target's totals, one per measured table for the source's."""
    wanted = _measured(measures)
    if not wanted:
        return []
    sums = ", ".join(f"SUM(q.{adapter.quote(m['column'])})" for m in wanted)
    target_sql = f"SELECT {sums}, COUNT(*) FROM ({sql}) AS q"  # noqa: S608 - platform-written SQL, quoted names
    row = adapter.query(target_sql, limit=1).rows[0]
    totals = source_totals(adapter, wanted)
    results = []
    for index, measure in enumerate(wanted):
        source_total, source_sql = totals[_key(measure)]
        results.append(compared(measure, row[index], row[-1], source_total, [target_sql, source_sql]))
    return results


def reconcile_mapping(source_adapter, target: TargetSpec) -> list[CheckResult]:
    """``reconcile``'s results before anything is built: the target's totals read from its mapping SQL run on the
    source as it is now (how a mission reusing another's approved mapping proves it still holds on its source)."""
    return [CheckResult(check="reconcile", target=target.name, column=t.column, passed=t.passed, detail=t.detail,
                        sql=t.sql) for t in reconcile_select(source_adapter, target.sql, target.measures)]
