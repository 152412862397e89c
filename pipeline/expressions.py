"""SQL expressions a person writes over source columns (a spec's ``expression``, a rule's ``where``, an answer's
``{sql: ...}``): parsed with sqlglot within size limits, refused when they are anything but one scalar expression
(no subquery, no statement, no function that reaches outside the tables), and checked against the source's
tables. Every error names the path of the text at fault (e.g. ``targets.LOANS.columns.TOTAL_FINES.expression``).

Division means the same on every engine. SQLite and PostgreSQL divide two integers as integers (``7 / 2`` is 3),
DuckDB as decimals (3.5): the same spec would give another number on another engine, and every check would pass. So
every ``/`` a person writes is made explicit when it is parsed (``explicit_division``): the dividend is cast to the
engine's decimal type and a zero divisor gives NULL (as SQLite and DuckDB already do; PostgreSQL would stop the
build). A fraction cannot go into an integer column unnoticed either, since the engines make a whole number of it
differently (SQLite truncates 3.5 to 3, PostgreSQL and DuckDB round it to 4): ``fraction_outside_whole`` finds it,
and the mapping refuses it unless it is rounded (``ROUND``, ``FLOOR``, ``CEIL``).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from agents.connectors.base import DENIED_FUNCTION_PREFIXES, DENIED_FUNCTIONS
from genesis.exceptions import DomainError

MAX_CHARS = 2_000
MAX_NODES = 300
AGGREGATES = (exp.Sum, exp.Count, exp.Min, exp.Max, exp.Avg)
# What a dividend is cast to, per dialect, so that ``/`` divides as decimals. REAL on SQLite: CAST(7 AS NUMERIC) is
# the integer 7 there (numeric affinity keeps a whole number an integer).
DIVISION_TYPES = {"sqlite": "REAL", "postgres": "NUMERIC", "duckdb": "DOUBLE"}


class ExpressionError(DomainError):
    """An expression that cannot be used; ``path`` says where it was written."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}", field=path, code="invalid_expression")


def parse_expression(text: str, *, dialect: str, path: str) -> exp.Expression:
    """One scalar SQL expression, or ``ExpressionError``."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(path, "the expression is empty")
    if len(text) > MAX_CHARS:
        raise ExpressionError(path, f"the expression is {len(text):,} characters; at most {MAX_CHARS:,} are read")
    try:
        tree = sqlglot.parse_one(text, read=dialect)
    except (SqlglotError, RecursionError) as error:
        first = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise ExpressionError(path, f"does not parse as a {dialect} SQL expression ({first})") from None
    if tree is None:
        raise ExpressionError(path, "the expression is empty")
    nodes = list(tree.walk())
    if len(nodes) > MAX_NODES:
        raise ExpressionError(path, f"the expression has {len(nodes):,} parts; at most {MAX_NODES} are allowed")
    for node in nodes:
        if isinstance(node, exp.Query | exp.Subquery | exp.Command | exp.DDL | exp.DML | exp.Table):
            raise ExpressionError(path, "only an expression over source columns is allowed, not a query or "
                                        f"statement ({node.key.upper()})")
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            raise ExpressionError(path, "* is allowed only in COUNT(*)")
        if isinstance(node, exp.Placeholder | exp.Parameter):
            raise ExpressionError(path, "parameters are not allowed")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in DENIED_FUNCTIONS or name.startswith(DENIED_FUNCTION_PREFIXES):
                raise ExpressionError(path, f"the function {name}() is not allowed")
        if isinstance(node, AGGREGATES) and any(isinstance(a, AGGREGATES) for a in _ancestors(node)):
            raise ExpressionError(path, "an aggregate inside another aggregate is not allowed")
        if (isinstance(node, exp.Cast) and node.to.is_type(*exp.DataType.INTEGER_TYPES)
                and fraction_outside_whole(node.this) is not None):
            raise ExpressionError(path, f"{node.sql(dialect=dialect)[:80]} makes a whole number of a division or an "
                                        "average, which SQLite truncates and PostgreSQL and DuckDB round, so the "
                                        "engines would give different numbers: write ROUND(...) (nearest), "
                                        "FLOOR(...) or CEIL(...) instead of the CAST")
    return explicit_division(tree, dialect=dialect)


def explicit_division(tree: exp.Expression, *, dialect: str) -> exp.Expression:
    """``tree`` with every ``a / b`` written ``CAST(a AS <decimal>) / NULLIF(b, 0)`` (a non-zero number as divisor
    is kept as it is): the same quotient on SQLite, PostgreSQL and DuckDB (``7 / 2`` is 3.5 on all three, ``x / 0``
    NULL). Idempotent."""
    wanted = exp.DataType.build(DIVISION_TYPES.get(dialect, "REAL"), dialect=dialect)
    # Innermost first, and wrapping the nodes themselves (no copies), so that a division inside another's dividend
    # is rewritten where it stays.
    for node in reversed(list(tree.find_all(exp.Div))):
        dividend, divisor = node.this, node.expression
        if not (isinstance(dividend, exp.Cast) and dividend.to.this == wanted.this):
            node.set("this", exp.Cast(this=dividend, to=wanted.copy()))
        nonzero_literal = isinstance(divisor, exp.Literal) and not divisor.is_string and float(divisor.name) != 0
        if not nonzero_literal and not (isinstance(divisor, exp.Nullif) and divisor.expression.sql() == "0"):
            node.set("expression", exp.Nullif(this=divisor, expression=exp.Literal.number(0)))
    return tree


# Functions whose value is a whole number whatever their argument, and comparisons (true or false): a fraction
# inside them never reaches the column.
_WHOLE = (exp.Floor, exp.Ceil, exp.Count, exp.Predicate, exp.Not, exp.And, exp.Or)


def fraction_outside_whole(tree: exp.Expression) -> exp.Expression | None:
    """The first division or average in ``tree`` whose fraction reaches the result (no ``ROUND`` to a whole number,
    ``FLOOR``, ``CEIL``, ``COUNT`` or comparison around it), else None."""
    for node in tree.find_all(exp.Div, exp.Avg):
        if not any(_makes_whole(a) for a in _ancestors(node, upto=tree)):
            return node
    return None


def _makes_whole(node: exp.Expression) -> bool:
    if isinstance(node, exp.Round):
        decimals = node.args.get("decimals")
        return decimals is None or (isinstance(decimals, exp.Literal) and decimals.name in {"0", "0.0"})
    return isinstance(node, _WHOLE)


def _ancestors(node: exp.Expression, upto: exp.Expression | None = None):
    """``node``'s parents, nearest first, up to ``upto`` (included) or the root."""
    parent = node.parent if node is not upto else None
    while parent is not None:
        yield parent
        if parent is upto:
            return
        parent = parent.parent


def check_tables(tree: exp.Expression, *, allowed: list[str], path: str) -> None:
    """Every ``TABLE.column`` names one of ``allowed`` (case-insensitively)."""
    known = {t.upper() for t in allowed}
    for column in tree.find_all(exp.Column):
        if column.table and column.table.upper() not in known:
            raise ExpressionError(path, f"{column.table} is not among the allowed source tables "
                                        f"({', '.join(sorted(allowed))})")
