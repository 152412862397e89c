"""A language model's proposal for a mapping question (``agents.llm``), proven before anyone sees it.

When the rules cannot settle a column (or a relationship between source tables), the model is given the target
column's name, type, description and rule, the target's business rules and the profiled source schema (names,
types, and the samples the profile already holds for the mission), and asked for a structured answer: a SQL
expression over the source, or a relationship ``CHILD.col = PARENT.col``. The proposal is then tried as a person's
answer would be: the target is mapped again with it (sqlglot parse, allowed tables and columns, the join path), its
SQL dry-run, and the row-multiplication check applied. Only a proposal that passes is offered, as the question's
suggested answer with the model's reasoning and what was checked; one that fails leaves the question as it was,
the failure recorded with the exchange."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agents.base import AgentContext
from agents.llm import Assistant

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
