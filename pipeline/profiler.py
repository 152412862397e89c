"""Source profiling: per table and column the declared and observed types, null and distinct counts, min/max,
samples, frequent values, candidate keys, and foreign keys inferred by name and by value containment."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from agents.connectors import Adapter, TableInfo

SAMPLE_ROWS = 1000
TOP_VALUES_MAX_DISTINCT = 20
FK_MIN_CONTAINMENT = 0.9

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_INT = re.compile(r"^[+-]?\d+$")
_REAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, Decimal):
        return "integer" if value.as_tuple().exponent >= 0 else "real"
    if isinstance(value, float):
        return "real"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    text = str(value).strip()
    if _DATE.match(text):
        return "date"
    if _DATETIME.match(text):
        return "datetime"
    if _INT.match(text):
        # Leading zeros (zip codes, NPIs as text) make it a code, not a number.
        return "text" if len(text.lstrip("+-")) > 1 and text.lstrip("+-")[0] == "0" else "integer"
    if _REAL.match(text):
        return "real"
    return "text"


def observed_type(values: list[Any]) -> str:
    """The narrowest type all the (non-null) sample values fit: integer < real, date < datetime, else text."""
    kinds = Counter(_value_type(v) for v in values)
    if not kinds:
        return "unknown"
    if len(kinds) == 1:
        return next(iter(kinds))
    if set(kinds) <= {"integer", "real"}:
        return "real"
    if set(kinds) <= {"date", "datetime"}:
        return "datetime"
    return "text"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()) if t]


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def profile_table(adapter: Adapter, table: TableInfo) -> dict[str, Any]:
    q = adapter.quote
    name = q(table.name)
    parts = []
    for column in table.columns:
        c = q(column.name)
        parts += [f"COUNT({c})", f"COUNT(DISTINCT {c})", f"MIN({c})", f"MAX({c})"]
    stats = adapter.query(f"SELECT {', '.join(parts)} FROM {name}", limit=1).rows[0]  # noqa: S608
    columns: dict[str, Any] = {}
    for index, column in enumerate(table.columns):
        c = q(column.name)
        non_null, distinct, low, high = stats[index * 4: index * 4 + 4]
        sample = adapter.query(f"SELECT {c} FROM {name} WHERE {c} IS NOT NULL", limit=SAMPLE_ROWS).rows  # noqa: S608
        values = [row[0] for row in sample]
        info = {
            "declared_type": column.declared_type,
            "observed_type": observed_type(values),
            "nullable": column.nullable,
            "nulls": table.row_count - non_null,
            "distinct": distinct,
            "min": _plain(low),
            "max": _plain(high),
            "samples": [_plain(v) for v in list(dict.fromkeys(values))[:5]],
        }
        if 0 < distinct <= TOP_VALUES_MAX_DISTINCT:
            top = adapter.query(
                f"SELECT {c}, COUNT(*) FROM {name} WHERE {c} IS NOT NULL GROUP BY {c} "  # noqa: S608
                f"ORDER BY COUNT(*) DESC, {c}", limit=TOP_VALUES_MAX_DISTINCT,
            ).rows
            info["top_values"] = [[_plain(v), n] for v, n in top]
        columns[column.name] = info
    keys = [n for n, info in columns.items()
            if table.row_count > 0 and info["nulls"] == 0 and info["distinct"] == table.row_count]
    return {"row_count": table.row_count, "columns": columns, "candidate_keys": keys}


def _name_match(column: str, ref_table: str, ref_column: str) -> bool:
    col, ref = _tokens(column), _tokens(ref_column)
    if col == ref:
        return True
    entity = [_singular(t) for t in _tokens(ref_table)]
    # PATIENTS.ID referenced as PATIENT_ID.
    return col == entity + ref or col == [_singular(t) for t in entity] + ref


def infer_foreign_keys(adapter: Adapter, tables: dict[str, Any]) -> list[dict[str, Any]]:
    q = adapter.quote
    found = []
    for table, tinfo in tables.items():
        for column, cinfo in tinfo["columns"].items():
            if cinfo["distinct"] == 0:
                continue
            for ref_table, rinfo in tables.items():
                if ref_table == table:
                    continue
                for key in rinfo["candidate_keys"]:
                    kinfo = rinfo["columns"][key]
                    if kinfo["observed_type"] != cinfo["observed_type"] or cinfo["observed_type"] not in (
                            "integer", "text"):
                        continue
                    by_name = _name_match(column, ref_table, key)
                    if column in tinfo["candidate_keys"] and not by_name:
                        continue
                    if not by_name and not ("id" in _tokens(column) and cinfo["distinct"] <= kinfo["distinct"]):
                        continue
                    orphans = adapter.scalar(
                        f"SELECT COUNT(*) FROM (SELECT DISTINCT {q(column)} AS v FROM {q(table)} "  # noqa: S608
                        f"WHERE {q(column)} IS NOT NULL) AS x WHERE NOT EXISTS "
                        f"(SELECT 1 FROM {q(ref_table)} AS r WHERE r.{q(key)} = x.v)"
                    )
                    containment = round(1 - orphans / cinfo["distinct"], 4)
                    if containment >= FK_MIN_CONTAINMENT:
                        found.append({
                            "table": table, "column": column, "ref_table": ref_table, "ref_column": key,
                            "by": ["name", "values"] if by_name else ["values"], "containment": containment,
                            "orphan_values": orphans,
                        })
    # A column contained in several keys: keep the name match, then the best containment.
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for fk in found:
        slot = (fk["table"], fk["column"])
        rank = (len(fk["by"]), fk["containment"])
        if slot not in best or rank > (len(best[slot]["by"]), best[slot]["containment"]):
            best[slot] = fk
    return sorted(best.values(), key=lambda fk: (fk["table"], fk["column"]))


def profile_source(adapter: Adapter, *, tables: list[str] | None = None,
                   progress: Callable[[str], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Profile the given (default: all allowed) tables of the adapter's connection."""
    profile_tables: dict[str, Any] = {}
    for info in adapter.introspect(tables):
        if cancelled and cancelled():
            raise InterruptedError("cancelled")
        if progress:
            progress(f"profiling {info.name} ({info.row_count} rows, {len(info.columns)} columns)")
        profile_tables[info.name] = profile_table(adapter, info)
    return {
        "connection": adapter.connection.name,
        "engine": adapter.engine,
        "dialect": adapter.dialect,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": profile_tables,
        "foreign_keys": infer_foreign_keys(adapter, profile_tables),
    }


