"""Turning a mapping spec's SELECT into a dbt model in the target's dialect (sqlglot does the transpiling).

Bronze tables become ``{{ source('bronze', 'X') }}``; the month-partitioned table (when a partition is declared)
becomes a subquery filtered by the ``genesis_month_filter`` macro, so one parsed project can rebuild any month.
The result is cast to the spec's column types, so the built table carries the declared types.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from genesis.exceptions import DomainError
from pipeline.dbt.spec import ColumnSpec, TargetSpec, type_family

_SRC = "__genesis_src__"
_PART = "__genesis_part__"
_CHILD = "__genesis_child__"

# The SQL type each family is cast to, per dbt target dialect (SQLite keeps dates as ISO text: CAST AS DATE
# would give them numeric affinity and turn '2023-01-05' into 2023).
_CASTS = {
    "sqlite": {"text": "TEXT", "integer": "INTEGER", "numeric": "REAL", "date": "TEXT", "timestamp": "TEXT",
               "boolean": "INTEGER"},
    "postgres": {"text": "TEXT", "integer": "BIGINT", "numeric": "NUMERIC", "date": "DATE",
                 "timestamp": "TIMESTAMP", "boolean": "BOOLEAN"},
    # DuckDB's DECIMAL without a precision is DECIMAL(18,3), which would round a rate's fourth decimal: a numeric
    # type without one is DOUBLE.
    "duckdb": {"text": "VARCHAR", "integer": "BIGINT", "numeric": "DOUBLE", "date": "DATE",
               "timestamp": "TIMESTAMP", "boolean": "BOOLEAN"},
}
# The widest DECIMAL DuckDB stores.
_DUCKDB_MAX_PRECISION = 38


@dataclass(frozen=True)
class Partition:
    """The bronze table and date column (ISO text or date) that split the history into months."""

    table: str
    column: str
    key: str = ""  # the partition table's key column
    # Child tables keyed by it, as (table, column): a month's rebuild reads only their rows of that month's keys.
    children: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for value in (self.table, self.column, *(v for pair in self.children for v in pair),
                      *([self.key] if self.key else [])):
            if not re.fullmatch(r"\w+", value or ""):
                raise DomainError(f"The partition names {value!r}, which is not a plain table or column name.",
                                  field="partition")


PERIOD_UNITS = ("day", "week", "month", "year")
# What a period's key looks like: a day's or a week's first day as an ISO date, a month 'YYYY-MM', a year 'YYYY'.
PERIOD_KEY = {"day": r"\d{4}-\d{2}-\d{2}", "week": r"\d{4}-\d{2}-\d{2}", "month": r"\d{4}-\d{2}", "year": r"\d{4}"}
_KEY_LENGTH = {"day": 10, "week": 10, "month": 7, "year": 4}


def period_unit(target: TargetSpec) -> str:
    """The unit the backfill verifies and rebuilds the target by: its grain's period, a month when unstated."""
    return target.period_unit if target.period_unit in PERIOD_UNITS else "month"


def period_key(column: str, unit: str, dialect: str) -> str:
    """SQL giving the key of the period (of ``unit``) that the date in ``column`` (quoted; ISO text or a date)
    falls in. A week starts on Monday on every engine, as the spec's ``period_start`` rule computes it: SQLite
    steps back to the Monday, PostgreSQL's and DuckDB's date_trunc('week') are ISO weeks."""
    text = f"CAST({column} AS TEXT)"
    if unit != "week":
        return f"substr({text}, 1, {_KEY_LENGTH[unit]})"
    if dialect == "sqlite":
        day = f"substr({text}, 1, 10)"
        return f"date({day}, '-' || ((CAST(strftime('%w', {day}) AS INTEGER) + 6) % 7) || ' days')"
    return f"CAST(CAST(date_trunc('week', CAST({column} AS TIMESTAMP)) AS DATE) AS TEXT)"


