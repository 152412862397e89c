"""A refresh of a mission's targets outside its task graph: the scheduled job and environment builds call this.

It rebuilds the approved dbt project (warm manifest), re-runs the data-quality checks, stores the results as
mission artifacts, writes history, and on failure tells the mission's escalation channels.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

from genesis.exceptions import DomainError
from history.services import history_record
from pipeline.dbt.build import dbt_root, plan_build, target_row_counts
from pipeline.quality.checks import run_checks
from tasks import services as task_services
from tasks.models import Task
from tasks.notifications import notify


@dataclass
class RefreshResult:
    """The outcome of one refresh: what was built, which checks failed, how long it took."""

    ok: bool
    label: str
    revision: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    error: str = ""
    failed_checks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # A schedule check's: the models were run at this revision against this target by this process, so they were
    # not compiled again.
    built_here: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "label": self.label, "revision": self.revision, "rows": self.rows,
                "error": self.error, "failed_checks": self.failed_checks, "seconds": round(self.seconds, 3),
                "built_here": self.built_here}


def _config_for(mission) -> dict:
    """The build config of the mission's dbt task (partition, references, ...) without its inline targets when the
    mission has approved specs."""
    task = Task.objects.filter(mission=mission, owner_agent__kind="dbt_build").order_by("position").first()
    return dict(task.config or {}) if task else {}


def refresh_run(*, mission, label: str = "scheduled refresh", config: dict | None = None,
                target=None, actor=None, check_quality: bool = True) -> RefreshResult:
    """Build and check the mission's targets once; ``target`` (a Connection) overrides where to build."""
    started = time.monotonic()
    config = dict(config if config is not None else _config_for(mission))
    if target is not None:
        config["target_connection"] = target.name
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    history_record(mission=mission, event="refresh.started", actor=actor, message=f"{label.capitalize()} started.",
                   data={"label": label})
    result = RefreshResult(ok=False, label=label)
    try:
        plan = plan_build(mission=mission, config=config, connections={target.name: target} if target else {})
        result.revision = plan.project.revision
        run_dir = dbt_root() / f"mission-{mission.pk}" / "refreshes" / f"{stamp}-{label.replace(' ', '-')}"
        invocation = plan.invoke(["build"], target_dir=Path(run_dir))
        _attach(mission, f"refresh-{stamp}-run_results.json", "report", json.dumps(invocation.summary(), indent=2),
                actor)
        _attach(mission, f"refresh-{stamp}-dbt.log", "log", "\n".join(invocation.log_lines) + "\n", actor)
        if not invocation.success:
            result.error = f"dbt build failed: {invocation.failure_text()}"
        else:
            result.rows = target_row_counts(plan)
            if check_quality:
                # After the history is built: an incremental target must hold every period of the source.
                checks = run_checks(mission=mission, targets=plan.targets, target_connection=plan.target,
                                    source_connection=plan.source, references=config.get("references"),
                                    partition=plan.project.partition, every_period=True)
                _attach(mission, f"refresh-{stamp}-dq_results.json", "report",
                        json.dumps([c.as_dict() for c in checks], indent=2, default=str), actor)
                result.failed_checks = [c.describe() for c in checks if not c.passed]
                if result.failed_checks:
                    result.error = "Data-quality checks failed: " + "; ".join(result.failed_checks)
            result.ok = not result.error
    except DomainError as error:
        result.error = str(error)
    except Exception as error:  # noqa: BLE001 - a refresh records any failure instead of dying silently
        result.error = f"{type(error).__name__}: {error}"
    result.seconds = time.monotonic() - started
    event = "refresh.succeeded" if result.ok else "refresh.failed"
    message = (f"{label.capitalize()} built {', '.join(f'{k} {v:,}' for k, v in result.rows.items())} rows."
               if result.ok else f"{label.capitalize()} failed: {result.error}")
    history_record(mission=mission, event=event, actor=actor, message=message[:2000], data=result.as_dict())
    if not result.ok:
        notify(mission=mission, event=event, subject=f"[Genesis] {mission.name}: {label} failed",
               body=f"{message}\n\nRevision {result.revision[:12] or '-'}; see the mission's history and artifacts.")
    return result


def refresh_check(*, mission, func: str, actor=None) -> RefreshResult:
    """What a scheduled refresh needs, checked without rebuilding: the job's function imports, the approved project
    generates and compiles against the target (warm manifest), and the targets it refreshes are there. Recorded as
    ``refresh.checked`` (or ``refresh.check_failed``)."""
    started = time.monotonic()
    result = RefreshResult(ok=False, label="schedule check")
    try:
        import_string(func)
        plan = plan_build(mission=mission, config=_config_for(mission))
        result.revision = plan.project.revision
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        # Models this worker has just run at this revision against this target compile: not compiled again.
        result.built_here = plan.models_ran()
        compiled = None if result.built_here else plan.invoke(
            ["compile", "--select", "resource_type:model"], write_results=False,
            target_dir=dbt_root() / f"mission-{mission.pk}" / "refreshes" / f"{stamp}-check")
        if compiled is not None and not compiled.success:
            result.error = f"dbt compile failed: {compiled.failure_text()}"
        else:
            result.rows = target_row_counts(plan)
            result.ok = True
    except ImportError as error:
        result.error = f"The scheduled function {func} does not import: {error}"
    except DomainError as error:
        result.error = str(error)
    except Exception as error:  # noqa: BLE001 - a missing target table, an unreachable database: say which
        result.error = f"{type(error).__name__}: {error}"
    result.seconds = time.monotonic() - started
    how = "was built by this worker" if result.built_here else "compiles"
    message = (f"The scheduled refresh {how} at revision {result.revision[:12]} and finds "
               f"{', '.join(f'{k} {v:,}' for k, v in result.rows.items())} rows to refresh." if result.ok
               else f"The scheduled refresh would fail: {result.error}")
    history_record(mission=mission, event="refresh.checked" if result.ok else "refresh.check_failed", actor=actor,
                   message=message[:2000], data=result.as_dict())
    return result


def _attach(mission, name: str, kind: str, content: str, actor) -> None:
    try:
        # A refresh keeps running after the mission is completed or closed, and records its reports there.
        task_services.artifact_create(mission=mission, kind=kind, name=name, file=content, actor=actor,
                                      on_finished_mission=True)
    except DomainError as error:
        if error.code != "file_too_large":
            raise
