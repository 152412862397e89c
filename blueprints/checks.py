"""The check registry: exit criteria of phases, acceptance criteria of tasks and success criteria of missions.

A check type is a small class with a ``type``, a JSON-schema for its ``params`` and
``evaluate(params, context) -> CheckResult(passed, message, evidence)``. A criterion in a blueprint or on a
task is ``{"type": ..., "params": {...}, "description": ...}``; a plain string is a statement, not a check.
"""

from __future__ import annotations

import fnmatch
import json
import operator
import traceback
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jsonschema import Draft202012Validator

from agents.connectors import ConnectorError
from blueprints.connections import (
    ConnectionProblem,
    connection_named,
    count_rows,
    evidence_value,
    find_tables,
    query_value,
)
from genesis.documents import loads_json, schema_problems
from genesis.wording import check_sentence
from history.models import HistoryEntry
from tasks.choices import TASK_FINISHED, RunStatus, TaskStatus
from tasks.models import Artifact, Phase, Run, Task


@dataclass
class CheckResult:
    """The outcome of one check: whether it passed, a sentence saying why, and the evidence behind it."""

    passed: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckContext:
    """Where a check runs: always a mission; a phase for exit criteria; a task and run for acceptance."""

    mission: Any
    phase: Phase | None = None
    task: Task | None = None
    run: Run | None = None

    def task_by_key(self, key: str) -> Task:
        if self.task is not None and self.task.key == key:
            return self.task
        task = Task.objects.filter(mission=self.mission, key=key).first()
        if task is None:
            raise CheckError(f"The mission has no task {key!r}.")
        return task


class CheckError(Exception):
    """The check could not be evaluated (missing task, connection, table…): it fails with this message."""


class Check:
    """Base class of a check type. Subclasses set ``type``, ``description``, ``params_schema``."""

    type: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params_schema: ClassVar[dict[str, Any]] = {"type": "object", "additionalProperties": False}
    # Params that name actions of the blueprint (validated at load) and connections (by name).
    task_params: ClassVar[tuple[str, ...]] = ()

    def evaluate(self, params: dict[str, Any], context: CheckContext) -> CheckResult:  # pragma: no cover
        raise NotImplementedError


_REGISTRY: dict[str, type[Check]] = {}


def register_check(cls: type[Check]) -> type[Check]:
    if not cls.type:
        raise ValueError(f"{cls.__name__} has no type")
    Draft202012Validator.check_schema(cls.params_schema)
    _REGISTRY[cls.type] = cls
    return cls


def check_types() -> dict[str, type[Check]]:
    return dict(sorted(_REGISTRY.items()))


def get_check(check_type: str) -> type[Check]:
    try:
        return _REGISTRY[check_type]
    except KeyError:
        raise CheckError(
            f"Unknown check type {check_type!r}; known types: {', '.join(sorted(_REGISTRY))}."
        ) from None


def params_errors(check_type: str, params: Any) -> list[tuple[list[str | int], str]]:
    """Every problem with ``params`` for this check type, as (path inside params, message)."""
    return schema_problems(get_check(check_type).params_schema, params)


def is_check(criterion: Any) -> bool:
    return isinstance(criterion, dict) and "type" in criterion


def criterion_label(criterion: dict[str, Any]) -> str:
    """What people read for a criterion: its description, else its type as a sentence (never the raw key)."""
    return criterion.get("description") or check_sentence(criterion["type"])


def run_check(criterion: dict[str, Any], context: CheckContext) -> CheckResult:
    """Evaluate one criterion. A check that cannot run fails with the reason; it never raises."""
    params = criterion.get("params") or {}
    try:
        check = get_check(criterion["type"])()
        problems = params_errors(criterion["type"], params)
        if problems:
            raise CheckError("Bad params: " + "; ".join(
                f"{'.'.join(map(str, path)) or 'params'}: {message}" for path, message in problems))
        return check.evaluate(params, context)
    except (CheckError, ConnectionProblem) as error:
        return CheckResult(False, str(error), {"error": str(error)})
    except ConnectorError as error:
        return CheckResult(False, error.message, {"error": error.message, "code": error.code})
    except Exception as error:  # a broken check must not stall a phase: it fails, with its traceback
        return CheckResult(
            False, f"The check raised {type(error).__name__}: {error}",
            {"error": str(error), "traceback": traceback.format_exc(limit=5)[-2000:]},
        )


