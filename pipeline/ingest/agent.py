"""The ``ingest`` agent: a blueprint step that loads files into a source connection.

Its task config::

    connection: MY_SOURCE            # the connection to load into (default: the mission's source connection)
    paths: [claims.csv, exports/]    # files or folders, relative to GENESIS_INGEST_ROOT (or one string)
    options: {delimiter: ";", header: true, encoding: latin-1, skip: 1, sample_size: -1}   # all optional

The connection must be granted to the mission (launching a blueprint grants the connections its configs name);
``files_ingest`` asks ``agents.access.require_use`` before anything is read.
"""

from __future__ import annotations

import json

from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.connectors import ConnectorError
from agents.models import Connection
from agents.registry import register
from pipeline.ingest.errors import IngestError
from pipeline.ingest.services import files_ingest

REPORT_ARTIFACT = "ingest_report.json"


@register
class IngestAgent(BaseAgent):
    kind = "ingest"
    name = "IngestAgent"
    description = ("Loads CSV, Parquet and JSON files (or folders of them) into tables of a source connection, one "
                   "table per file with the types DuckDB infers; a re-run replaces each table's content.")

    def run(self, context: AgentContext) -> Outcome:
        config = context.config or {}
        connection = _connection(context)
        if connection is None:
            return Failed(error="No connection to load into: set connection in the task config or give the mission "
                                "a source connection.", retryable=False)
        if isinstance(connection, str):
            return Failed(error=f"No connection is named {connection!r} (task config: connection).", retryable=False)
        paths = config.get("paths", config.get("path"))
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            return Failed(error="The task config's paths is a file or folder name, or a list of them.",
                          retryable=False)
        options = config.get("options") or {}
        if not isinstance(options, dict):
            return Failed(error="The task config's options is a mapping (delimiter, header, encoding, skip, "
                                "sample_size).",
                          retryable=False)

        def progress(message: str) -> None:
            if context.log is not None:
                context.log.info(message)
            if callable(context.heartbeat):
                context.heartbeat()

        try:
            report = files_ingest(connection=connection, paths=paths, mission=context.mission, options=options,
                                  progress=progress,
                                  cancelled=context.cancelled if callable(context.cancelled) else None)
        except IngestError as error:
            return Failed(error=error.message, retryable=error.code == "unreachable")
        except ConnectorError as error:  # the connection is not granted to the mission
            return Failed(error=error.message, retryable=False)
        outputs = report.as_dict()
        if context.write_artifact is not None:
            artifact = context.write_artifact(name=REPORT_ARTIFACT, kind="data", content=json.dumps(outputs, indent=2),
                                              content_type="application/json")
            outputs["report_artifact"] = getattr(artifact, "pk", None)
        return Succeeded(outputs=outputs, summary=report.summary())


def _connection(context: AgentContext) -> Connection | str | None:
    """The task config's ``connection`` (from the context's connections, else by name), else the mission's source;
    the name alone when no connection has it."""
    name = (context.config or {}).get("connection")
    if not name:
        return getattr(context.mission, "source_connection", None)
    if name in context.connections:
        return context.connections[name]
    return Connection.objects.filter(name=name).first() or name
