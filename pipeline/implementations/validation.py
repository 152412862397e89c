"""The validation agent: compares the built tables on the validation connection with the spec."""

from __future__ import annotations

from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.choices import Purpose
from agents.models import Connection
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.dbt.build import log, resolve_connections, write, write_json
from pipeline.dbt.spec import targets_for
from pipeline.quality.validation import TableValidation, validate


def validation_connection(context: AgentContext):
    """``config["validation_connection"]``, else a validation-purpose connection of the task, else the target."""
    name = context.config.get("validation_connection")
    if name:
        if name in context.connections:
            return context.connections[name]

        found = Connection.objects.filter(name=name).first()
        if found is None:
            raise DomainError(f"The validation connection {name!r} does not exist.", field="validation_connection")
        return found
    for connection in context.connections.values():
        if connection.purpose == Purpose.VALIDATION:
            return connection
    return resolve_connections(mission=context.mission, config=context.config, connections=context.connections)[1]


def _elsewhere(context: AgentContext, connection, results: list[TableValidation]) -> str:
    """When no target exists on the validation connection and it reads another database than the one the targets
    were built in, say so: the likely mistake is a validation connection to some other (empty) database."""
    if not results or any(r.exists for r in results):
        return ""
    try:
        target = resolve_connections(mission=context.mission, config=context.config, connections=context.connections)[1]
    except DomainError:
        return ""
    if target is None or (target.engine, target.location) == (connection.engine, connection.location):
        return ""
    return (f". None of the targets is on {connection.name}, which reads another database than {target.name} "
            f"(where they are built): the validation connection must read the targets' database.")


def report_markdown(connection, results: list[TableValidation]) -> str:
    lines = [f"# Validation on {connection.name} ({connection.engine})", ""]
    for r in results:
        lines.append(f"## {r.target}: {'passed' if r.passed else 'FAILED'}")
        if not r.exists:
            lines += ["The table does not exist.", ""]
            continue
        lines += [f"{r.row_count:,} rows.", "", "| column | spec type | declared | ok |", "|---|---|---|---|"]
        lines += [f"| {c['column']} | {c['expected']} | {c['actual']} | {'yes' if c['matches'] else 'NO'} |"
                  for c in r.columns]
        lines += [f"| {c} | (spec) | missing | NO |" for c in r.missing_columns]
        if r.extra_columns:
            lines.append(f"\nColumns not in the spec: {', '.join(r.extra_columns)}.")
        lines.append("")
    return "\n".join(lines)


@register
class ValidationAgent(BaseAgent):
    kind = "validation"
    description = ("Validates the built models through the validation connection: tables and declared column "
                   "types (sqlite_master/PRAGMA table_info or information_schema) against the spec, counts, samples.")

    def run(self, context: AgentContext) -> Outcome:
        try:
            targets = targets_for(context.mission, context.config)
            connection = validation_connection(context)
            results = validate(mission=context.mission, targets=targets, connection=connection)
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        write_json(context, "validation.json", "report",
                   {"connection": connection.name, "engine": connection.engine,
                    "targets": [r.as_dict() for r in results]})
        write(context, name="validation_report.md", kind="report", content=report_markdown(connection, results),
              content_type="text/markdown")
        problems = [p for r in results for p in r.problems()]
        for problem in problems:
            log(context, problem)
        outputs = {"connection": connection.name, "rows": {r.target: r.row_count for r in results},
                   "problems": problems}
        if problems:
            return Failed(error="Validation failed: " + "; ".join(problems) + _elsewhere(context, connection, results),
                          retryable=False, outputs=outputs)
        return Succeeded(outputs=outputs, summary=f"{len(results)} targets match their specs on {connection.name}.")
