"""Data-quality checks over the built targets: non-null keys, type conformity, referential integrity against the
bronze tables, and uniqueness of each target's grain. Each result carries the failing row count, sample offending
keys and the SQL it ran (the handoff ships those queries)."""

from __future__ import annotations

import heapq
import re
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

from agents.access import adapter_for
from agents.connectors.base import NUMBER_FAMILIES, ConnectorError
from pipeline.dbt.spec import TargetSpec, type_family
from pipeline.dbt.sqlgen import Partition
from pipeline.quality.backfill import reconcile_held_periods
from pipeline.quality.reconcile import reconcile_targets, target_aggregates
from pipeline.quality.results import SAMPLE, CheckResult


def _keys_sql(adapter, target: TargetSpec) -> str:
    return ", ".join(adapter.quote(g) for g in (target.grain or [c.name for c in target.columns[:1]]))


def _key(row: tuple):
    return row[0] if len(row) == 1 else list(row)


_SQLITE_BAD_TYPE = {
    "integer": "typeof({c}) NOT IN ('integer', 'null')",
    "numeric": "typeof({c}) NOT IN ('integer', 'real', 'null')",
    "text": "typeof({c}) NOT IN ('text', 'null')",
    # date() writes YYYY-MM-DD only: a text equal to its own date() has that form (half the time of a GLOB first).
    "date": "{c} IS NOT NULL AND (typeof({c}) <> 'text' OR date({c}) IS NOT {c})",
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


def check_rows(adapter, target: TargetSpec, *, also: list[str] | None = None) -> tuple[list[CheckResult], list]:
    """The row-by-row checks, counted in one pass over the target; each result keeps the standalone query that
    counts its own failing rows (the handoff ships those) and samples the keys of failing rows. ``also``: more
    aggregates to compute in the same pass (the reconciliation's totals), returned second."""
    table = adapter.quote(target.name)
    conditions = _row_conditions(adapter, target)
    results: list[CheckResult] = []
    also = also or []
    if not conditions and not also:
        return results, []
    sums = [f"COALESCE(SUM(CASE WHEN {where} THEN 1 ELSE 0 END), 0)" for _, _, where, _ in conditions]
    row = adapter.query(f"SELECT {', '.join(sums + also)} FROM {table}",  # noqa: S608 - quoted identifiers
                        limit=1).rows[0]
    counts, extra = row[:len(conditions)], list(row[len(conditions):])
    for (check, column, where, detail), failing in zip(conditions, counts, strict=True):
        count_sql = f"SELECT COUNT(*) FROM {table} WHERE {where}"  # noqa: S608 - quoted identifiers
        result = CheckResult(check=check, target=target.name, column=column, passed=not failing,
                             failing_rows=int(failing), detail=detail, sql=[count_sql])
        if failing:
            sample_sql = f"SELECT {_keys_sql(adapter, target)} FROM {table} WHERE {where}"  # noqa: S608
            result.sample_keys = [_key(r) for r in adapter.query(sample_sql, limit=SAMPLE).rows]
            result.sql.append(sample_sql)
        results.append(result)
    return results, extra


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


def _grain_sql(adapter, target: TargetSpec) -> tuple[str, str]:
    table = adapter.quote(target.name)
    keys = _keys_sql(adapter, target)
    groups = f"SELECT {keys}, COUNT(*) AS n FROM {table} GROUP BY {keys} HAVING COUNT(*) > 1"  # noqa: S608
    return groups, f"SELECT COUNT(*), COALESCE(SUM(d.n), 0) FROM ({groups}) AS d"  # noqa: S608 - quoted names


def check_grain(adapter, target: TargetSpec) -> list[CheckResult]:
    """Each grain key once: the duplicated keys and their rows are counted in SQL; only a sample of the keys is
    fetched, and only when there are any."""
    if not target.grain:
        return []
    groups, count_sql = _grain_sql(adapter, target)
    duplicated, failing = adapter.query(count_sql, limit=1).rows[0]
    duplicated, failing = int(duplicated or 0), int(failing or 0)
    result = CheckResult(check="unique_grain", target=target.name, column=", ".join(target.grain),
                         passed=not duplicated, failing_rows=failing,
                         detail=f"{duplicated:,} duplicated key(s)" if duplicated else "", sql=[count_sql])
    if duplicated:
        result.sample_keys = [_key(r[:-1]) for r in adapter.query(groups, limit=SAMPLE).rows]
        result.sql.append(groups)
    return [result]


# When the two sides cannot be joined in one SQL statement: the target's distinct values read per query (a keyset
# page; without an index on the column each page scans the target again, so pages are large but bounded), and the
# target values looked up in the source per query (an IN list).
PAGE = 200_000
CHUNK = 2_000


def same_database(target_adapter, source_adapter) -> bool:
    """Whether both connections reach the same database, so one SQL statement can read both sides."""
    if target_adapter.connection == source_adapter.connection:
        return True
    if target_adapter.engine != source_adapter.engine:
        return False
    if target_adapter.engine == "sqlite":
        return target_adapter.path == source_adapter.path
    # The same location and credentials (a PostgreSQL location carries its schema search path).
    return all(str(getattr(target_adapter.connection, attribute, "") or "")
               == str(getattr(source_adapter.connection, attribute, "") or "") for attribute in ("location", "secret"))


def _reference_in_sql(target_adapter, source_adapter, table: str, col: str, ref_table: str, ref_column: str):
    """The anti-join in the target's database: (failing rows, distinct missing values, a sample of them, the SQL),
    or None when the source is not reachable from there."""
    ref = source_adapter.quote(ref_table)
    with ExitStack() as stack:
        if same_database(target_adapter, source_adapter):
            def run(sql: str, limit: int) -> list:
                return target_adapter.query(sql, limit=limit).rows
        elif (target_adapter.engine == source_adapter.engine == "sqlite" and target_adapter.path
              and source_adapter.path and source_adapter.path.is_file()):
            ref = f"genesis_source.{ref}"
            stack.enter_context(target_adapter.attached(source_adapter, "genesis_source"))

            def run(sql: str, limit: int) -> list:
                return target_adapter.run_internal(sql, limit=limit).rows
        else:
            return None
        # The target's distinct values first (one sort), then each looked up once: on SQLite, probing the source's
        # key in the target's row order (random) was two to three times slower at 1M rows.
        values = (f"SELECT {col} AS v, COUNT(*) AS n FROM {table} "  # noqa: S608 - quoted identifiers
                  f"WHERE {col} IS NOT NULL GROUP BY {col}")
        anti = (f"FROM ({values}) AS g WHERE NOT EXISTS "  # noqa: S608 - quoted identifiers
                f"(SELECT 1 FROM {ref} AS s WHERE s.{source_adapter.quote(ref_column)} = g.v)")
        count_sql = f"SELECT COALESCE(SUM(g.n), 0), COUNT(*) {anti}"
        failing, distinct = (int(v or 0) for v in run(count_sql, 1)[0])
        sql, missing = [count_sql], []
        if failing:
            values_sql = f"SELECT g.v {anti} ORDER BY g.v"
            missing = [r[0] for r in run(values_sql, SAMPLE)]
            sql.append(values_sql)
        return failing, distinct, missing, sql


def _target_values(target_adapter, table: str, col: str) -> tuple[str, Iterator[list]]:
    """The target's distinct non-null values with their row counts, PAGE at a time in the target's own order (a
    keyset: each page starts after the previous page's last value), and the paging query as shipped. Only the
    target's database compares the values here: its ``ORDER BY`` and ``>`` use the same collation and the same
    ordering across types (on SQLite numbers before text before blobs; ``literal`` keeps each value's storage class),
    so no ordering has to agree with the source's engine."""
    def page_sql(after: str) -> str:
        return (f"SELECT {col}, COUNT(*) FROM {table} WHERE {col} IS NOT NULL{after} "  # noqa: S608 - quoted names
                f"GROUP BY {col} ORDER BY {col} LIMIT {PAGE}")

    def pages() -> Iterator[list]:
        after = ""
        last: list = []
        while True:
            rows = target_adapter.query(page_sql(after), limit=PAGE).rows
            # A bound that does not read back exactly (a value the driver rounds) can bring the previous last value
            # back: it is skipped; a full page with nothing else stops the check rather than loop or pass values
            # it never read.
            fresh = rows[1:] if rows and last and rows[0][0] == last[0] else rows
            if len(rows) == PAGE and not fresh:
                raise ConnectorError(f"The values of {col} cannot be read a page at a time: {last[0]!r} does not "
                                     "read back as itself.", field="sql")
            if fresh:
                yield fresh
            if len(rows) < PAGE:
                return
            last = fresh[-1]
            after = f" AND {col} > {target_adapter.literal(last[0])}"

    return page_sql(f" AND {col} > <the previous page's last value>"), pages()


def _reference_in_chunks(target_adapter, source_adapter, table: str, col: str, ref_table: str, ref_column: str,
                         family: str):
    """The comparison across two databases, in bounded memory: the target's distinct values (with their row counts)
    are read PAGE at a time in the target's keyset order and looked up in the source CHUNK at a time (an IN list over
    the source's key, which needs no ordering shared by the two engines), so no query reads a whole column into
    Python; only the counts and the SAMPLE first missing values (by text) are kept. A value is found when the source
    says one of its rows equals the value's literal (``lookup_literal`` for the source column's family): each lookup
    returns the positions of the literals it matched, so the source's own equality decides, not Python's ``==`` on
    the values it returns (a DuckDB FLOAT's 1.1 reads back as 1.100000023841858, an integer column's 7 is not the text
    '007' it matched). A value with no literal (a text that reads as no number, looked up in numbers) is missing."""
    values_sql, pages = _target_values(target_adapter, table, col)
    failing = distinct = 0
    first: list = []
    looked_up = False
    chunks = (page[start:start + CHUNK] for page in pages for start in range(0, len(page), CHUNK))
    # The lookups are the platform's own SQL (quoted identifiers, literals written by the source adapter's
    # lookup_literal for the source column's family) on one table: that table is checked against the allowed tables
    # once, and each lookup runs without the parse-level guard, which would parse thousands of literals per query (two
    # thirds of the time at 200k values).
    source_adapter.check_tables([ref_table])
    for chunk in chunks:
        literals = [source_adapter.lookup_literal(value, family) for value, _ in chunk]
        # Each literal once: two target values can be written alike (the texts '7' and '007' looked up in numbers).
        marks = sorted({literal for literal in literals if literal is not None})
        matched: set[str] = set()
        if marks:
            lookup_sql = source_adapter.matching_literals_sql(ref_table, ref_column, marks)
            matched = {marks[row[0]] for row in source_adapter.run_internal(lookup_sql, limit=len(marks)).rows}
            looked_up = True
        missing = [(value, int(n)) for (value, n), literal in zip(chunk, literals, strict=True)
                   if literal not in matched]
        failing += sum(n for _, n in missing)
        distinct += len(missing)
        first = heapq.nsmallest(SAMPLE, first + [v for v, _ in missing], key=str)
    sql = [values_sql]
    if looked_up:  # the lookup as shipped: its literals are the target's values, CHUNK at a time
        shown = source_adapter.matching_literals_sql(ref_table, ref_column,
                                                     ["<target value 0>", "<target value 1>", "..."])
        sql.append(f"{shown} -- up to {CHUNK} target values a query")
    return failing, distinct, first, sql


def check_reference(target_adapter, source_adapter, target: TargetSpec, column: str, ref_table: str,
                    ref_column: str, *, family: str = "text") -> CheckResult:
    """Every value of ``target.column`` must exist in the bronze ``ref_table.ref_column``. When the target's
    database reaches the source (the same database, or a SQLite file it can attach) the anti-join runs there;
    otherwise the target's distinct values are looked up in the source a chunk at a time. ``family`` is the type
    family of the source column (how target values are written as literals in those lookups)."""
    table, col = target_adapter.quote(target.name), target_adapter.quote(column)
    spec = next((c for c in target.columns if c.name.upper() == column.upper()), None)
    comparable = (target_adapter.engine == "sqlite" or (spec is not None and (
        spec.family == family or {spec.family, family} <= NUMBER_FAMILIES)))
    # PostgreSQL and DuckDB refuse to compare a number with a text: such columns are compared value by value.
    found = None
    if comparable:
        try:
            found = _reference_in_sql(target_adapter, source_adapter, table, col, ref_table, ref_column)
        except (ConnectorError, sqlite3.Error):
            found = None  # the source's table not readable from the target's side: compared value by value below
    if found is None:
        found = _reference_in_chunks(target_adapter, source_adapter, table, col, ref_table, ref_column, family)
    failing, distinct, missing, sql = found
    missing = sorted(missing, key=str)
    result = CheckResult(check="references", target=target.name, column=column, passed=not failing,
                         failing_rows=failing, detail=f"{ref_table}.{ref_column}", sql=sql)
    if failing:
        result.detail += f"; missing {ref_table}.{ref_column} values: " + ", ".join(str(m) for m in missing[:SAMPLE])
        result.detail += f" ({distinct} distinct)" if distinct > SAMPLE else ""
        # Written as for a column of unknown family, by the target's lookup_literal (a float as the engine compares
        # it with its own column, a blob as the engine writes binary data), not as the target's keyset bounds.
        marks = ", ".join(str(target_adapter.lookup_literal(m, "unknown")) for m in missing[:SAMPLE])
        sample_sql = (f"SELECT {_keys_sql(target_adapter, target)} FROM {table} "  # noqa: S608
                      f"WHERE {col} IN ({marks})")
        result.sample_keys = [_key(r) for r in target_adapter.query(sample_sql, limit=SAMPLE).rows]
        result.sql.append(sample_sql)
    return result


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


def _bare(name) -> str:
    return str(name or "").strip().strip('"`[]').upper()


def dbt_proven(manifest: dict, statuses: dict[str, str]) -> dict[tuple, str]:
    """The checks below that a dbt test which just passed on the same targets already proves, each with the test's
    name: a column's non-nulls (``not_null``), a grain's uniqueness (``genesis_unique_combination`` over the grain,
    ``unique`` on a one-column grain) and a column's references (``relationships`` to a bronze table's column,
    compared by plain equality, stricter than ``check_reference``). ``statuses`` is each test's status by unique
    id; a test with a ``where`` filter proves nothing here."""
    proven: dict[tuple, str] = {}
    nodes = manifest.get("nodes") or {}
    for unique_id, status in statuses.items():
        node = nodes.get(unique_id) or {}
        if status != "pass" or node.get("resource_type") != "test" or (node.get("config") or {}).get("where"):
            continue
        meta = node.get("test_metadata") or {}
        kwargs = meta.get("kwargs") or {}
        model = _bare(str(node.get("attached_node") or "").rsplit(".", 1)[-1])
        if meta.get("name") == "not_null":
            proven[("not_null", model, _bare(kwargs.get("column_name")))] = node["name"]
        elif meta.get("name") == "genesis_unique_combination":
            proven[("unique_grain", model, tuple(_bare(c) for c in kwargs.get("columns") or []))] = node["name"]
        elif meta.get("name") == "unique":
            proven[("unique_grain", model, (_bare(kwargs.get("column_name")),))] = node["name"]
        elif meta.get("name") == "relationships":
            to = re.fullmatch(r"""source\(\s*['"][^'"]*['"]\s*,\s*['"]([^'"]+)['"]\s*\)""",
                              str(kwargs.get("to") or "").strip())
            if to:
                proven[("references", model, _bare(kwargs.get("column_name")), _bare(to.group(1)),
                        _bare(kwargs.get("field")))] = node["name"]
    return proven


def _proven_by(test: str, result: CheckResult) -> CheckResult:
    result.detail = (f"{result.detail}; " if result.detail else "") + f"proven by dbt test {test}, which passed in " \
                                                                     f"this step on the same targets"
    return result


@dataclass
class Independent:
    """The checks that do not depend on dbt's results, by target: the row-by-row pass (with the reconciliation's
    target totals), the declared types, and the reconciliation against the source totals."""

    rows: dict[str, list[CheckResult]] = field(default_factory=dict)
    types: dict[str, list[CheckResult]] = field(default_factory=dict)
    reconciled: list[CheckResult] = field(default_factory=list)


def independent_checks(target_adapter, source_adapter, targets: list[TargetSpec],
                       partition: Partition | None = None, *, every_period: bool = False) -> Independent:
    """The row checks, declared types and reconciliation of ``targets``, which need nothing of dbt's results (so
    they may run while dbt test runs); ``with_proven`` then records the not-null checks dbt proved. An incremental
    target (with the project's ``partition``) is reconciled over the periods it holds (``every_period``: and fails
    lacking one of the source's, once its history is built)."""
    found = Independent()
    target_rows: dict[str, list] = {}
    for target in targets:
        aggregates = target_aggregates(target_adapter, target)
        rows, totals = check_rows(target_adapter, target, also=aggregates)
        if aggregates:
            target_rows[target.name] = totals
        found.rows[target.name] = rows
        found.types[target.name] = check_declared_types(target_adapter, target)
    held = [t for t in targets if t.materialized == "incremental" and partition is not None]
    found.reconciled = reconcile_targets(target_adapter, source_adapter,
                                         [t for t in targets if t.name not in {h.name for h in held}], target_rows)
    if held and partition is not None:
        found.reconciled += reconcile_held_periods(target_adapter, source_adapter, held, partition,
                                                   every_period=every_period)
    return found


def with_proven(found: Independent, proven: dict[tuple, str]) -> Independent:
    """``found`` with each not-null check that a dbt test proved in this step recorded as proven: passed, the test
    named, the query that would count its failing rows kept, and listed first (its count in the row pass, one more
    sum in a pass made anyway, is dropped)."""
    rows = {}
    for name, results in found.rows.items():
        by_dbt, counted = [], []
        for r in results:
            test = proven.get((r.check, _bare(r.target), _bare(r.column))) if r.check == "not_null" else None
            if test:
                by_dbt.append(_proven_by(test, CheckResult(check=r.check, target=r.target, column=r.column,
                                                           detail=r.detail, sql=r.sql[:1])))
            else:
                counted.append(r)
        rows[name] = by_dbt + counted
    return Independent(rows=rows, types=found.types, reconciled=found.reconciled)


def run_checks(*, mission, targets: list[TargetSpec], target_connection, source_connection,
               references: dict[str, str] | None = None, proven: dict[tuple, str] | None = None,
               independent: Independent | None = None, partition: Partition | None = None,
               every_period: bool = False) -> list[CheckResult]:
    """Every check of ``targets``. ``proven`` (from ``dbt_proven``) names the not-null, grain and reference checks
    that a dbt test passed in the same step: those are recorded as passed with the test named and the query that
    would count their failing rows, without running it again (a grain only when none of its columns is null: dbt's
    ``unique`` skips nulls). ``independent``: the result of ``independent_checks`` already run (while dbt test
    ran); only the grain and reference checks then run here."""
    proven = proven or {}
    results: list[CheckResult] = []
    with adapter_for(target_connection, mission=mission) as target_adapter, \
            adapter_for(source_connection, mission=mission) as source_adapter:
        # The bronze tables' columns (no row counts: introspect() would count every table).
        allowed = source_adapter.allowed_tables
        bronze = {name: source_adapter._columns(name) for name in source_adapter.list_tables()
                  if allowed is None or name.lower() in allowed}
        first_columns = {name: columns[0].name for name, columns in bronze.items() if columns}
        families = {(name.upper(), c.name.upper()): type_family(c.declared_type) for name, columns in bronze.items()
                    for c in columns}
        if independent is None:
            independent = independent_checks(target_adapter, source_adapter, targets, partition,
                                             every_period=every_period)
        found = with_proven(independent, proven)
        for target in targets:
            rows = found.rows[target.name]
            results += rows
            results += found.types[target.name]
            test = proven.get(("unique_grain", _bare(target.name), tuple(_bare(g) for g in target.grain)))
            nulls = [r for r in rows if r.check == "not_null" and _bare(r.column) in {_bare(g) for g in target.grain}]
            if test and target.grain and len(nulls) == len(target.grain) and all(r.passed for r in nulls):
                results.append(_proven_by(test, CheckResult(
                    check="unique_grain", target=target.name, column=", ".join(target.grain),
                    sql=[_grain_sql(target_adapter, target)[1]])))
            else:
                results += check_grain(target_adapter, target)
        for target, column, ref_table, ref_column in infer_references(targets, first_columns, references):
            test = proven.get(("references", _bare(target.name), _bare(column), _bare(ref_table), _bare(ref_column)))
            if test:
                table, col = target_adapter.quote(target.name), target_adapter.quote(column)
                results.append(_proven_by(test, CheckResult(
                    check="references", target=target.name, column=column, detail=f"{ref_table}.{ref_column}",
                    sql=[f"SELECT {col}, COUNT(*) FROM {table} WHERE {col} IS NOT NULL GROUP BY {col}",  # noqa: S608
                         f"SELECT DISTINCT {source_adapter.quote(ref_column)} "  # noqa: S608 - quoted identifiers
                         f"FROM {source_adapter.quote(ref_table)}"])))
                continue
            family = families.get((ref_table.upper(), ref_column.upper()), "text")
            results.append(check_reference(target_adapter, source_adapter, target, column, ref_table, ref_column,
                                           family=family))
        results += found.reconciled
    return results
