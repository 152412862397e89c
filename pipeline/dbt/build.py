"""Planning a build for a mission: which connections, which generated project, where it lives on disk."""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
from django.conf import settings
from sqlglot import exp

from agents.access import adapter_for, require_use
from agents.connectors.duckdb import duckdb_path
from agents.connectors.sqlite import sqlite_path
from agents.models import Connection
from genesis.exceptions import DomainError
from pipeline.dbt import runner
from pipeline.dbt.project import (
    DbtProject,
    generate_project,
    profile_for,
    source_database_for,
    source_schema_for,
)
from pipeline.dbt.spec import TargetSpec, targets_for
from pipeline.dbt.sqlgen import Partition
from pipeline.models import Environment
from pipeline.quality.checks import infer_references


@dataclass
class BuildPlan:
    """Everything needed to run the mission's dbt project against one target."""

    project: DbtProject
    project_dir: Path
    profile: dict
    env: dict[str, str]
    source: Any
    target: Any
    mission: Any = None

    @property
    def targets(self) -> list[TargetSpec]:
        return self.project.targets

    def invoke(self, args: list[str], *, target_dir: Path, variables: dict | None = None,
               write_results: bool = True) -> runner.Invocation:
        return runner.invoke(self.project, project_dir=self.project_dir, profile=self.profile, env=self.env,
                             args=args, target_dir=target_dir, variables=variables, write_results=write_results)

    def models_ran(self) -> bool:
        """Whether this process has run every model of this project against this target (see runner.models_ran)."""
        return runner.models_ran(self.project, self.profile)


def dbt_root() -> Path:
    return Path(settings.GENESIS_DBT_DIR)


def _connection(name: str | None, connections: dict, fallback, what: str):
    if name:
        if name in connections:
            return connections[name]

        found = Connection.objects.filter(name=name).first()
        if found is None:
            raise DomainError(f"The {what} connection {name!r} does not exist.", field=f"{what}_connection")
        return found
    if fallback is None:
        raise DomainError(f"The mission has no {what} connection.", field=f"{what}_connection")
    return fallback


def normalized(config: dict) -> dict:
    """The blueprint's spelling of the build settings (``connection``, ``dbt_project``, ``select``) mapped onto
    this module's (``target_connection``, ``project_name``, ``target_tables``)."""
    config = dict(config or {})
    for alias, name in (("connection", "target_connection"), ("dbt_project", "project_name"),
                        ("select", "target_tables")):
        if config.get(alias) and not config.get(name):
            config[name] = config[alias]
    return config


def resolve_connections(*, mission, config: dict, connections: dict) -> tuple[Any, Any]:
    config = normalized(config)
    source = _connection(config.get("source_connection"), connections, mission.source_connection, "source")
    environment = config.get("environment")
    if environment and not config.get("target_connection"):
        env = Environment.objects.filter(mission=mission, name=environment).select_related("target").first()
        if env is None:
            raise DomainError(f"The mission has no environment named {environment!r}.", field="environment")
        require_use(source, mission)
        require_use(env.target, mission)
        return source, env.target
    target = _connection(config.get("target_connection"), connections, mission.target_connection, "target")
    require_use(source, mission)
    require_use(target, mission)
    return source, target


def infer_partition(targets: list[TargetSpec], bronze: dict[str, str], config: dict) -> Partition | None:
    """The declared partition (``config["partition"]``), else the source of the first date-typed target column."""
    declared = config.get("partition")
    if declared:
        table = bronze.get(str(declared["table"]).upper(), declared["table"])
        return Partition(table=table, column=declared["column"])
    for target in targets:
        for column in target.columns:
            if column.family == "date" and column.source_table.upper() in bronze and column.source_column:
                return Partition(table=bronze[column.source_table.upper()], column=column.source_column)
    return None


def with_children(partition: Partition | None, first_columns: dict[str, str],
                  all_columns: dict[str, list[str]]) -> Partition | None:
    """Add the partition table's key and the tables keyed by it (a claim's lines by CLAIM_ID), so a month's
    rebuild reads only that month's child rows."""
    if partition is None or partition.table not in first_columns:
        return partition
    key = first_columns[partition.table]
    children = tuple(
        (table, next(c for c in columns if c.upper() == key.upper()))
        for table, columns in sorted(all_columns.items())
        if table != partition.table and first_columns.get(table, "").upper() != key.upper()
        and any(c.upper() == key.upper() for c in columns)
    )
    return Partition(table=partition.table, column=partition.column, key=key, children=children)