# --- the shipped check types ---------------------------------------------------------------------------

_TASK_KEY = {"type": "string", "minLength": 1, "maxLength": 64}
_CONNECTION = {"type": "string", "minLength": 1, "maxLength": 100}
_TABLE = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"}


@register_check
class AllTasksDone(Check):
    type = "all_tasks_done"
    description = (
        "Every task in scope is done (or deliberately skipped): the listed tasks, else the phase's, else the "
        "mission's."
    )
    params_schema = {
        "type": "object", "additionalProperties": False,
        "properties": {"tasks": {"type": "array", "items": _TASK_KEY, "minItems": 1, "uniqueItems": True}},
    }
    task_params = ("tasks",)

    def evaluate(self, params, context):
        if params.get("tasks"):
            rows = list(Task.objects.filter(mission=context.mission, key__in=params["tasks"]).values_list(
                "key", "status"))
            missing = sorted(set(params["tasks"]) - {key for key, _ in rows})
            if missing:
                raise CheckError(f"The mission has no task(s) {', '.join(missing)}.")
            scope = "listed tasks"
        elif context.phase is not None:
            rows = list(Task.objects.filter(phase=context.phase).values_list("key", "status"))
            scope = f"tasks of phase {context.phase.name}"
        else:
            rows = list(Task.objects.filter(mission=context.mission).values_list("key", "status"))
            scope = "tasks of the mission"
        not_done = {key: status for key, status in rows if status not in TASK_FINISHED}
        skipped = sorted(key for key, status in rows if status == TaskStatus.SKIPPED)
        evidence = {"scope": scope, "total": len(rows), "done": len(rows) - len(not_done) - len(skipped),
                    "skipped": skipped, "not_done": not_done}
        if not_done:
            listed = ", ".join(f"{key} ({status})" for key, status in sorted(not_done.items()))
            return CheckResult(False, f"{len(not_done)} of {len(rows)} {scope} not done: {listed}.", evidence)
        return CheckResult(True, f"All {len(rows)} {scope} are done.", evidence)


@register_check
class ArtifactExists(Check):
    type = "artifact_exists"
    description = (
        "At least ``min_count`` distinct artifacts of the mission (by name: a new version of one is still one) "
        "match a kind, a name pattern and a task."
    )
    params_schema = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "kind": {"enum": ["spec", "sql", "doc", "log", "report", "data", "link"]},
            "name": {"type": "string", "minLength": 1, "description": "A glob pattern, e.g. CLAIM_SUMMARY*.yml"},
            "task": _TASK_KEY,
            "min_count": {"type": "integer", "minimum": 1},
        },
    }
    task_params = ("task",)

    def evaluate(self, params, context):
        artifacts = Artifact.objects.filter(mission=context.mission)
        if params.get("kind"):
            artifacts = artifacts.filter(kind=params["kind"])
        if params.get("task"):
            artifacts = artifacts.filter(task=context.task_by_key(params["task"]))
        rows = list(artifacts.order_by("name", "-version", "-id").values(
            "id", "name", "version", "kind", "task__key", "sha256"))
        pattern = params.get("name")
        if pattern:
            rows = [r for r in rows if fnmatch.fnmatchcase(r["name"].lower(), pattern.lower())]
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:  # newest version first: the first row of a name is its latest
            latest.setdefault(row["name"], row)
        wanted = params.get("min_count", 1)
        asked = ", ".join(f"{k}={params[k]}" for k in ("kind", "name", "task") if params.get(k)) or "any"
        evidence = {"matched": [
            {"id": r["id"], "name": r["name"], "version": r["version"], "kind": r["kind"], "task": r["task__key"],
             "sha256": r["sha256"]} for r in list(latest.values())[:50]
        ], "count": len(latest), "versions": len(rows), "min_count": wanted, "filter": asked}
        found = f"Found {len(latest)} artifact(s) matching {asked}"
        if len(rows) > len(latest):
            found += f" ({len(rows)} versions counted once per name)"
        if len(latest) < wanted:
            return CheckResult(False, f"{found}; {wanted} needed.", evidence)
        names = ", ".join(f"{r['name']} v{r['version']}" for r in list(latest.values())[:10])
        return CheckResult(True, f"{found}: {names}.", evidence)


