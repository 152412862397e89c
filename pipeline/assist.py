"""A language model's proposal for a mapping question (``agents.llm``), proven before anyone sees it.

When the rules cannot settle a column (or a relationship between source tables), the model is given the target
column's name, type, description and rule, the target's business rules and the profiled source schema (names,
types, and the samples the profile already holds for the mission), and asked for a structured answer: a SQL
expression over the source, or a relationship ``CHILD.col = PARENT.col``. The proposal is then tried as a person's
answer would be: the target is mapped again with it (sqlglot parse, allowed tables and columns, the join path), its
SQL dry-run, the row-multiplication check applied, and every summed or counted measure the answer decides
reconciled on the dry run (the target's total over the mapping's SELECT against the measured table's own total,
as the data-quality step reconciles the built target). Only a proposal that passes is offered, as the question's
suggested answer with the model's reasoning and what was checked; one that fails leaves the question as it was,
the failure (with the totals, for a reconciliation) recorded with the exchange."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agents.base import AgentContext
from agents.connectors import Adapter, ConnectorError
from agents.llm import Assistant
from pipeline.quality.reconcile import Totals, reconcile_select

PROPOSAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sql": {"type": "string", "minLength": 1, "maxLength": 2000},
        "relationship": {"type": "string", "minLength": 3, "maxLength": 300},
        "reasoning": {"type": "string", "maxLength": 1500},
    },
    "anyOf": [{"required": ["sql"]}, {"required": ["relationship"]}],
}
SYSTEM = (
    "You map a target column of a data mart onto a source database. Use only the tables and columns listed. "
    "Answer with a JSON object. For a target column: {\"sql\": \"<one SQL expression over the source columns, "
    "written TABLE.COLUMN, with an aggregate such as SUM/COUNT/MIN/MAX/AVG when the target's grain needs one>\", "
    "\"reasoning\": \"<why>\"}. For a relationship between two source tables: {\"relationship\": "
    "\"CHILD_TABLE.column = PARENT_TABLE.column\", \"reasoning\": \"<why>\"}. If nothing fits, say so in "
    "reasoning and give your best candidate; it will be checked before anyone sees it."
)


@dataclass
class Suggestion:
    answer: str  # as a person would type it: "sql: ..." or "A.x = B.y"
    reasoning: str
    checked: str  # what the proof found, in words


def _schema_text(profile: dict[str, Any], limit: int = 12_000) -> str:
    lines = []
    for table, info in sorted(profile.get("tables", {}).items()):
        lines.append(f"{table} ({info.get('row_count', '?')} rows)")
        for name, column in (info.get("columns") or {}).items():
            samples = ", ".join(str(s)[:30] for s in (column.get("samples") or [])[:3])
            lines.append(f"  {name} {column.get('declared_type') or column.get('observed_type') or ''}"
                         + (f" e.g. {samples}" if samples else ""))
    for fk in profile.get("foreign_keys") or []:
        if isinstance(fk, dict):
            lines.append(f"known link: {fk.get('from_table')}.{fk.get('from_column')} -> "
                         f"{fk.get('to_table')}.{fk.get('to_column')}")
    return "\n".join(lines)[:limit]


def prompt(*, target: dict[str, Any], key: str, question: str, profile: dict[str, Any]) -> list[dict[str, str]]:
    name = key.split(".")[0].upper()
    column = next((c for c in target.get("columns", []) if str(c.get("name", "")).upper() == name), {})
    about = {k: column[k] for k in ("name", "type", "description", "rule", "expression") if k in column}
    user = (f"Target table {target.get('name')} (grain: {json.dumps(target.get('grain'))}).\n"
            f"Business rules: {json.dumps(target.get('business_rules') or [])}\n"
            f"The question: {question}\n"
            + (f"The target column: {json.dumps(about, default=str)}\n" if about else "")
            + "Source schema:\n" + _schema_text(profile))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def ask(context: AgentContext, *, target: dict[str, Any], key: str, question: str,
        profile: dict[str, Any]) -> tuple[Assistant, Any] | None:
    """The model's raw proposal for question ``key``, or None when no model is configured."""
    assistant = Assistant(mission_id=context.mission.pk, task_id=context.task.pk, run_id=context.run.pk,
                          write_artifact=context.write_artifact)
    if not assistant.enabled:
        return None
    exchange = assistant.ask(f"propose a mapping for {target.get('name')}.{key}",
                             prompt(target=target, key=key, question=question, profile=profile), PROPOSAL_SCHEMA)
    return assistant, exchange


def answer_text(data: dict[str, Any], key: str) -> str:
    if "->" in key and data.get("relationship"):
        return str(data["relationship"]).strip()
    if data.get("sql"):
        return f"sql: {str(data['sql']).strip()}"
    return str(data.get("relationship") or "").strip()


def measures_decided_by(content: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The summed or counted measures an answer to question ``key`` decides: the column's own (``COLUMN`` or
    ``COLUMN.part``), or for a relationship ``CHILD->PARENT`` every measure whose rows are reached through CHILD."""
    measures = []
    child = key.split("->")[0].strip().upper() + "." if "->" in key else None
    paths = {str(c.get("table", "")).upper(): c.get("path") or [] for c in content.get("aggregated_children") or []}
    for column in content.get("columns") or []:
        measure = column.get("measure")
        if not isinstance(measure, dict):
            continue
        if child is None:
            decided = str(column.get("name", "")).upper() == key.split(".")[0].upper()
        else:
            table = str(measure.get("table", "")).upper()
            refs = [str(ref).upper() for pair in paths.get(table, []) for ref in pair]
            refs += [part for step in column.get("join_path") or [] for part in re.split(r"[\s=]+", str(step).upper())]
            decided = table + "." == child or any(ref.startswith(child) for ref in refs)
        if decided:
            measures.append({**measure, "column": str(column.get("name"))})
    return measures


def reconciled(adapter: Adapter, content: dict[str, Any], key: str) -> tuple[list[Totals], str]:
    """The reconciliation of the measures an answer to ``key`` decides, on the dry run of the mapping it gave, and
    what was left unreconciled (in words; "" when nothing was). A query that fails is a failed reconciliation."""
    measures = measures_decided_by(content, key)
    if not measures:
        return [], ""
    scope = (content.get("dry_run") or {}).get("scope", "all rows")
    if scope != "all rows":
        return [], (f"the totals are reconciled after the build (the dry run read {scope}, not the whole "
                    "source)")
    try:
        return reconcile_select(adapter, content["sql"], measures), ""
    except ConnectorError as error:
        return [Totals(column=m["column"], target_total=0.0, source_total=0.0, target_rows=0, passed=False,
                       detail=f"the totals could not be read: {error.message}") for m in measures], ""