def read_partition(adapter, targets: list[TargetSpec], config: dict
                   ) -> tuple[dict[str, str], dict[str, str], Partition | None]:
    """From the source: its tables (upper-case name -> name), the first column of each table the targets read, and
    the month partition with its child tables."""
    bronze = {name.upper(): name for name in adapter.list_tables()}
    used = {t.upper() for t in _tables_read(targets)} & set(bronze)
    first_columns, all_columns = {}, {}
    for upper in sorted(used):
        columns = adapter._columns(bronze[upper])
        if columns:
            first_columns[bronze[upper]] = columns[0].name
            all_columns[bronze[upper]] = [c.name for c in columns]
    return bronze, first_columns, with_children(infer_partition(targets, bronze, config), first_columns, all_columns)


def plan_build(*, mission, config: dict, connections: dict | None = None) -> BuildPlan:
    """Generate the mission's dbt project from its approved specs (or ``config["targets"]``)."""
    connections = connections or {}
    config = normalized(config)
    targets = targets_for(mission, config)
    source, target = resolve_connections(mission=mission, config=config, connections=connections)
    with adapter_for(source, mission=mission) as adapter:
        bronze, first_columns, partition = read_partition(adapter, targets, config)
    references = infer_references(targets, first_columns, config.get("references"))
    project = generate_project(
        name=config.get("project_name") or mission.name, targets=targets, engine=target.engine,
        bronze_tables=bronze, source_schema=source_schema_for(target=target, source=source), partition=partition,
        references=[(t.name, column, table, ref) for t, column, table, ref in references],
        source_database=source_database_for(target=target, source=source),
    )
    profile, env = profile_for(target=target, source=source)
    project_dir = dbt_root() / f"mission-{mission.pk}" / project.revision[:16]
    return BuildPlan(project=project, project_dir=project_dir, profile=profile, env=env, source=source,
                     target=target, mission=mission)


def _tables_read(targets: list[TargetSpec]) -> set[str]:
    names: set[str] = set()
    for target in targets:
        names |= _tables_in(target.sql, target.dialect)
    return names


@functools.lru_cache(maxsize=256)
def _tables_in(sql: str, dialect: str) -> frozenset[str]:
    """The tables one target's SQL names (each step of a mission plans the same targets again)."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.ParseError:
        return frozenset()  # generate_project reports it with the target's name
    return frozenset(t.name for t in tree.find_all(exp.Table) if t.name)


def run_dir(context, name: str) -> Path:
    """A scratch directory for one dbt invocation's artifacts (the run's workspace when the engine gives one)."""
    base = Path(context.workspace) if getattr(context, "workspace", None) else (
        dbt_root() / f"mission-{context.mission.pk}" / "runs" / f"run-{getattr(context.run, 'pk', 'adhoc')}")
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def target_file_missing(target) -> bool:
    """A SQLite or DuckDB target whose file is not there yet (nothing built into it): it has no tables, and dbt
    creates it on the first build."""
    if target.engine == "sqlite":
        return not sqlite_path(target.location).is_file()
    if target.engine == "duckdb":
        return not duckdb_path(target.location).is_file()
    return False


def target_row_counts(plan: BuildPlan, targets: list[TargetSpec] | None = None) -> dict[str, int]:
    """Rows of each target built (of ``targets``, default all the plan's)."""
    with adapter_for(plan.target, mission=plan.mission) as adapter:
        return {t.name: int(adapter.scalar(f"SELECT COUNT(*) FROM {adapter.quote(t.name)}"))  # noqa: S608
                for t in (plan.targets if targets is None else targets)}


def write_json(context, name: str, kind: str, data: Any) -> None:
    write(context, name=name, kind=kind, content=json.dumps(data, indent=2, default=str),
          content_type="application/json")


def write(context, *, name: str, kind: str, content: bytes | str, content_type: str = "") -> None:
    """Attach an artifact; one too large for the upload limit is stored gzipped, and if still too large, noted
    in the log rather than failing the step."""
    try:
        context.write_artifact(name=name, kind=kind, content=content, content_type=content_type)
    except DomainError as error:
        if error.code != "file_too_large":
            raise
        raw = content.encode() if isinstance(content, str) else content
        try:
            context.write_artifact(name=name + ".gz", kind=kind, content=gzip.compress(raw, mtime=0),
                                   content_type="application/gzip")
        except DomainError as again:
            if again.code != "file_too_large":
                raise
            log(context, f"{name} ({len(raw)} bytes) exceeds the artifact size limit; not attached.")


def log(context, message: str, *, level: str = "info") -> None:
    """Write to the run's log (the engine's RunLog has info/warning/error; a plain callable also works)."""
    logger = getattr(context, "log", None)
    if logger is None:
        return
    method = getattr(logger, level, None)
    if callable(method):
        method(message)
    elif callable(logger):
        logger(message)
