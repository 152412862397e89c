"""Initialize tooling and agents: connections reachable, allowed tables present, dbt and its adapters importable,
the mission's workspace created; every check and version recorded in a report artifact."""

from __future__ import annotations

import importlib
import platform
import sqlite3
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
from django.conf import settings

from agents.access import adapter_for
from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.choices import Purpose
from agents.connectors import ConnectorError
from agents.connectors.duckdb import duckdb_config, duckdb_path, location_problem
from agents.connectors.sqlite import sqlite_path
from agents.models import Connection
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.dbt.project import bronze_problem
from pipeline.implementations.common import (
    allowed_tables,
    artifact_id,
    beat,
    mission_spec,
    say,
    source_connection,
    write,
)

DBT_MODULES = {"dbt-core": "dbt.cli.main", "dbt-sqlite": "dbt.adapters.sqlite", "dbt-postgres": "dbt.adapters.postgres",
               "dbt-duckdb": "dbt.adapters.duckdb"}
PACKAGES = ["sqlglot", "Django", "django-q2", "psycopg", "jsonschema", "PyYAML"]


def _new_target_file(connection: Connection) -> Path | None:
    """A target database file on SQLite or DuckDB that does not exist yet in a folder that does: created empty here
    (the build fills it), since a new mart's file is where a user points the target before anything is built.
    Anything else (a source, a missing folder, a remote or in-memory location) is left to the reachability check."""
    if connection.purpose != Purpose.TARGET or connection.engine not in {"sqlite", "duckdb"}:
        return None
    if connection.engine == "duckdb":
        if location_problem(connection.location):
            return None
        path = duckdb_path(connection.location)
    else:
        path = sqlite_path(connection.location)
    if path.exists() or not path.parent.is_dir():
        return None
    if connection.engine == "duckdb":
        duckdb.connect(str(path), config=duckdb_config()).close()
    else:
        sqlite3.connect(path).close()
    return path


def _create_new_targets(connections: dict[str, Connection], check) -> None:
    for name, connection in sorted(connections.items()):
        created = _new_target_file(connection)
        if created is not None:
            check(f"target database {name}", True, f"created an empty {connection.engine} database at {created}")


def _check_reachable(context: AgentContext, connections: dict[str, Connection], source: Connection | None, spec,
                     check) -> None:
    """Every connection answers; the source holds the allowed tables. A connection named twice (by its name and by
    its role, ``source`` or ``target``) is opened once and reported under each name."""
    answers: dict[int, tuple[bool, str, list[str]]] = {}
    for name, connection in sorted(connections.items()):
        key = connection.pk or id(connection)
        if key not in answers:
            try:
                with adapter_for(connection, mission=context.mission) as adapter:
                    adapter.ping()
                    tables = adapter.list_tables()
                answers[key] = (True, f"{connection.engine} reachable ({len(tables)} tables)", tables)
            except ConnectorError as error:
                answers[key] = (False, error.message, [])
        reachable, detail, present = answers[key]
        check(f"connection {name}", reachable, detail)
        if not reachable:
            continue
        if source is not None and name == source.name:
            try:
                wanted = allowed_tables(context, spec)
            except DomainError as error:
                check("allowed tables", False, error.message)
                continue
            lower = {t.lower() for t in present}
            missing = [t for t in wanted if t.lower() not in lower]
            check("allowed tables", not missing,
                  f"missing on {name}: {', '.join(missing)}" if missing else f"all present: {', '.join(wanted)}")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@register
class InitializeAgent(BaseAgent):
    kind = "initialize"
    description = ("Checks the tooling before the mapping and dbt agents start: connections reachable, allowed "
                   "source tables present, dbt and its adapters importable, the mission's workspace created.")

    def run(self, context: AgentContext) -> Outcome:
        checks: list[dict[str, Any]] = []

        def check(name: str, ok: bool, detail: str) -> None:
            checks.append({"check": name, "passed": ok, "detail": detail})
            say(context, f"{'ok' if ok else 'FAILED'}: {name}: {detail}")
            beat(context)

        spec = None
        try:
            spec = mission_spec(context, required=False)
            check("spec file", True, "valid" if spec else "none attached")
        except DomainError as error:
            check("spec file", False, error.message)

        connections = dict(context.connections)
        for name in context.config.get("connections") or []:
            if name and name not in connections:
                found = Connection.objects.filter(name=name).first()
                if found is None:
                    check(f"connection {name}", False, "not registered")
                else:
                    connections[name] = found
        try:
            source = source_connection(context, spec)
            connections.setdefault(source.name, source)
        except DomainError as error:
            source = None
            check("source connection", False, error.message)
        _create_new_targets(connections, check)
        _check_reachable(context, connections, source, spec, check)
        target = connections.get("target") or context.mission.target_connection
        if source is not None and target is not None:
            # The pairing fails here, before profiling and mapping, rather than at the build.
            problem = bronze_problem(target=target, source=source)
            check(f"dbt builds {target.name} from {source.name}", problem is None,
                  problem or f"the build into {target.engine} {target.name} reaches {source.name}'s tables")

        versions: dict[str, str | None] = {"python": platform.python_version()}
        for package, module in DBT_MODULES.items():
            versions[package] = _version(package)
            try:
                importlib.import_module(module)
                check(f"{package} importable", True, f"{module} {versions[package]}")
            except Exception as error:  # noqa: BLE001 - any import failure is the finding
                check(f"{package} importable", False, f"{module}: {error}")
        versions.update({p: _version(p) for p in PACKAGES})

        workspace = context.workspace or Path(settings.VAR_DIR) / "workspaces" / f"mission-{context.mission.pk}"
        try:
            workspace = Path(workspace)
            workspace.mkdir(parents=True, exist_ok=True)
            probe = workspace / ".genesis-write-test"
            probe.write_text("ok")
            probe.unlink()
            check("workspace", True, str(workspace))
        except OSError as error:
            check("workspace", False, f"{workspace}: {error}")

        failed = [c for c in checks if not c["passed"]]
        report = {"checks": checks, "versions": versions, "workspace": str(workspace)}
        artifact = write(context, name="initialize_report.json", kind="report", content=report,
                         content_type="application/json")
        if failed:
            return Failed(error="Initialization failed: " + "; ".join(f"{c['check']}: {c['detail']}" for c in failed),
                          retryable=False, outputs=report)
        return Succeeded(outputs={**report, "report_artifact": artifact_id(artifact)},
                         summary=f"{len(checks)} checks passed; dbt-core {versions['dbt-core']}, "
                                 f"sqlglot {versions['sqlglot']}.")
