"""SQL expressions a person writes over source columns (a spec's ``expression``, a rule's ``where``, an answer's
``{sql: ...}``): parsed with sqlglot within size limits, refused when they are anything but one scalar expression
(no subquery, no statement, no function that reaches outside the tables), and checked against the source's
tables. Every error names the path of the text at fault (e.g. ``targets.LOANS.columns.TOTAL_FINES.expression``).
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
    return tree


def _ancestors(node: exp.Expression):
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def check_tables(tree: exp.Expression, *, allowed: list[str], path: str) -> None:
    """Every ``TABLE.column`` names one of ``allowed`` (case-insensitively)."""
    known = {t.upper() for t in allowed}
    for column in tree.find_all(exp.Column):
        if column.table and column.table.upper() not in known:
            raise ExpressionError(path, f"{column.table} is not among the allowed source tables "
                                        f"({', '.join(sorted(allowed))})")
