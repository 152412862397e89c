"""A mapping task of a mission launched ``from_mission``: instead of mapping its target again, it takes that mission's
approved mapping spec of the target and verifies it against the current source (the spec still covers the target's
columns, its SQL runs on the source as it is now, no grain key falls on two rows, and each summed or counted measure
of its rows reconciles with the source's own total), then proposes it unchanged for approval, saying where it comes
from. Mapping is done and approved once; each environment re-checks and builds it."""

from __future__ import annotations

from typing import Any

from agents.base import AgentContext, Failed, NeedsApproval, Outcome
from agents.connectors import ConnectorError
from genesis.exceptions import DomainError
from pipeline.choices import MappingStatus
from pipeline.dbt.spec import target_from_dict
from pipeline.implementations.common import artifact_id, mission_spec, open_source, say, write
from pipeline.models import MappingSpecVersion
from pipeline.quality.reconcile import reconcile_mapping
from pipeline.services import mapping_spec_propose
from pipeline.specfile import target_spec


def approved_version(mission_id: int, target: str):
    """The approved mapping spec version of ``target`` in mission ``mission_id`` (the newest approved), or None."""
    return (MappingSpecVersion.objects.select_related("spec", "spec__mission")
            .filter(spec__mission_id=mission_id, spec__target_table__iexact=target, status=MappingStatus.APPROVED)
            .order_by("-number").first())


def verify_reused(context: AgentContext, *, target_name: str, dry_run, refusal) -> Outcome:
    """Verify and propose the approved spec of ``target_name`` from ``config["from_mission"]``. ``dry_run`` and
    ``refusal`` are the mapping agent's own (the same dry run and the same refusals as a fresh mapping)."""
    origin = context.config["from_mission"]
    try:
        spec = mission_spec(context)
        target = target_spec(spec, target_name)
    except DomainError as error:
        return Failed(error=error.message, retryable=False)
    target_name = target["name"]
    approved = approved_version(int(origin), target_name)
    if approved is None:
        return Failed(error=f"{target_name}: mission {origin} has no approved mapping spec of this target to reuse; "
                            "launch without from_mission to map it.", retryable=False)
    content: dict[str, Any] = dict(approved.content or {})
    have = {str(c.get("name", "")).upper() for c in content.get("columns") or []}
    missing = [c["name"] for c in target["columns"] if c["name"].upper() not in have]
    if missing:
        return Failed(error=f"{target_name}: the spec file asks for column(s) {', '.join(missing)}, which the "
                            f"approved mapping of “{approved.spec.mission.name}” (v{approved.number}) does not map; "
                            "launch without from_mission to map the target again.", retryable=False)
    try:
        adapter = open_source(context, spec)
    except DomainError as error:
        return Failed(error=error.message, retryable=False)
    try:
        content["dry_run"] = dry_run(adapter, content, {"tables": {}})
        refused = refusal(adapter, content, target_name)
        # The measures' totals over the mapping's rows, on the source as it is now: a source whose rows no longer
        # fit the approved joins (e.g. lines whose parent is missing) is refused here, not after the build.
        reconciled = [] if refused is not None else reconcile_mapping(
            adapter, target_from_dict(content, sql=approved.sql, dialect=approved.dialect))
    except ConnectorError as error:
        return Failed(error=f"{target_name}: the approved mapping of “{approved.spec.mission.name}” (v"
                            f"{approved.number}) no longer runs on the source: {error.message}", retryable=False)
    finally:
        adapter.close()
    if refused is not None:
        return refused
    failed = [r for r in reconciled if not r.passed]
    if failed:
        return Failed(error=f"{target_name}: the approved mapping of “{approved.spec.mission.name}” (v"
                            f"{approved.number}) does not reconcile with the current source: "
                            + "; ".join(r.describe() for r in failed)
                            + ". Map the target again (launch without from_mission) or fix the source.",
                      retryable=False)
    content["reconciliation"] = [{"column": r.column, "passed": r.passed, "detail": r.detail} for r in reconciled]
    content["reused_from"] = {"mission": approved.spec.mission_id, "mission_name": approved.spec.mission.name,
                              "version": approved.number}
    version = mapping_spec_propose(
        mission=context.mission, target_table=target_name, content=content, sql=approved.sql,
        dialect=approved.dialect, lineage=approved.lineage, task=context.task, run=context.run, actor=context.agent)
    artifact = write(context, name=f"{target_name}.mapping_spec.json", kind="spec", content=content,
                     content_type="application/json")
    write(context, name=f"{target_name}.sql", kind="sql", content=approved.sql + "\n", content_type="application/sql")
    dry = content["dry_run"]
    summary = (f"{target_name} mapping spec v{version.number}: the approved v{approved.number} of "
               f"“{approved.spec.mission.name}”, not mapped again; verified on the current source: "
               f"{dry['rows']} rows, {dry['duplicate_grain_rows']} duplicate grain keys, "
               f"{len(reconciled)} measure total(s) reconciled with the source.")
    say(context, summary)
    return NeedsApproval(summary=summary, outputs={
        "mapping_spec_id": version.spec_id, "version": version.number, "target": target_name, "rows": dry["rows"],
        "spec_artifact": artifact_id(artifact), "reused_from": content["reused_from"]})
