"""Helpers the data agents share: the mission's spec, its source connection and allowed tables, a guarded
adapter whose refusals are recorded in history, and thin wrappers over the context's callables."""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections

from agents.access import adapter_for
from agents.base import AgentContext
from agents.connectors import Adapter, QueryRefused
from agents.models import Connection
from agents.services import connection_read_refused
from genesis.exceptions import DomainError
from pipeline.specfile import SpecFileError, load_mission_spec, load_spec_text


class SetupError(DomainError):
    """The task or mission lacks something the agent needs (spec file, connection, allowed tables)."""


T = TypeVar("T")


def _on_own_adapters(work: Callable[..., T], adapters: tuple[Adapter, ...], args: tuple) -> T:
    try:
        with contextlib.ExitStack() as stack:
            opened = [stack.enter_context(adapter) for adapter in adapters]
            return work(*opened, *args)
    finally:
        connections.close_all()  # any connection Django opened for this thread


def submit_on_adapters(pool: Executor, work: Callable[..., T], adapters: tuple[Adapter, ...], *args: Any) -> Future[T]:
    """``work(*adapters, *args)`` on ``pool``, with the adapters opened, used and closed in the pool's thread (made
    by ``adapter_for`` in the caller, where the access check may use the ORM; the work itself must not), in a copy of
    the caller's context (the worker's query timeout, a ContextVar, holds there)."""
    return pool.submit(contextvars.copy_context().run, _on_own_adapters, work, adapters, args)


def say(context: AgentContext, message: str) -> None:
    if context.log is not None:
        context.log.info(message)


def beat(context: AgentContext) -> None:
    if callable(context.heartbeat):
        context.heartbeat()


def stop_requested(context: AgentContext) -> bool:
    return bool(callable(context.cancelled) and context.cancelled())


def write(context: AgentContext, *, name: str, kind: str, content: Any, content_type: str) -> Any:
    if context.write_artifact is None:
        return None
    if not isinstance(content, str | bytes):
        content = json.dumps(content, indent=2, sort_keys=False, default=str)
    return context.write_artifact(name=name, kind=kind, content=content, content_type=content_type)


def artifact_id(artifact: Any) -> Any:
    return getattr(artifact, "pk", None)


def mission_spec(context: AgentContext, *, required: bool = True) -> dict[str, Any] | None:
    """The spec file named by the task config (``spec_path``, relative to the project) or attached to the
    mission, validated. A malformed file raises ``SpecFileError`` with the path of each problem."""
    path = context.config.get("spec_path")
    if path:
        file = Path(path)
        if not file.is_absolute():
            file = Path(settings.BASE_DIR) / file
        if not file.is_file():
            raise SpecFileError([("config.spec_path", f"{path} does not exist")])
        return load_spec_text(file.read_text(), source=str(path))
    if context.mission.spec_file:
        return load_mission_spec(context.mission)
    if required:
        raise SpecFileError([("spec_file", f"mission “{context.mission.name}” has no spec file attached and the "
                                           "task config names no spec_path")])
    return None


def allowed_tables(context: AgentContext, spec: dict[str, Any] | None) -> list[str]:
    """The mission's allowed source tables: task config ``allowed_tables``, else the spec file's
    ``sources.allowed_tables``, else the blueprint's ``tables`` parameter (the tables it says to read)."""
    config = context.config
    tables = (config.get("allowed_tables") or (spec or {}).get("sources", {}).get("allowed_tables")
              or config.get("tables"))
    if isinstance(tables, str):
        tables = [t.strip() for t in tables.split(",") if t.strip()]
    if not tables:
        raise SetupError("The mission lists no allowed source tables: add sources.allowed_tables to its spec file "
                         "or allowed_tables to the task config.", field="allowed_tables")
    return list(tables)


def source_connection(context: AgentContext, spec: dict[str, Any] | None) -> Connection:
    """The task config's ``source_connection`` (or ``connection``, as blueprints name it), else the mission's
    source, else the spec file's."""
    name = context.config.get("source_connection") or context.config.get("connection")
    if not name and context.mission.source_connection_id:
        return context.mission.source_connection
    name = name or (spec or {}).get("sources", {}).get("connection")
    if not name:
        raise SetupError("No source connection: set the mission's source connection or sources.connection in its "
                         "spec file.", field="source_connection")
    if name in context.connections:
        return context.connections[name]
    connection = Connection.objects.filter(name=name).first()
    if connection is None:
        raise SetupError(f"The source connection {name!r} is not registered.", field="source_connection")
    return connection


def open_source(context: AgentContext, spec: dict[str, Any] | None) -> Adapter:
    """A guarded adapter on the source: reads outside the allowed tables are refused and recorded."""
    connection = source_connection(context, spec)

    def record(error: QueryRefused) -> None:
        say(context, f"refused: {error.message}")
        connection_read_refused(mission=context.mission, task=context.task, run=context.run, actor=context.agent,
                                connection_name=connection.name, tables=error.tables, sql=error.sql,
                                reason=error.message)

    adapter = adapter_for(connection, mission=context.mission, allowed_tables=allowed_tables(context, spec),
                          on_refused=record)
    adapter.connect()
    return adapter
