"""What the pipeline's agents recorded, read back for people: per target, the data-quality results (the data-quality
agent's and each refresh's ``dq_results.json``), the reconciliation of the rows built with the source (the backfill's
``row_counts.json``, the validation agent's ``validation.json``), the freshness of the targets (the last successful
refresh or dbt build, the next run of the django-q2 refresh schedule) and the deliverables with what each one is.

Reads for several missions at once, a fixed number of queries whatever their number: the newest report of each kind
per mission (one query with a grouped subquery), the refresh events (one grouped query), the dbt builds (one grouped
query) and the refresh schedules (one query). Report files are read from storage, at most ``REPORT_BYTES`` each; an
unreadable or malformed report reads as absent, never as an error page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Case, CharField, Max, Q, Value, When
from django_q.models import Schedule

from genesis.documents import loads_json
from history.models import HistoryEntry
from tasks.choices import RunStatus
from tasks.models import Artifact, Run

REPORT_BYTES = 2 * 1024 * 1024
ROW_COUNTS = "row_counts.json"
VALIDATION = "validation.json"
QUALITY = "dq_results.json"
SCHEDULE_PREFIX = "genesis-refresh-mission-"

# What the agents' standard outputs are, said for a stakeholder (the deliverables table).
DESCRIPTIONS = {
    "dq_results.json": "Data-quality results per check (failing rows, sample keys), as JSON",
    "dq_report.md": "Data-quality report: every check per target with failing rows and sample keys",
    "dq_queries.sql": "The SQL behind each data-quality check, to re-run by hand",
    "row_counts.json": "Rows built per target and month, against the rows in the source",
    "backfill_report.json": "Backfill: each month's rows and measure totals against the source, the months rebuilt",
    "backfill_report.md": "Backfill report: each month's expected and built rows, its variance and whether rebuilt",
    "validation.json": "Validation of the built tables: columns and types against the spec, row counts",
    "validation_report.md": "Validation report: each target's columns and types against the spec",
    "run_results.json": "dbt's own record of the run (each model and test with its status and time)",
    "dbt_test.log": "dbt test output",
    "dbt.log": "dbt output of the build",
    "schedule.json": "The refresh schedule (cron, next run)",
    "handoff.md": "Hand-off notes: how the targets are built, refreshed and checked",
}
KIND_DESCRIPTIONS = {
    "sql": "SQL", "spec": "Specification", "log": "Log", "report": "Report", "data": "Data", "link": "Link",
    "doc": "Document",
}


@dataclass
class TargetQuality:
    """The data-quality checks of one target in the newest report: how many passed, which failed and on how many
    rows."""

    target: str
    checks: int = 0
    passed: int = 0
    failing_rows: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checks > 0 and not self.failures

    @property
    def failed(self) -> int:
        return self.checks - self.passed


@dataclass
class TargetReconciliation:
    """Rows built against rows in the source for one target, month by month, and the validation of its table."""

    target: str
    months: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    expected: list[int | None] = field(default_factory=list)
    validation: dict[str, Any] | None = None

    @property
    def total(self) -> int:
        return sum(self.rows)

    @property
    def expected_total(self) -> int | None:
        known = [e for e in self.expected if e is not None]
        return sum(known) if known else None

    @property
    def variances(self) -> list[dict[str, Any]]:
        """Months whose built rows differ from the source: month, built, expected and the difference."""
        return [{"month": m, "rows": r, "expected": e, "difference": r - e}
                for m, r, e in zip(self.months, self.rows, self.expected, strict=True) if e is not None and r != e]

    @property
    def reconciled(self) -> int:
        return sum(1 for e, r in zip(self.expected, self.rows, strict=True) if e is not None and e == r)

    @property
    def compared(self) -> int:
        return sum(1 for e in self.expected if e is not None)

    @property
    def validation_problems(self) -> list[str]:
        v = self.validation
        if not v:
            return []
        if not v.get("exists", False):
            return [f"{self.target} does not exist"]
        found = [f"lacks column {c}" for c in v.get("missing_columns") or []]
        found += [f"{m.get('column')} is {m.get('actual')}, spec says {m.get('expected')}"
                  for m in v.get("type_mismatches") or [] if isinstance(m, dict)]
        return found

    @property
    def ok(self) -> bool:
        return not self.variances and not self.validation_problems

    @property
    def first(self) -> str:
        return self.months[0] if self.months else ""

    @property
    def last(self) -> str:
        return self.months[-1] if self.months else ""

    def chart(self, element_id: str) -> dict[str, Any]:
        """What the page's Chart.js chart of this target is drawn from (read from the ``element_id`` script): rows
        built per month and, when known, the source's rows; the same points for the table beside it."""
        datasets: list[dict[str, Any]] = [{"label": "Rows built", "data": self.rows}]
        if self.compared:
            datasets.append({"label": "Rows in the source", "data": self.expected, "type": "line"})
        return {"id": element_id, "target": self.target, "labels": self.months, "datasets": datasets,
                "x_title": "Month", "y_title": "Rows", "total": self.total, "first": self.first, "last": self.last,
                "points": [{"month": m, "rows": r, "expected": e}
                           for m, r, e in zip(self.months, self.rows, self.expected, strict=True)]}