def profile_markdown(profile: dict[str, Any]) -> str:
    """A readable report of a profile."""
    lines = [f"# Source profile: {profile['connection']} ({profile['engine']})", "",
             f"Generated {profile['generated_at']}.", ""]
    for table, info in profile["tables"].items():
        keys = ", ".join(info["candidate_keys"]) or "none"
        lines += [f"## {table}", "", f"{info['row_count']:,} rows; candidate keys: {keys}.", "",
                  "| column | declared | observed | nulls | distinct | min | max | samples |",
                  "|---|---|---|---:|---:|---|---|---|"]
        for name, c in info["columns"].items():
            samples = ", ".join(str(s) for s in c["samples"][:3])
            lines.append(f"| {name} | {c['declared_type'] or '-'} | {c['observed_type']} | {c['nulls']:,} | "
                         f"{c['distinct']:,} | {c['min']} | {c['max']} | {samples} |")
        lines.append("")
    lines += ["## Inferred foreign keys", ""]
    if not profile["foreign_keys"]:
        lines.append("None found.")
    for fk in profile["foreign_keys"]:
        lines.append(f"- {fk['table']}.{fk['column']} → {fk['ref_table']}.{fk['ref_column']} "
                     f"(by {' and '.join(fk['by'])}; {fk['containment']:.2%} of values found, "
                     f"{fk['orphan_values']} orphan values)")
    return "\n".join(lines) + "\n"
