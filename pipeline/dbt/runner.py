"""Running dbt in-process with ``dbtRunner`` and a warm manifest cache.

dbt's start-up (import, then parsing the project) costs seconds; a long-lived worker parses a project once per
revision (and profile) and hands the parsed manifest to every later invocation. ``dbtRunner`` is not safe to run
concurrently (dbt keeps global state), so one invocation runs at a time per process, behind a lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.dbt.project import DbtProject

_LOCK = threading.Lock()
_CACHE: OrderedDict[str, Any] = OrderedDict()
CACHE_SIZE = 8
_FLAGS = ["--no-send-anonymous-usage-stats", "--quiet"]
# Per invocation, dbt would re-serialize the whole manifest to manifest.json and write a debug log file: about
# 0.4 s of overhead per call here. The parse writes manifest.json once; run_results.json is written from the
# in-memory result; the log is collected from dbt's events.
_RUN_FLAGS = ["--no-write-json", "--log-level-file", "none"]
os.environ.setdefault("DO_NOT_TRACK", "1")


@dataclass
class NodeResult:
    """One dbt node's outcome in an invocation (a model, a test)."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    message: str = ""
    failures: int | None = None
    execution_time: float = 0.0
    relation: str = ""
    compiled_code: str = ""
    thread: str = ""  # dbt's worker thread: more than one across an invocation's nodes means they ran in parallel
    # When the node's SQL ran: dbt's "execute" timing, as Unix time (``time.time()``'s clock); None when the node
    # never reached execution (skipped, or failed to compile). ``execution_time`` also counts the compile before it.
    execute_started_at: float | None = None
    execute_completed_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in {"success", "pass", "skipped"}

    @property
    def execute_span(self) -> tuple[float, float] | None:
        """(start, end) of the node's execution in Unix time, or None when it did not execute."""
        if self.execute_started_at is None or self.execute_completed_at is None:
            return None
        return self.execute_started_at, self.execute_completed_at


@dataclass
class Invocation:
    """What one dbt command did: its nodes, timings, the log it wrote and where its artifacts are."""

    command: str
    success: bool
    nodes: list[NodeResult] = field(default_factory=list)
    error: str = ""
    elapsed: float = 0.0
    parse_elapsed: float = 0.0
    dbt_elapsed: float = 0.0
    # The dbt command itself (after the parse), as Unix time: every node's execute span lies within it.
    dbt_started_at: float | None = None
    dbt_completed_at: float | None = None
    reused_manifest: bool = False
    log_lines: list[str] = field(default_factory=list)
    target_dir: Path | None = None

    @property
    def failed_nodes(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status in {"error", "fail", "runtime error"}]

    @property
    def warned_nodes(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status == "warn"]

    @property
    def threads_used(self) -> int:
        """How many of dbt's threads ran this invocation's nodes (above one: nodes built in parallel)."""
        return len({n.thread for n in self.nodes if n.thread})

    def failure_text(self) -> str:
        parts = [f"{n.resource_type} {n.name} {n.status}: {n.message}" for n in self.failed_nodes]
        if self.error:
            parts.insert(0, self.error)
        return "; ".join(parts) or "dbt reported a failure without naming a node."

    def summary(self) -> dict[str, Any]:
        return {
            "command": self.command, "success": self.success, "error": self.error,
            "elapsed_s": round(self.elapsed, 3), "parse_s": round(self.parse_elapsed, 3),
            "dbt_s": round(self.dbt_elapsed, 3), "reused_manifest": self.reused_manifest,
            "dbt_started_at": self.dbt_started_at, "dbt_completed_at": self.dbt_completed_at,
            "threads_used": self.threads_used,
            "nodes": [{k: v for k, v in asdict(n).items() if k != "compiled_code"} for n in self.nodes],
        }


def cache_key(project: DbtProject, profile: dict) -> str:
    profile_hash = hashlib.sha256(yaml.safe_dump(profile, sort_keys=True).encode()).hexdigest()
    return f"{project.revision}:{profile_hash[:16]}"


def cached_revisions() -> list[str]:
    return list(_CACHE)


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


class _Collector:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event) -> None:
        info = event.info
        if info.msg and info.level != "debug":
            self.lines.append(f"{info.ts.ToDatetime().strftime('%H:%M:%S.%f')[:-3]} {info.level:5} {info.msg}")