def target_period_sql(target: TargetSpec, partition: Partition | None) -> str | None:
    """SQL over the target's own table giving a built row's period key (``period_unit``; see ``PERIOD_KEY``), the
    same on SQLite, PostgreSQL and DuckDB: from the column holding the period's start (rule ``period_start``, or,
    for a day or a month, a date column copied from the partition's date), else from the year (``year_of``) and,
    by month, month columns (``month_of``). None when the target has no such column."""
    unit = period_unit(target)
    parts = {c.period_part: c.name for c in target.columns if c.period_part}
    start = parts.get("start")
    if start is None and partition is not None and unit in {"day", "month"}:
        start = next((c.name for c in target.columns if c.family in {"date", "timestamp"}
                      and c.source_column.upper() == partition.column.upper()
                      and c.source_table.upper() in {"", partition.table.upper()}), None)
    if start is not None:
        return f'substr(CAST("{start}" AS TEXT), 1, {_KEY_LENGTH[unit]})'
    if unit == "year" and "year" in parts:
        return f'CAST("{parts["year"]}" AS TEXT)'
    if unit == "month" and "year" in parts and "month" in parts:
        year, month = f'"{parts["year"]}"', f'"{parts["month"]}"'
        return (f"CAST({year} AS TEXT) || '-' || CASE WHEN {month} < 10 THEN '0' ELSE '' END || "
                f"CAST({month} AS TEXT)")
    return None


def cast_type(declared: str, dialect: str) -> str:
    family = type_family(declared)
    if dialect in {"postgres", "duckdb"} and family == "numeric":
        match = re.search(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)", declared)
        if match and dialect == "postgres":
            return f"NUMERIC({match.group(1)},{match.group(2)})"
        if match and int(match.group(2)) <= int(match.group(1)) <= _DUCKDB_MAX_PRECISION:
            return f"DECIMAL({match.group(1)},{match.group(2)})"
    return _CASTS.get(dialect, _CASTS["sqlite"]).get(family, "TEXT")