@register_check
class ApprovalRecorded(Check):
    type = "approval_recorded"
    description = "A person approved the task's work, and it has not been re-opened since."
    params_schema = {
        "type": "object", "additionalProperties": False, "required": ["task"], "properties": {"task": _TASK_KEY},
    }
    task_params = ("task",)

    def evaluate(self, params, context):
        task = context.task_by_key(params["task"])
        # The task's own status changes: a notification about the task or one of its runs names the task too, with
        # a status of its own (a notification sent after the approval must not hide it).
        entries = list(
            HistoryEntry.objects.filter(task=task, event__startswith="task.").exclude(to_status="")
            .select_related("actor_user").order_by("-created_at", "-id")[:200]
        )
        last = entries[0] if entries else None
        evidence: dict[str, Any] = {"task": task.key, "task_status": task.status}
        if last is None or last.to_status != TaskStatus.DONE or task.status != TaskStatus.DONE:
            return CheckResult(False, f"Task {task.key} is {task.status}: no standing approval.", evidence)
        if last.from_status != TaskStatus.WAITING_APPROVAL or last.actor_user_id is None:
            evidence["finished_by"] = last.actor_label
            return CheckResult(
                False, f"Task {task.key} was finished by {last.actor_label} without a person's approval.", evidence
            )
        evidence.update({
            "approved_by": last.actor_user.get_username(), "approved_at": last.created_at.isoformat(),
            "history_entry": last.pk, "note": last.message,
        })
        return CheckResult(
            True, f"Task {task.key} approved by {last.actor_user.get_username()} at "
            f"{last.created_at:%Y-%m-%d %H:%M}.", evidence,
        )


_OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
              ">=": operator.ge}


def _comparable(value: Any, expected: Any) -> tuple[Any, Any]:
    """Compare numbers as numbers (a database may hand back Decimal or text), everything else as is."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return value, expected
    if isinstance(expected, int | float):
        try:
            return float(value), float(expected)
        except (TypeError, ValueError):
            return value, expected
    if isinstance(expected, str) and value is not None and not isinstance(value, str):
        return str(value), expected
    return value, expected


@register_check
class SqlAssert(Check):
    type = "sql_assert"
    description = "A query returning one value, compared with an expected value (==, !=, <, <=, >, >=)."
    params_schema = {
        "type": "object", "additionalProperties": False, "required": ["connection", "query", "expected"],
        "properties": {
            "connection": _CONNECTION,
            "query": {"type": "string", "minLength": 1},
            "operator": {"enum": list(_OPERATORS)},
            "expected": {"type": ["string", "number", "boolean", "null"]},
        },
    }

    def evaluate(self, params, context):
        connection = connection_named(params["connection"], mission=context.mission)
        value = query_value(connection, params["query"], mission=context.mission)
        op = params.get("operator", "==")
        left, right = _comparable(value, params["expected"])
        try:
            passed = bool(_OPERATORS[op](left, right))
        except TypeError:
            passed = False
        shown, cut = evidence_value(value)
        evidence = {"connection": connection.name, "query": params["query"], "value": shown, **cut,
                    "operator": op, "expected": params["expected"]}
        verdict = "holds" if passed else "does not hold"
        return CheckResult(passed, f"{shown!r} {op} {params['expected']!r} {verdict}.", evidence)


@register_check
class TableExists(Check):
    type = "table_exists"
    description = "Each listed table (or view) exists on the connection."
    params_schema = {
        "type": "object", "additionalProperties": False, "required": ["connection", "tables"],
        "properties": {
            "connection": _CONNECTION,
            "tables": {"type": "array", "items": _TABLE, "minItems": 1, "uniqueItems": True},
        },
    }

    def evaluate(self, params, context):
        connection = connection_named(params["connection"], mission=context.mission)
        found = find_tables(connection, params["tables"], mission=context.mission)
        missing = [name for name, real in found.items() if real is None]
        evidence = {"connection": connection.name, "found": {k: v for k, v in found.items() if v},
                    "missing": missing}
        if missing:
            return CheckResult(False, f"Missing on {connection.name}: {', '.join(missing)}.", evidence)
        return CheckResult(True, f"All {len(found)} table(s) exist on {connection.name}.", evidence)


@register_check
class RowCount(Check):
    type = "row_count"
    description = (
        "A table has at least ``min`` rows, and/or exactly as many as another query returns (e.g. a count on "
        "the source)."
    )
    params_schema = {
        "type": "object", "additionalProperties": False, "required": ["connection", "table"],
        "anyOf": [{"required": ["min"]}, {"required": ["equals_query"]}],
        "properties": {
            "connection": _CONNECTION,
            "table": _TABLE,
            "min": {"type": "integer", "minimum": 0},
            "equals_query": {"type": "string", "minLength": 1},
            "equals_connection": _CONNECTION,
        },
    }

    def evaluate(self, params, context):
        connection = connection_named(params["connection"], mission=context.mission)
        count = count_rows(connection, params["table"], mission=context.mission)
        evidence: dict[str, Any] = {"connection": connection.name, "table": params["table"], "count": count}
        problems = []
        if "min" in params:
            evidence["min"] = params["min"]
            if count < params["min"]:
                problems.append(f"{count} row(s), fewer than {params['min']}")
        if params.get("equals_query"):
            other = connection_named(params.get("equals_connection") or params["connection"],
                                     mission=context.mission)
            expected = query_value(other, params["equals_query"], mission=context.mission)
            shown, cut = evidence_value(expected)
            evidence.update({"equals_query": params["equals_query"], "equals_connection": other.name,
                             "expected": shown, **{f"expected_{k}": v for k, v in cut.items()}})
            try:
                same = int(expected) == count
            except (TypeError, ValueError):
                same = False
            if not same:
                problems.append(f"{count} row(s), but the reference query on {other.name} gives {shown!r}")
        if problems:
            return CheckResult(False, f"{params['table']}: " + "; ".join(problems) + ".", evidence)
        return CheckResult(True, f"{params['table']} has {count} row(s) as required.", evidence)


_DBT_OK = frozenset({"success", "pass", "warn"})


def _dbt_results_of(run: Run) -> tuple[dict[str, Any] | None, str]:
    """dbt's run_results (dict) recorded by a run: in its result, or as a run_results.json artifact."""
    result = run.result or {}
    for key in ("dbt_run_results", "run_results"):
        if isinstance(result.get(key), dict):
            return result[key], f"run {run.pk} result.{key}"
    artifact = (
        Artifact.objects.filter(run=run, name__iexact="run_results.json").exclude(file="")
        .order_by("-version").first()
    )
    if artifact is not None:
        with artifact.file.open("rb") as handle:
            try:
                return loads_json(handle.read().decode()), f"artifact {artifact.name} v{artifact.version}"
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise CheckError(f"{artifact.name} of run {run.pk} is not valid JSON: {error}") from None
    return None, ""


