"""What really changed between two versions of a mapping spec, column by column, in words a reviewer reads.

A column's SQL expression names its tables by the aliases of the version's query (``f`` for the fact table,
``d1``, ``d2``... for joined tables in the order they were joined, ``c1``... for aggregated child tables). A new
join can shift those aliases, so comparing raw expressions would report columns whose mapping did not change; here
an expression is compared with its aliases replaced by the tables they stand for.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

# The fields of a column whose change is a change of the mapping, and what a reviewer calls them.
DIFF_FIELDS: dict[str, str] = {
    "sources": "source",
    "expression": "expression",
    "transformation": "rule",
    "target_type": "type",
    "join_path": "join path",
    "constraints": "constraints",
}


def table_aliases(content: dict[str, Any]) -> dict[str, str]:
    """The query's alias of each table of a spec version: ``{"f": "CLAIMS", "d1": "PROVIDERS", ...}``."""
    aliases = {"f": str(content.get("fact_table") or "")} if content.get("fact_table") else {}
    for item in [*(content.get("joins") or []), *(content.get("aggregated_children") or [])]:
        if isinstance(item, dict) and item.get("alias") and item.get("table"):
            aliases[str(item["alias"])] = str(item["table"])
    return aliases


def resolved_expression(expression: str, aliases: dict[str, str], dialect: str | None = None) -> str:
    """The expression with each alias replaced by its table and identifiers unquoted: ``d1."NPI"`` → ``PROVIDERS.NPI``.
    An expression sqlglot cannot read is returned as it is."""
    if not expression:
        return ""
    return _resolved(expression, tuple(sorted(aliases.items())), dialect or None)


@lru_cache(maxsize=4096)
def _resolved(expression: str, aliases: tuple[tuple[str, str], ...], dialect: str | None) -> str:
    """Remembered per process: parsing and printing one expression costs sqlglot about a millisecond, and every
    approval card (its table and its diff) resolves the same few dozen expressions each time it is shown."""
    try:
        tree = sqlglot.parse_one(expression, read=dialect)
    except (SqlglotError, ValueError):
        return expression
    tables = dict(aliases)

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.table in tables:
            return exp.column(node.name, table=tables[node.table])
        if isinstance(node, exp.Identifier):
            node.set("quoted", False)
        return node

    return tree.transform(swap).sql(dialect=dialect)


def _comparable(field: str, column: dict[str, Any], aliases: dict[str, str], dialect: str | None) -> Any:
    value = column.get(field)
    if field == "expression":
        return resolved_expression(str(value or ""), aliases, dialect)
    if field == "sources":
        return sorted(source_names(value))
    return value


def source_names(sources: Any) -> list[str]:
    """``TABLE.COLUMN`` of each source of a column."""
    return [f"{s.get('table')}.{s.get('column')}" for s in sources or [] if isinstance(s, dict)]


def as_text(value: Any) -> str:
    """A field's value as a person reads it: lists joined, mappings as ``key: value``, nothing as a dash."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {as_text(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(as_text(item) for item in value)
    return str(value)


def changed_fields(before: dict[str, Any], after: dict[str, Any], *, old_aliases: dict[str, str],
                   new_aliases: dict[str, str], dialect: str | None = None) -> dict[str, tuple[Any, Any]]:
    """The diff fields whose value differs between two versions of one column, as ``field: (old, new)``; an
    expression counts as changed only if it reads other tables or columns once aliases are resolved."""
    changes: dict[str, tuple[Any, Any]] = {}
    for field in DIFF_FIELDS:
        old = _comparable(field, before, old_aliases, dialect)
        new = _comparable(field, after, new_aliases, dialect)
        if old != new:
            changes[field] = (old, new)
    return changes


def column_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Added and removed target columns, and per changed column each changed field with its old and new value
    (expressions and sources as ``TABLE.COLUMN``), in the order of the new version's columns."""
    new_columns = [c for c in new.get("columns", []) if isinstance(c, dict)]
    if old is None:
        return {"first_version": True, "added": [c.get("name") for c in new_columns], "removed": [], "changed": {}}
    old_columns = {c.get("name"): c for c in old.get("columns", []) if isinstance(c, dict)}
    new_names = [c.get("name") for c in new_columns]
    old_aliases, new_aliases = table_aliases(old), table_aliases(new)
    dialect = new.get("dialect") or old.get("dialect")
    changed: dict[str, dict[str, tuple[Any, Any]]] = {}
    for column in new_columns:
        before = old_columns.get(column.get("name"))
        if before is None:
            continue
        fields = changed_fields(before, column, old_aliases=old_aliases, new_aliases=new_aliases, dialect=dialect)
        if fields:
            changed[column["name"]] = fields
    return {
        "first_version": False,
        "added": [name for name in new_names if name not in old_columns],
        "removed": [name for name in old_columns if name not in new_names],
        "changed": changed,
    }