@dataclass
class Freshness:
    """When the mission's targets were last built successfully, and when the schedule runs next."""

    last_success: datetime | None = None
    last_success_by: str = ""
    last_failure: datetime | None = None
    next_run: datetime | None = None
    cron: str = ""

    @property
    def failing_since_success(self) -> bool:
        return self.last_failure is not None and (self.last_success is None or self.last_failure > self.last_success)


@dataclass
class MissionReports:
    """Everything the dashboard shows of one mission's pipeline outcomes."""

    quality: list[TargetQuality] = field(default_factory=list)
    quality_report: Artifact | None = None
    reconciliation: list[TargetReconciliation] = field(default_factory=list)
    reconciliation_report: Artifact | None = None
    freshness: Freshness = field(default_factory=Freshness)

    @property
    def failing_checks(self) -> int:
        return sum(t.failed for t in self.quality)


def _read_json(artifact: Artifact | None) -> Any:
    if artifact is None or not artifact.file:
        return None
    try:
        with artifact.file.open("rb") as handle:
            return loads_json(handle.read(REPORT_BYTES).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def quality_by_target(records: Any) -> list[TargetQuality]:
    """Per target, from the records of a ``dq_results.json`` (each a check result with check, target, column,
    passed, failing_rows and detail)."""
    targets: dict[str, TargetQuality] = {}
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict) or not record.get("target"):
            continue
        item = targets.setdefault(str(record["target"]), TargetQuality(target=str(record["target"])))
        item.checks += 1
        if record.get("passed", False):
            item.passed += 1
            continue
        try:
            failing = int(record.get("failing_rows") or 0)
        except (TypeError, ValueError):
            failing = 0
        item.failing_rows += failing
        where = f"{record['target']}.{record['column']}" if record.get("column") else str(record["target"])
        text = f"{record.get('check', 'check')} on {where}: {failing:,} failing row{'s' if failing != 1 else ''}"
        if record.get("detail"):
            text += f" ({record['detail']})"
        item.failures.append(text)
    return sorted(targets.values(), key=lambda t: t.target)


def reconciliation_by_target(row_counts: Any, validation: Any = None) -> list[TargetReconciliation]:
    """Per target, the months of a ``row_counts.json`` (records with target, month, rows and, from a backfill,
    expected), joined with the target's entry in a ``validation.json``."""
    if isinstance(row_counts, dict):
        row_counts = row_counts.get("rows", [])
    points: dict[str, dict[str, tuple[int, int | None]]] = {}
    for record in row_counts if isinstance(row_counts, list) else []:
        if not isinstance(record, dict):
            continue
        try:
            target, month, rows = str(record["target"]), str(record["month"]), int(record["rows"])
            expected = int(record["expected"]) if record.get("expected") is not None else None
        except (KeyError, TypeError, ValueError):
            continue
        points.setdefault(target, {})[month] = (rows, expected)
    validations = {}
    if isinstance(validation, dict):
        for entry in validation.get("targets") or []:
            if isinstance(entry, dict) and entry.get("target"):
                validations[str(entry["target"]).upper()] = entry
    names = sorted(set(points) | {v["target"] for v in validations.values()})
    results = []
    for name in names:
        months = sorted(points.get(name, {}).items())
        results.append(TargetReconciliation(
            target=name, months=[m for m, _ in months], rows=[r for _, (r, _) in months],
            expected=[e for _, (_, e) in months], validation=validations.get(name.upper())))
    return results


def _category():
    return Case(
        When(name=ROW_COUNTS, then=Value("rows")),
        When(name=VALIDATION, then=Value("validation")),
        When(Q(name=QUALITY) | Q(name__endswith=f"-{QUALITY}"), then=Value("quality")),
        default=Value(""), output_field=CharField(),
    )


