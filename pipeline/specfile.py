"""The mission spec file (``project.yml``): its JSON Schema, loading, and errors that name the path at fault.

The format is documented in docs/spec-file.md. ``load_spec_text`` returns the parsed, validated document or
raises ``SpecFileError`` listing every problem as ``path: message`` (e.g. ``targets.tables[0].columns[3].rule``).
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator

from genesis.documents import DocumentInvalid, Path, SchemaWording, format_path, load_yaml, schema_problems
from genesis.exceptions import DomainError
from pipeline.expressions import ExpressionError, check_tables, parse_expression

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
PHRASE = {"type": "string", "minLength": 1}
TARGET_REF = {"type": "string", "pattern": IDENT}
ROUND = {"type": "integer", "minimum": 0, "maximum": 10}

_RULES = {
    "sum": PHRASE,
    "count": PHRASE,
    "count_distinct": PHRASE,
    "min": PHRASE,
    "max": PHRASE,
    "avg": PHRASE,
    "fraction": {
        "type": "object", "additionalProperties": False, "required": ["column", "equals"],
        "properties": {"column": PHRASE, "equals": {"type": ["string", "number"]}},
    },
    "difference": {"type": "array", "items": TARGET_REF, "minItems": 2, "maxItems": 2},
    "concat": {
        "type": "array", "minItems": 1,
        "items": {
            "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
            "properties": {"column": PHRASE, "literal": {"type": "string"}},
        },
    },
    "age_years": {
        "type": "object", "additionalProperties": False, "required": ["birth", "at"],
        "properties": {"birth": PHRASE, "at": {"enum": ["period_start"]}},
    },
    "bands": {
        "type": "object", "additionalProperties": False, "required": ["of", "labels"],
        "properties": {"of": TARGET_REF, "labels": {"type": "array", "items": {"type": "string"}, "minItems": 2}},
    },
    "year_of": {"enum": ["period"]},
    "month_of": {"enum": ["period"]},
    "period_start": {"enum": ["period"]},
}
PERIODS = ("day_of", "week_of", "month_of", "year_of")
# Rules that aggregate the rows of one table, and so take a ``where`` filter over that table's columns.
FILTERED = {"sum", "count", "count_distinct", "min", "max", "avg"}
SQL_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}

RULE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {**_RULES, "default": {"type": ["number", "string"]}, "round": ROUND, "where": SQL_TEXT,
                   "multiply": {"type": "number"}, "divide": {"type": "number", "not": {"const": 0}}},
}

COLUMN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "type"],
    "properties": {
        "name": {"type": "string", "pattern": IDENT},
        "type": {"type": "string", "pattern": r"^[A-Za-z]+( ?\([0-9]+(, ?[0-9]+)?\))?$"},
        "description": {"type": "string"},
        "constraints": {
            "type": "array", "uniqueItems": True,
            "items": {"enum": ["not_null", "unique", "primary_key"]},
        },
        "rule": RULE_SCHEMA,
        "expression": SQL_TEXT,
    },
}

TARGET_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "grain", "columns"],
    "properties": {
        "name": {"type": "string", "pattern": IDENT},
        "description": {"type": "string"},
        "grain": {
            "type": "object", "additionalProperties": False, "required": ["entity"],
            "properties": {
                "entity": PHRASE,
                "period": {
                    "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
                    "properties": {unit: PHRASE for unit in PERIODS},
                },
            },
        },
        "columns": {"type": "array", "minItems": 1, "items": COLUMN_SCHEMA},
        "business_rules": {"type": "array", "items": {"type": "string"}},
        "materialized": {"enum": ["table", "incremental"]},
    },
}

_REF = r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*"
RELATIONSHIP = rf"^\s*{_REF}\s*->\s*{_REF}\s*$"

SPEC_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "name", "sources", "targets"],
    "properties": {
        "version": {"const": 1},
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "sources": {
            "type": "object", "additionalProperties": False, "required": ["connection", "allowed_tables"],
            "properties": {
                "connection": {"type": "string", "minLength": 1},
                "allowed_tables": {
                    "type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "string", "pattern": IDENT},
                },
                "tables": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "description": {"type": "string"},
                            "columns": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
                # Known foreign keys, child first: "ORDERS.CUSTOMER_ID -> CUSTOMERS.ID".
                "relationships": {
                    "type": "array", "uniqueItems": True,
                    "items": {"type": "string", "pattern": RELATIONSHIP},
                },
            },
        },
        "targets": {
            "type": "object", "additionalProperties": False, "required": ["tables"],
            "properties": {
                "connection": {"type": "string", "minLength": 1},
                "tables": {"type": "array", "minItems": 1, "items": TARGET_SCHEMA},
            },
        },
        "schedule": {
            "type": "object", "additionalProperties": False,
            "properties": {"cron": {"type": "string", "pattern": r"^\S+( \S+){4}$"}},
        },
    },
}

Draft202012Validator.check_schema(SPEC_SCHEMA)
_BAND = re.compile(r"^(\d+)-(\d+)$|^(\d+)\+$")


class SpecFileError(DomainError):
    """A spec file that cannot be used; ``errors`` lists ``(path, message)`` for every problem found."""

    def __init__(self, errors: list[tuple[str, str]], *, source: str = "spec file"):
        self.errors = errors
        lines = "; ".join(f"{path or '(top)'}: {message}" for path, message in errors)
        super().__init__(f"{source} is invalid: {lines}", field=errors[0][0] if errors else None,
                         code="invalid_spec")


class _SpecWording(SchemaWording):
    """Spec files word schema problems as they always have: unknown and missing keys named at their mapping."""

    def unknown_keys(self, path: Path, unknown: list, allowed: list[str]) -> list[tuple[Path, str]]:
        return [(path, f"unknown key(s) {', '.join(repr(key) for key in sorted(unknown, key=str))}")]

    def missing_keys(self, path: Path, missing: list[str]) -> list[tuple[Path, str]]:
        return [(path, f"{key!r} is required") for key in missing]

    def wrong_type(self, expected, value) -> str:
        return f"must be of type {expected}, got {type(value).__name__}"

    def not_allowed(self, value, choices) -> str:
        return f"must be one of {', '.join(map(repr, choices))}, got {value!r}"

    def wrong_form(self, value, pattern) -> str:
        return f"{value!r} does not match the expected form {pattern}"

    def other(self, error) -> str:
        return error.message


_WORDING = _SpecWording()


def band_bounds(labels: list[str]) -> list[tuple[int, int | None]]:
    """``["0-17", "18-34", "65+"]`` -> ``[(0, 17), (18, 34), (65, None)]``; raises ValueError when not
    contiguous, not ascending, or not in the ``a-b`` / ``a+`` forms."""
    bounds: list[tuple[int, int | None]] = []
    for index, label in enumerate(labels):
        match = _BAND.match(label.strip())
        if not match:
            raise ValueError(f"label {label!r} must look like '18-34' or '65+'")
        low, high = (int(match[1]), int(match[2])) if match[1] else (int(match[3]), None)
        if high is not None and high < low:
            raise ValueError(f"label {label!r} ends before it starts")
        if high is None and index != len(labels) - 1:
            raise ValueError(f"only the last label may be open-ended; {label!r} is not last")
        if bounds and bounds[-1][1] is not None and low != bounds[-1][1] + 1:
            raise ValueError(f"label {label!r} does not start right after {labels[index - 1]!r}")
        bounds.append((low, high))
    return bounds


def relationships(spec: dict[str, Any] | None) -> list[dict[str, str]]:
    """The foreign keys the spec declares, as ``{"table", "column", "ref_table", "ref_column"}``."""
    found = []
    for text in ((spec or {}).get("sources") or {}).get("relationships") or []:
        child, parent = (part.strip() for part in text.split("->"))
        (table, column), (ref_table, ref_column) = child.split("."), parent.split(".")
        found.append({"table": table, "column": column, "ref_table": ref_table, "ref_column": ref_column})
    return found


def _relationship_errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    allowed = {t.upper() for t in spec["sources"]["allowed_tables"]}
    return [(f"sources.relationships[{index}]", f"{table} is not among sources.allowed_tables")
            for index, relationship in enumerate(relationships(spec))
            for table in (relationship["table"], relationship["ref_table"]) if table.upper() not in allowed]


def _semantic_errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = _relationship_errors(spec)
    seen_targets: set[str] = set()
    for t_index, target in enumerate(spec["targets"]["tables"]):
        t_path = f"targets.tables[{t_index}]"
        if target["name"].upper() in seen_targets:
            errors.append((f"{t_path}.name", f"duplicate target table {target['name']!r}"))
        seen_targets.add(target["name"].upper())
        names = [c["name"].upper() for c in target["columns"]]
        for c_index, column in enumerate(target["columns"]):
            c_path = f"{t_path}.columns[{c_index}]"
            if names.index(column["name"].upper()) != c_index:
                errors.append((f"{c_path}.name", f"duplicate column {column['name']!r} in {target['name']}"))
            rule = column.get("rule") or {}
            if rule and column.get("expression"):
                errors.append((c_path, "a column has a rule or an expression, not both"))
            kinds = [k for k in rule if k in _RULES]
            if rule and len(kinds) != 1:
                errors.append((f"{c_path}.rule", "a rule needs exactly one of "
                               f"{', '.join(_RULES)} (got {', '.join(kinds) or 'none'})"))
                continue
            for ref_key, refs in (("difference", rule.get("difference") or []),
                                  ("bands", [rule["bands"]["of"]] if "bands" in rule else [])):
                for r_index, ref in enumerate(refs):
                    r_path = f"{c_path}.rule.{ref_key}" + (f"[{r_index}]" if ref_key == "difference" else ".of")
                    if ref.upper() not in names:
                        errors.append((r_path, f"{ref!r} is not a column of {target['name']}"))
                    elif ref.upper() == column["name"].upper():
                        errors.append((r_path, f"{column['name']} cannot refer to itself"))
            if "bands" in rule:
                try:
                    band_bounds(rule["bands"]["labels"])
                except ValueError as error:
                    errors.append((f"{c_path}.rule.bands.labels", str(error)))
            if any(k in rule for k in ("year_of", "month_of", "age_years", "period_start")) \
                    and "period" not in target["grain"]:
                errors.append((f"{c_path}.rule", f"refers to the period, but {target['name']} has no grain.period"))
            if "where" in rule and not (set(rule) & FILTERED):
                errors.append((f"{c_path}.rule.where", f"a filter needs one of {', '.join(sorted(FILTERED))}"))
            errors += _column_expression_errors(target, column, spec)
        errors += _period_errors(target, t_path)
        errors += _materialized_errors(target, t_path)
    return errors


def _materialized_errors(target: dict[str, Any], t_path: str) -> list[tuple[str, str]]:
    """An incremental target is built one month at a time, keyed by its period: its grain needs a period that a
    month holds whole (a day or a month; a week or a year spans months)."""
    if target.get("materialized") != "incremental":
        return []
    period = target["grain"].get("period")
    if not period:
        return [(f"{t_path}.materialized", f"incremental builds {target['name']} period by period, but its grain "
                                           "has no period (add grain.period: {month_of: ...})")]
    unit = next(iter(period))
    if unit not in {"month_of", "day_of"}:
        return [(f"{t_path}.materialized", f"incremental builds month by month; a {unit.removesuffix('_of')} "
                                           "spans months (use a grain.period of month_of or day_of, or "
                                           "materialized: table)")]
    return []


def _column_expression_errors(target: dict[str, Any], column: dict[str, Any],
                              spec: dict[str, Any]) -> list[tuple[str, str]]:
    named = f"targets.{target['name']}.columns.{column['name']}"
    texts = ((column.get("expression"), f"{named}.expression"),
             ((column.get("rule") or {}).get("where"), f"{named}.rule.where"))
    return [error for text, at in texts if text for error in _expression_errors(text, at, spec)]


def _expression_errors(text: str, path: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    """The expression parses (within the size limits) and names only allowed tables; its columns are checked
    against the profiled source and it is dry-run when the target is mapped."""
    try:
        check_tables(parse_expression(text, dialect="sqlite", path=path), allowed=spec["sources"]["allowed_tables"],
                     path=path)
    except ExpressionError as error:
        return [(path, str(error.message).removeprefix(f"{path}: "))]
    return []


def _period_errors(target: dict[str, Any], t_path: str) -> list[tuple[str, str]]:
    """A grain with a period needs columns that hold the period: its start, or (by month) its year and month."""
    period = target["grain"].get("period")
    if not period:
        return []
    unit = next(iter(period))
    kinds = {k for c in target["columns"] for k in (c.get("rule") or {})}
    if "period_start" in kinds or (unit == "year_of" and "year_of" in kinds) or \
            (unit == "month_of" and {"year_of", "month_of"} <= kinds):
        return []
    need = {"month_of": "a column with rule period_start, or two with year_of and month_of",
            "year_of": "a column with rule period_start or year_of"}.get(unit, "a column with rule period_start")
    return [(f"{t_path}.grain.period", f"one row per {unit.removesuffix('_of')} needs {need}")]


def validate_spec(data: Any, *, source: str = "spec file") -> dict[str, Any]:
    """Return ``data`` if it is a valid spec; otherwise raise ``SpecFileError`` naming every bad path."""
    errors = [(format_path(path, top=""), message)
              for path, message in schema_problems(SPEC_SCHEMA, data, wording=_WORDING)]
    if not errors:
        errors = _semantic_errors(data)
    if errors:
        raise SpecFileError(errors, source=source)
    return data


def load_spec_text(text: str | bytes, *, source: str = "spec file") -> dict[str, Any]:
    """Read a spec file with the one strict loader (genesis/documents.py: duplicate keys refused by line, dates kept
    as text, the size, alias, depth and node limits) and validate it. A mission's steps each read its spec: the
    same text is parsed and validated once per process (a copy each time, so no caller sees another's changes); a
    bad one raises every time."""
    limits = (settings.GENESIS_YAML_MAX_BYTES, settings.GENESIS_YAML_MAX_DEPTH, settings.GENESIS_YAML_MAX_NODES,
              settings.GENESIS_YAML_MAX_ALIASES)
    return copy.deepcopy(_parsed_spec(text, source, limits))


@functools.lru_cache(maxsize=32)
def _parsed_spec(text: str | bytes, source: str, limits: tuple) -> dict[str, Any]:
    """The spec, parsed under the loader's limits (part of the key: a text read under other limits is read again)."""
    try:
        data = load_yaml(text, filename=source)
    except DocumentInvalid as error:
        raise SpecFileError(error.problems, source=source) from None
    if not isinstance(data, dict):
        raise SpecFileError([("", "the document must be a mapping with version, name, sources and targets")],
                            source=source)
    return validate_spec(data, source=source)


def load_mission_spec(mission) -> dict[str, Any]:
    """The mission's attached spec file, validated."""
    if not mission.spec_file:
        raise SpecFileError([("spec_file", f"mission “{mission.name}” has no spec file attached")])
    with mission.spec_file.open("rb") as handle:
        return load_spec_text(handle.read(), source="the mission's spec file")


def target_spec(spec: dict[str, Any], name: str) -> dict[str, Any]:
    for target in spec["targets"]["tables"]:
        if target["name"].upper() == name.upper():
            return target
    known = ", ".join(t["name"] for t in spec["targets"]["tables"])
    raise SpecFileError([("targets.tables", f"no target named {name!r} (known: {known})")])


def spec_connection_names(spec: dict[str, Any]) -> list[str]:
    """The connections a (validated) spec file names: its sources' and its targets'."""
    names = [spec.get("sources", {}).get("connection"), spec.get("targets", {}).get("connection")]
    return [name for name in names if name]