@register_check
class DbtSucceeded(Check):
    type = "dbt_succeeded"
    description = "The task's dbt invocation recorded run results, and every node succeeded (or passed)."
    params_schema = {
        "type": "object", "additionalProperties": False, "required": ["task"], "properties": {"task": _TASK_KEY},
    }
    task_params = ("task",)

    def evaluate(self, params, context):
        task = context.task_by_key(params["task"])
        if context.run is not None and context.run.task_id == task.pk:
            run = context.run  # acceptance: the run whose success is being judged
        else:
            run = Run.objects.filter(task=task, status=RunStatus.SUCCEEDED).order_by("-attempt").first()
        if run is None:
            raise CheckError(f"Task {task.key} has no successful run yet.")
        results, source = _dbt_results_of(run)
        if results is None:
            return CheckResult(False, f"Run {run.attempt} of {task.key} recorded no dbt run results.",
                               {"task": task.key, "run": run.pk})
        nodes = results.get("results") or []
        by_status: dict[str, int] = {}
        failing = []
        for node in nodes:
            status = str(node.get("status", "")).lower()
            by_status[status] = by_status.get(status, 0) + 1
            if status not in _DBT_OK:
                failing.append({"node": node.get("unique_id"), "status": status,
                                "message": str(node.get("message") or "")[:300]})
        evidence = {"task": task.key, "run": run.pk, "source": source, "nodes": len(nodes),
                    "by_status": by_status, "failing": failing[:25],
                    "invocation_id": (results.get("metadata") or {}).get("invocation_id")}
        if not nodes:
            return CheckResult(False, f"dbt ran no nodes for {task.key}.", evidence)
        if failing:
            names = ", ".join(f"{f['node']} ({f['status']})" for f in failing[:5])
            return CheckResult(False, f"{len(failing)} of {len(nodes)} dbt node(s) failed: {names}.", evidence)
        return CheckResult(True, f"All {len(nodes)} dbt node(s) of {task.key} succeeded.", evidence)
