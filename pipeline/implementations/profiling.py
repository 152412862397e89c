"""Inventory source fields: profile every allowed source table and leave a JSON and a readable report."""

from __future__ import annotations

from django.conf import settings

from agents.access import adapter_for
from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.connectors import Adapter, QueryRefused
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.implementations.common import artifact_id, beat, mission_spec, open_source, say, stop_requested, write
from pipeline.profiler import profile_markdown, profile_source
from pipeline.specfile import relationships

PROFILE_ARTIFACT = "source_profile.json"
REPORT_ARTIFACT = "source_profile.md"


@register
class ProfilingAgent(BaseAgent):
    kind = "profiling"
    description = ("Inventories the allowed source tables: declared and observed types, nulls, distinct counts, "
                   "min/max, samples, candidate keys and inferred foreign keys.")

    def run(self, context: AgentContext) -> Outcome:
        try:
            spec = mission_spec(context, required=False)
            adapter = open_source(context, spec)
        except DomainError as error:
            return Failed(error=error.message, retryable=False)
        # Each profiling thread opens its own adapter on the same connection and guard. A refusal there is kept and
        # recorded here, in the agent's thread, once the threads are done: no ORM in them.
        refusals: list[QueryRefused] = []

        def open_adapter() -> Adapter:
            return adapter_for(adapter.connection, mission=context.mission, allowed_tables=adapter.allowed_tables,
                               on_refused=refusals.append)

        try:
            def progress(message: str) -> None:
                say(context, message)
                beat(context)

            try:
                profile = profile_source(adapter, progress=progress, cancelled=lambda: stop_requested(context),
                                         relationships=relationships(spec),
                                         sample_above=settings.GENESIS_PROFILE_SAMPLE_ABOVE_ROWS,
                                         sample_rows=settings.GENESIS_PROFILE_SAMPLE_ROWS,
                                         threads=settings.GENESIS_PROFILE_THREADS, open_adapter=open_adapter)
            finally:
                for refusal in refusals:
                    if adapter.on_refused is not None:
                        adapter.on_refused(refusal)
        except InterruptedError:
            return Failed(error="Cancelled while profiling.", retryable=False)
        except DomainError as error:
            return Failed(error=error.message, retryable=False)
        finally:
            adapter.close()
        json_artifact = write(context, name=PROFILE_ARTIFACT, kind="data", content=profile,
                              content_type="application/json")
        report = write(context, name=REPORT_ARTIFACT, kind="report", content=profile_markdown(profile),
                       content_type="text/markdown")
        tables = {name: info["row_count"] for name, info in profile["tables"].items()}
        columns = sum(len(info["columns"]) for info in profile["tables"].values())
        fks = [f"{fk['table']}.{fk['column']} -> {fk['ref_table']}.{fk['ref_column']}"
               for fk in profile["foreign_keys"]]
        say(context, f"profiled {len(tables)} tables, {columns} columns; foreign keys: {', '.join(fks) or 'none'}")
        return Succeeded(
            outputs={"tables": tables, "columns": columns, "foreign_keys": fks,
                     "profile_artifact": artifact_id(json_artifact), "report_artifact": artifact_id(report)},
            summary=f"Profiled {len(tables)} tables ({columns} columns) on {profile['connection']}; "
                    f"{len(fks)} foreign keys inferred.",
        )
