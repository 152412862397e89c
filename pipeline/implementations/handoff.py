"""The handoff agent: the mapping specs, the dbt project, the data-quality queries, run logs, the backfill report
and handoff notes, as artifacts (and one zip with all of them)."""

from __future__ import annotations

import io
import json
import zipfile

from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.choices import MappingStatus
from pipeline.dbt.build import plan_build, target_row_counts, write
from pipeline.models import MappingSpecVersion


def run_logs(context: AgentContext) -> str:
    chunks = []
    for run in context.mission_runs():
        chunks.append(f"===== {run['task']} attempt {run['attempt']}: {run['status']} =====")
        chunks.append((run["log"] or "(no log)").rstrip())
        if run["error"]:
            chunks.append(f"error: {run['error']}")
        chunks.append("")
    return "\n".join(chunks) + "\n"


def notes(*, mission, plan, rows: dict[str, int], specs: list[dict], found: dict[str, bool]) -> str:
    lines = [f"# Handoff: {mission.name}", "", mission.objective or "", "", "## What was built", ""]
    lines += [f"- **{t.name}** ({len(t.columns)} columns, grain {', '.join(t.grain) or '-'}): {rows.get(t.name, 0):,} "
              f"rows in {plan.target.name} ({plan.target.engine})." for t in plan.targets]
    lines += ["", f"From {plan.source.name}; dbt project `{plan.project.name}` revision `{plan.project.revision[:12]}`"
                  + (f", backfill partitioned by {plan.project.partition.table}.{plan.project.partition.column}"
                     if plan.project.partition else "") + ".", "", "## Mapping specs", ""]
    lines += [f"- {s['target']} v{s['version']} ({s['status']})" for s in specs] or ["- none approved"]
    lines += ["", "## Artifacts in this handoff", ""]
    lines += [f"- {name}{'' if ok else ' (not produced by this mission)'}" for name, ok in found.items()]
    lines += [
        "", "## How to re-run", "",
        "- Headless, the whole mission: `python manage.py run_mission <id> --wait`.",
        "- The refresh alone: it runs on its django-q2 schedule `genesis-refresh-mission-"
        f"{mission.pk}` (admin → Scheduled tasks); `python manage.py shell -c \"from pipeline.jobs import "
        f"refresh_mission; print(refresh_mission({mission.pk}))\"` runs it at once.",
        "- With dbt alone: unzip `dbt_project.zip`, write a `profiles.yml` with a `genesis` profile for your target "
        "(on SQLite attach the bronze file as schema `bronze`), then `dbt build --project-dir <dir>`; "
        "`dbt run --vars '{genesis_month: \"2023-01\"}'` rebuilds one month.",
        "- In another environment: define it (dev/test/stage/prod) and request its build from the mission.",
    ]
    return "\n".join(lines) + "\n"


@register
class HandoffAgent(BaseAgent):
    kind = "handoff"
    description = ("Attaches the mapping specs, the dbt project (zip), the data-quality queries, run logs, the "
                   "backfill report and handoff notes (what was built, row counts, how to re-run).")

    def run(self, context: AgentContext) -> Outcome:
        mission = context.mission
        try:
            plan = plan_build(mission=mission, config=context.config, connections=context.connections)
            rows = target_row_counts(plan)
        except DomainError as error:
            return Failed(error=str(error), retryable=False)

        specs = [{"target": v.spec.target_table, "version": v.number, "status": v.status, "sql": v.sql,
                  "dialect": v.dialect, "content": v.content, "lineage": v.lineage}
                 for v in MappingSpecVersion.objects.filter(spec__mission=mission, status=MappingStatus.APPROVED)
                 .select_related("spec").order_by("spec__target_table", "-number")]
        if not specs:  # inline targets (ad-hoc runs): ship what was built from
            specs = [{"target": t.name, "version": t.version or 0, "status": "inline", "sql": t.sql,
                      "dialect": t.dialect, "content": None, "lineage": None} for t in plan.targets]
        bundle: dict[str, bytes] = {
            "mapping_specs.json": json.dumps(specs, indent=2, default=str).encode(),
            "dbt_project.zip": plan.project.zip_bytes(),
            "run_logs.txt": run_logs(context).encode(),
        }
        found = {"mapping_specs.json": True, "dbt_project.zip": True, "run_logs.txt": True}
        for name in ("dq_queries.sql", "dq_report.md", "validation_report.md", "backfill_report.md",
                     "backfill_report.json"):
            content = context.read_artifact(name)
            found[name] = content is not None
            if content is not None:
                bundle[name] = content
        bundle["handoff_notes.md"] = notes(mission=mission, plan=plan, rows=rows, specs=specs, found=found).encode()
        kinds = {".json": "spec", ".zip": "data", ".sql": "sql", ".md": "doc", ".txt": "log"}
        for name, content in bundle.items():
            kind = "report" if name.startswith(("dq_report", "validation", "backfill")) else next(
                k for suffix, k in kinds.items() if name.endswith(suffix))
            write(context, name=f"handoff-{name}", kind=kind, content=content)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for name, content in bundle.items():
                zipped.writestr(f"handoff/{name}", content)
        write(context, name="handoff.zip", kind="data", content=archive.getvalue(), content_type="application/zip")
        missing = [name for name, ok in found.items() if not ok]
        return Succeeded(outputs={"rows": rows, "files": sorted(bundle), "missing": missing,
                                  "revision": plan.project.revision},
                         summary=f"Handoff of {len(bundle)} files" + (f"; not found: {', '.join(missing)}"
                                                                       if missing else "") + ".")