def widen_bare_decimals(tree: exp.Expression) -> exp.Expression:
    """For DuckDB: a DECIMAL/NUMERIC without precision becomes DOUBLE. Elsewhere a bare NUMERIC keeps every digit
    (PostgreSQL) or is a float (SQLite); DuckDB reads it as DECIMAL(18,3), which sqlglot spells out faithfully and
    which would round a rate's fourth decimal away."""
    def widen(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.DECIMAL and not node.expressions:
            return exp.DataType.build("DOUBLE")
        return node

    return tree.transform(widen)


def _dialect_fixes(tree: exp.Expression, dialect: str) -> exp.Expression:
    def fix(node: exp.Expression) -> exp.Expression:
        if dialect == "sqlite" and isinstance(node, exp.Substring):
            args = [node.this, node.args.get("start"), node.args.get("length")]
            return exp.Anonymous(this="substr", expressions=[a for a in args if a is not None])
        if dialect == "postgres" and isinstance(node, exp.Round) and node.args.get("decimals") is not None:
            # PostgreSQL has round(numeric, int) but no round(double precision, int).
            inner = node.this
            if not (isinstance(inner, exp.Cast) and inner.to.this == exp.DataType.Type.DECIMAL):
                node.set("this", exp.cast(inner, exp.DataType.build("NUMERIC")))
        return node

    return tree.transform(fix)


def model_sql(target: TargetSpec, *, dialect: str, bronze_tables: dict[str, str],
              partition: Partition | None = None) -> str:
    """The model's SQL for ``dialect`` (``sqlite``, ``postgres`` or ``duckdb``). ``bronze_tables`` maps upper-case
    names to the source's actual table names. Every step of a mission generates the same project again (the build,
    the checks, the schedule, the hand-off): the text is kept per input, since parsing and printing it is the bulk of
    generating a project."""
    return _model_sql(target.name, target.sql, target.dialect, tuple((c.name, c.type) for c in target.columns),
                      target.materialized, dialect, tuple(sorted(bronze_tables.items())), partition)


@functools.lru_cache(maxsize=256)
def _model_sql(name: str, sql: str, source_dialect: str, columns: tuple[tuple[str, str], ...], materialized: str,
               dialect: str, bronze: tuple[tuple[str, str], ...], partition: Partition | None) -> str:
    bronze_tables = dict(bronze)
    target = TargetSpec(name=name, sql=sql, dialect=source_dialect, materialized=materialized,
                        columns=[ColumnSpec(name=n, type=t) for n, t in columns])
    try:
        tree = sqlglot.parse_one(target.sql, read=target.dialect)
    except ParseError as error:
        raise DomainError(f"The SQL of {target.name} does not parse as {target.dialect}: {error}",
                          field="sql", code="parse_error") from None
    if not isinstance(tree, exp.Query):
        raise DomainError(f"The SQL of {target.name} is not a SELECT.", field="sql")
    ctes = {cte.alias_or_name.upper() for cte in tree.find_all(exp.CTE)}
    used: set[str] = set()
    for table in list(tree.find_all(exp.Table)):
        name = table.name.upper()
        if not name or name in ctes or name not in bronze_tables:
            continue
        actual = bronze_tables[name]
        used.add(actual)
        child_tables = {c.upper() for c, _ in partition.children} if partition and partition.key else set()
        prefix = (_PART if partition and actual.upper() == partition.table.upper()
                  else _CHILD if actual.upper() in child_tables else _SRC)
        alias = table.alias or table.name
        replacement = exp.Table(this=exp.to_identifier(prefix + actual, quoted=True))
        replacement.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        table.replace(replacement)
    if not used:
        raise DomainError(f"The SQL of {target.name} reads none of the bronze tables.", field="sql")
    if dialect == "duckdb" and target.dialect != "duckdb":
        tree = widen_bare_decimals(tree)
    if target.columns:
        casts = [
            exp.alias_(exp.cast(exp.column(c.name, table="genesis_mapped", quoted=True),
                                exp.DataType.build(cast_type(c.type, dialect), dialect=dialect)),
                       c.name, quoted=True)
            for c in target.columns
        ]
        tree = exp.select(*casts).from_(exp.Subquery(this=tree, alias=exp.TableAlias(
            this=exp.to_identifier("genesis_mapped", quoted=True))))
    tree = _dialect_fixes(tree, dialect)
    text = tree.sql(dialect=dialect, identify=True, pretty=True)

    def source(match: re.Match) -> str:
        return "{{ source('bronze', '" + match.group(1) + "') }}"

    # An incremental model built without a month reads the latest month of the partition table.
    latest = target.materialized == "incremental"

    def part(match: re.Match) -> str:
        column = '"' + partition.column + '"'
        # Identifiers only: the table matched \w+ and the column was checked by Partition.
        source_ref = "{{ source('bronze', '" + match.group(1) + "') }}"
        latest_of = ", source('bronze', '" + match.group(1) + "')" if latest else ""
        return ("(SELECT * FROM " + source_ref + " WHERE {{ genesis_month_filter('" + column + "'"  # noqa: S608
                + latest_of + ") }})")

    def child(match: re.Match) -> str:
        column = next(c for t, c in partition.children if t.upper() == match.group(1).upper())
        source_ref = "{{ source('bronze', '" + match.group(1) + "') }}"
        parent = "source('bronze', '" + partition.table + "')"
        return ("(SELECT * FROM " + source_ref + " WHERE {{ genesis_child_filter('\"" + column + "\"', "  # noqa: S608
                + parent + ", '\"" + partition.key + "\"', '\"" + partition.column + "\"'"
                + (", true" if latest else "") + ") }})")

    text = re.sub(r'"' + _SRC + r'(\w+)"', source, text)
    text = re.sub(r'"' + _CHILD + r'(\w+)"', child, text)
    return re.sub(r'"' + _PART + r'(\w+)"', part, text) + "\n"


def month_filter(column: str, month: str, dialect: str) -> str:
    """What the ``genesis_month_filter`` macro renders for ``month`` ('YYYY-MM'): a range on the ISO date."""
    year, number = (int(part) for part in month.split("-"))
    following = f"{year + 1 if number == 12 else year:04d}-{1 if number == 12 else number + 1:02d}"
    if dialect == "sqlite":
        return f"{column} >= '{month}' and {column} < '{following}'"
    return f"{column} >= '{month}-01' and {column} < '{following}-01'"


def render_month(model: str, *, month: str, dialect: str) -> str:
    """A generated model (``model_sql``) as plain SQL over one month of the source, runnable on the source
    connection without dbt: what dbt renders from the macros with ``genesis_month`` set."""
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise DomainError(f"{month!r} is not a month (YYYY-MM).", field="month")

    def child(match: re.Match) -> str:
        column, parent, key, date = match.groups()
        return (f'{column} IN (SELECT {key} FROM "{parent}" WHERE '  # noqa: S608 - identifiers checked by Partition
                f"{month_filter(date, month, dialect)})")

    text = re.sub(r"\{\{ genesis_child_filter\('(\"\w+\")', source\('bronze', '(\w+)'\), '(\"\w+\")', "
                  r"'(\"\w+\")'(?:, true)?\) \}\}", child, model)
    text = re.sub(r"\{\{ genesis_month_filter\('(\"\w+\")'(?:, source\('bronze', '\w+'\))?\) \}\}",
                  lambda m: month_filter(m.group(1), month, dialect), text)
    return re.sub(r"\{\{ source\('bronze', '(\w+)'\) \}\}", r'"\1"', text)
