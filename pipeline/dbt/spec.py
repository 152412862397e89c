"""What the dbt, quality, validation and backfill agents need of a target: its columns, types, rules and SQL.

The approved mapping spec versions (``agents.MappingSpecVersion``) are the source of truth; a task's config may
also carry target specs inline (``config["targets"]``, the same shape), which the tests and ad-hoc runs use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from genesis.exceptions import DomainError
from pipeline.choices import MappingStatus
from pipeline.models import MappingSpecVersion
from pipeline.services import mapping_specs_sync_approvals

# Type families: a declared type (from the spec or the database) is compared by family, not by spelling.
_FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    ("timestamp", ("TIMESTAMP", "DATETIME")),
    ("date", ("DATE",)),
    ("boolean", ("BOOL",)),
    ("integer", ("INT", "SERIAL")),
    ("numeric", ("DEC", "NUMERIC", "NUM", "REAL", "FLOA", "DOUB", "MONEY")),
    ("text", ("CHAR", "TEXT", "CLOB", "STRING", "VARCHAR", "UUID")),
]


def type_family(declared: str) -> str:
    """``DECIMAL(12,2)`` -> ``numeric``, ``character varying`` -> ``text``, ``BIGINT`` -> ``integer``."""
    upper = (declared or "").upper()
    for family, markers in _FAMILIES:
        if any(marker in upper for marker in markers):
            return family
    return "unknown"


@dataclass
class ColumnSpec:
    """One target column: its type, meaning, constraints and (when known) the source column it comes from."""

    name: str
    type: str = "TEXT"
    description: str = ""
    not_null: bool = False
    unique: bool = False
    source_table: str = ""
    source_column: str = ""
    references: str = ""  # "TABLE.COLUMN" a value must exist in (referential integrity), when declared
    # Which part of the grain's period the column holds, from its rule: "start" (period_start), "year" (year_of),
    # "month" (month_of); "" for any other column. The backfill reads a built row's period from these.
    period_part: str = ""

    @property
    def family(self) -> str:
        return type_family(self.type)


@dataclass
class TargetSpec:
    """One target table as the approved mapping spec describes it."""

    name: str
    sql: str
    dialect: str = "sqlite"
    description: str = ""
    columns: list[ColumnSpec] = field(default_factory=list)
    grain: list[str] = field(default_factory=list)
    version: int | None = None
    # Summed or counted measures the mapping recorded, for reconciliation: {"column", "function", "table",
    # "expression" (over that table's own columns), "round"}.
    measures: list[dict] = field(default_factory=list)
    # The grain's period as the mapping spec states it ("TABLE.COLUMN"), "" when the grain has none, None when the
    # spec does not say (an inline target): then the model's reading of the month-partitioned table decides.
    period: str | None = None
    # The grain's period unit as the spec file states it ("day", "week", "month", "year"), "" when unknown.
    period_unit: str = ""
    # "table" (the build is the whole history; the backfill verifies it) or "incremental" (the build loads the
    # latest period, the backfill the history, period by period).
    materialized: str = "table"

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name.upper() == name.upper()), None)

    @property
    def key_columns(self) -> list[str]:
        """Columns that must never be null: the grain plus the declared not-null columns."""
        keys = list(self.grain)
        keys += [c.name for c in self.columns if c.not_null and c.name not in keys]
        return keys


_CONSTRAINT_WORDS = {"not_null": "not_null", "not null": "not_null", "required": "not_null", "unique": "unique",
                     "primary_key": "pk", "primary key": "pk", "pk": "pk"}


def _constraints(raw: Any) -> set[str]:
    words: set[str] = set()
    items = raw if isinstance(raw, list) else [raw] if raw else []
    for item in items:
        text = item if isinstance(item, str) else next(iter(item), "") if isinstance(item, dict) else ""
        word = _CONSTRAINT_WORDS.get(str(text).strip().lower())
        if word:
            words.add(word)
    return words


def _references(raw: dict) -> str:
    for key in ("references", "foreign_key", "relationship"):
        value = raw.get(key)
        if isinstance(value, str) and "." in value:
            return value
        if isinstance(value, dict) and value.get("table") and value.get("column"):
            return f"{value['table']}.{value['column']}"
    for item in raw.get("constraints") or []:
        if isinstance(item, dict):
            ref = item.get("references") or item.get("relationships")
            if isinstance(ref, str) and "." in ref:
                return ref
            if isinstance(ref, dict) and ref.get("table") and ref.get("column"):
                return f"{ref['table']}.{ref['column']}"
    return ""


def column_from_dict(raw: dict) -> ColumnSpec:
    name = raw.get("name") or raw.get("target_column") or raw.get("column")
    if not name:
        raise DomainError(f"A target column has no name: {raw!r}", field="columns")
    words = _constraints(raw.get("constraints") or raw.get("tests"))
    source = raw.get("source") if isinstance(raw.get("source"), dict) else {}
    sources = raw.get("sources") if isinstance(raw.get("sources"), list) else []
    if not source and len(sources) == 1 and isinstance(sources[0], dict):
        source = sources[0]  # the mapping spec's single source column (several mean an expression)
    source_table = raw.get("source_table") or source.get("table") or ""
    source_column = raw.get("source_column") or source.get("column") or ""
    if not source_table and isinstance(raw.get("source"), str) and "." in raw["source"]:
        source_table, source_column = raw["source"].split(".", 1)
    return ColumnSpec(
        name=str(name),
        type=str(raw.get("type") or raw.get("target_type") or raw.get("data_type") or "TEXT"),
        description=str(raw.get("description") or ""),
        not_null=bool(raw.get("not_null")) or bool(words & {"not_null", "pk"}) or raw.get("nullable") is False,
        unique=bool(raw.get("unique")) or bool(words & {"unique", "pk"}),
        source_table=str(source_table or ""),
        source_column=str(source_column or ""),
        references=_references(raw),
        period_part=_period_part(raw.get("rule")),
    )


_PERIOD_RULES = {"period_start": "start", "year_of": "year", "month_of": "month"}
MATERIALIZATIONS = ("table", "incremental")


def _period_part(rule: Any) -> str:
    if not isinstance(rule, dict):
        return ""
    return next((part for key, part in _PERIOD_RULES.items() if key in rule), "")


def target_from_dict(raw: dict, *, sql: str | None = None, dialect: str | None = None,
                     version: int | None = None) -> TargetSpec:
    name = raw.get("target_table") or raw.get("target") or raw.get("name") or raw.get("table")
    if not name:
        raise DomainError("A target spec has no table name.", field="target_table")
    columns = [column_from_dict(c) for c in raw.get("columns") or []]
    grain = raw.get("grain") or raw.get("unique_key") or raw.get("primary_key") or []
    period = None
    if isinstance(grain, dict):  # the mapping spec's {"entity": ..., "period": ..., "columns": [...]}
        period = str(grain.get("period") or "")
        grain = grain.get("columns") or []
    if isinstance(grain, str):
        grain = [g.strip() for g in re.split(r"[,\s]+", grain) if g.strip()]
    if not grain:
        grain = [c.name for c in columns if c.unique]
    materialized = str(raw.get("materialized") or "table")
    if materialized not in MATERIALIZATIONS:
        raise DomainError(f"The spec of {name} says materialized: {materialized!r}; it is one of "
                          f"{', '.join(MATERIALIZATIONS)}.", field="materialized")
    text = sql if sql is not None else raw.get("sql") or raw.get("select_sql") or ""
    if not text.strip():
        raise DomainError(f"The spec of {name} has no SQL for the target.", field="sql")
    return TargetSpec(
        name=str(name), sql=text, dialect=dialect or raw.get("dialect") or "sqlite",
        description=str(raw.get("description") or ""), columns=columns, grain=[str(g) for g in grain],
        version=version, period=period, materialized=materialized,
        period_unit=str(raw.get("period_unit") or ""),
        measures=[{**c["measure"], "column": str(c.get("name"))} for c in raw.get("columns") or []
                  if isinstance(c, dict) and isinstance(c.get("measure"), dict)],
    )


def approved_targets(mission) -> list[TargetSpec]:
    """The mission's approved mapping spec versions as target specs (latest approved version per target)."""
    versions = (
        MappingSpecVersion.objects.filter(spec__mission=mission, status=MappingStatus.APPROVED)
        .select_related("spec").order_by("spec__target_table", "-number")
    )
    seen: dict[str, TargetSpec] = {}
    for version in versions:
        table = version.spec.target_table
        if table in seen:
            continue
        content = dict(version.content or {})
        content.setdefault("target_table", table)
        seen[table] = target_from_dict(content, sql=version.sql, dialect=version.dialect, version=version.number)
    return list(seen.values())


def targets_for(mission, config: dict) -> list[TargetSpec]:
    """Inline ``config["targets"]`` when given, otherwise the mission's approved mapping specs."""
    inline = config.get("targets")
    if inline:
        return [target_from_dict(raw) for raw in inline]
    targets = approved_targets(mission)
    if not targets:
        # Mapping tasks approved before task approval approved their spec version: bring those specs in line
        # (safe to call again), then look again.
        if mapping_specs_sync_approvals(mission=mission):
            targets = approved_targets(mission)
    if not targets:
        raise DomainError(
            "No approved mapping spec for this mission: approve the mapping specs before building.",
            code="no_approved_spec",
        )
    wanted = config.get("target_tables") or config.get("select")
    if wanted:
        upper = {w.upper() for w in wanted}
        targets = [t for t in targets if t.name.upper() in upper]
    return targets