def newest_reports(mission_ids: list[int]) -> dict[int, dict[str, Artifact]]:
    """Per mission, the newest stored artifact of each report kind (``rows``, ``validation``, ``quality``): one query
    (the newest id of each kind per mission is a grouped subquery)."""
    newest = (
        Artifact.objects.filter(mission_id__in=mission_ids)
        .filter(Q(name__in=[ROW_COUNTS, VALIDATION, QUALITY]) | Q(name__endswith=f"-{QUALITY}"))
        .exclude(file="")
        .annotate(category=_category())
        .values("mission_id", "category")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    found: dict[int, dict[str, Artifact]] = {}
    for artifact in Artifact.objects.filter(pk__in=newest).annotate(category=_category()):
        found.setdefault(artifact.mission_id, {})[artifact.category] = artifact
    return found


def freshness_of(mission_ids: list[int]) -> dict[int, Freshness]:
    """Per mission: the last successful refresh (or dbt build task), the last failed one, and the refresh schedule's
    next run. Three queries."""
    found = {pk: Freshness() for pk in mission_ids}
    events = (HistoryEntry.objects.filter(mission_id__in=mission_ids,
                                          event__in=["refresh.succeeded", "refresh.failed"])
              .values("mission_id", "event").annotate(at=Max("created_at")).values_list("mission_id", "event", "at"))
    for mission_id, event, at in events:
        if event == "refresh.succeeded":
            found[mission_id].last_success, found[mission_id].last_success_by = at, "refresh"
        else:
            found[mission_id].last_failure = at
    builds = (Run.objects.filter(task__mission_id__in=mission_ids, task__owner_agent__kind="dbt_build",
                                 status=RunStatus.SUCCEEDED)
              .values("task__mission_id").annotate(at=Max("finished_at")).values_list("task__mission_id", "at"))
    for mission_id, at in builds:
        item = found[mission_id]
        if at is not None and (item.last_success is None or at > item.last_success):
            item.last_success, item.last_success_by = at, "dbt build"
    names = {f"{SCHEDULE_PREFIX}{pk}": pk for pk in mission_ids}
    for name, next_run, cron in Schedule.objects.filter(name__in=list(names)).values_list("name", "next_run", "cron"):
        found[names[name]].next_run, found[names[name]].cron = next_run, cron or ""
    return found


def mission_reports(mission_ids: list[int]) -> dict[int, MissionReports]:
    """The dashboard's pipeline outcomes of several missions (see the module's docstring for the cost)."""
    if not mission_ids:
        return {}
    reports = newest_reports(mission_ids)
    freshness = freshness_of(mission_ids)
    found = {}
    for pk in mission_ids:
        newest = reports.get(pk, {})
        rows = newest.get("rows")
        validation = newest.get("validation")
        found[pk] = MissionReports(
            quality=quality_by_target(_read_json(newest.get("quality"))),
            quality_report=newest.get("quality"),
            reconciliation=reconciliation_by_target(_read_json(rows), _read_json(validation)),
            reconciliation_report=rows or validation,
            freshness=freshness[pk],
        )
    return found


def describe_artifact(artifact: Artifact) -> str:
    """What an artifact is, for a person: the agents' standard outputs by name, otherwise its kind and task."""
    name = artifact.name
    if name.startswith("refresh-") and "-" in name[8:]:
        name = name.split("-", 2)[-1]  # refresh-<stamp>-dq_results.json
        prefix = "Scheduled refresh: "
    else:
        prefix = ""
    text = DESCRIPTIONS.get(name)
    if text is None:
        text = KIND_DESCRIPTIONS.get(artifact.kind, artifact.kind.capitalize())
        task = getattr(artifact, "task", None) if artifact.task_id else None
        if task is not None:
            text += f" from {task.title}"
    return prefix + text


def deliverables(artifacts: list[Artifact], *, limit: int = 12) -> list[Artifact]:
    """The newest version of each named artifact (newest first), each with its ``description``."""
    seen: set[tuple[int | None, str]] = set()
    chosen = []
    for artifact in artifacts:
        key = (artifact.task_id, artifact.name)
        if key in seen:
            continue
        seen.add(key)
        artifact.description = describe_artifact(artifact)
        chosen.append(artifact)
        if len(chosen) == limit:
            break
    return chosen