def _unix_time(moment: datetime | None) -> float | None:
    """A dbt timing datetime as Unix time: dbt stores UTC without a time zone."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _execute_span(item) -> tuple[float | None, float | None]:
    for timing in getattr(item, "timing", None) or []:
        if timing.name == "execute":
            return _unix_time(timing.started_at), _unix_time(timing.completed_at)
    return None, None


def _node_results(result) -> list[NodeResult]:
    nodes = []
    for item in getattr(result, "results", None) or []:
        node = getattr(item, "node", None)
        if node is None:
            continue  # run-operation reports the macro, not a node
        execute_started_at, execute_completed_at = _execute_span(item)
        nodes.append(NodeResult(
            unique_id=node.unique_id, name=node.name, resource_type=str(node.resource_type),
            status=str(item.status), message=str(item.message or ""),
            failures=item.failures, execution_time=round(item.execution_time or 0.0, 4),
            relation=getattr(node, "relation_name", None) or "",
            compiled_code=getattr(node, "compiled_code", None) or "",
            thread=str(getattr(item, "thread_id", None) or ""),
            execute_started_at=execute_started_at, execute_completed_at=execute_completed_at,
        ))
    return nodes


def _behavior_flag_source() -> str:
    """The module that created a behavior flag, as dbt_common's ``BehaviorFlagRendered._default_source`` finds it
    (the first caller outside that module), read from the frames' globals: dbt's version calls ``inspect.stack()``,
    which reads the source of every frame and searches ``sys.modules`` for each (about 80 ms per flag in this
    process, two flags per adapter, a new adapter per invocation)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name and name != "dbt_common.behavior_flags" and name in sys.modules:
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return "Unknown"


def _patch_dbt() -> None:
    from dbt_common import behavior_flags  # noqa: PLC0415 - imported with dbt, only when dbt runs

    behavior_flags.BehaviorFlagRendered._default_source = staticmethod(_behavior_flag_source)  # type: ignore[method-assign]


def _close_duckdb() -> None:
    """Close the database dbt-duckdb keeps open through an invocation (``keep_open``), if it opened one: until then
    the file is held read-write by this process, and DuckDB refuses a read-only session on it here or elsewhere."""
    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is None:
        return
    manager = connections.DuckDBConnectionManager
    with manager._LOCK:
        environment, manager._ENV = manager._ENV, None
        if environment is not None:
            environment.close()


def invoke(project: DbtProject, *, project_dir: Path, profile: dict, env: dict[str, str], args: list[str],
           target_dir: Path, variables: dict | None = None, write_results: bool = True) -> Invocation:
    """Run one dbt command (e.g. ``["build"]``) on the project with a cached parse; blocks while another
    invocation runs in this process."""
    from dbt.cli.main import dbtRunner  # noqa: PLC0415 - dbt is slow to import; only a build pays for it

    _patch_dbt()
    started = time.monotonic()
    project.write(project_dir)
    profiles_dir = project_dir / "_profiles"
    profiles_dir.mkdir(parents=True, exist_ok=True)
    (profiles_dir / "profiles.yml").write_text(yaml.safe_dump(profile, sort_keys=False))
    target_dir.mkdir(parents=True, exist_ok=True)
    common = ["--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir), *_FLAGS]
    key = cache_key(project, profile)
    collector = _Collector()
    with _LOCK:
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            invocation = Invocation(command=" ".join(args), success=False, target_dir=target_dir)
            manifest = _CACHE.get(key)
            if manifest is None:
                parse_started = time.monotonic()
                parsed = dbtRunner(callbacks=[collector]).invoke(
                    ["parse", *common, "--target-path", str(project_dir / "target"),
                     "--log-path", str(project_dir / "logs")])
                invocation.parse_elapsed = time.monotonic() - parse_started
                if not parsed.success:
                    invocation.error = f"dbt could not parse the project: {parsed.exception}"
                    invocation.log_lines = collector.lines
                    invocation.elapsed = time.monotonic() - started
                    return invocation
                manifest = parsed.result
                _CACHE[key] = manifest
                while len(_CACHE) > CACHE_SIZE:
                    _CACHE.popitem(last=False)
            else:
                _CACHE.move_to_end(key)
                invocation.reused_manifest = True
            command = [*args, *common, *_RUN_FLAGS, "--target-path", str(target_dir), "--log-path", str(target_dir)]
            if variables:
                command += ["--vars", json.dumps(variables)]
            dbt_started = time.monotonic()
            invocation.dbt_started_at = time.time()
            try:
                result = dbtRunner(manifest=manifest, callbacks=[collector]).invoke(command)
            finally:
                _close_duckdb()
            invocation.dbt_elapsed = time.monotonic() - dbt_started
            invocation.dbt_completed_at = time.time()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    invocation.success = bool(result.success)
    if write_results and hasattr(result.result, "write"):
        result.result.write(str(target_dir / "run_results.json"))
    invocation.nodes = _node_results(result.result)
    if result.exception is not None:
        invocation.error = f"dbt stopped: {result.exception}"
    invocation.log_lines = collector.lines
    invocation.elapsed = time.monotonic() - started
    return invocation
