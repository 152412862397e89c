"""Running dbt in-process with ``dbtRunner`` and a warm manifest cache.

dbt's start-up (import, then parsing the project) costs seconds; a long-lived worker parses a project once per
revision (and profile) and hands the parsed manifest to every later invocation. ``dbtRunner`` is not safe to run
concurrently (dbt keeps global state), so one invocation runs at a time per process, behind a lock.

Most of a new project's parse is the same in every mission: dbt parses the six hundred-odd macros of dbt-core and
the adapter, and the generated macros. A worker parses them once per adapter at its start, as a template
(``prepare_template``: the generated projects' dbt_project.yml and macros, no models), and a new project's parse
starts from that saved parse: dbt's own partial parsing, which re-reads every file, compares checksums and parses
what is new or changed (the models and schema files). dbt rejects a saved parse made with another profile, because
parsing can render ``target``; the template's files are macros, which parsing does not render, so for the template
alone the profile is taken as the new project's (``_template_aware``). Anything else that differs (dbt's
version, a package, dbt_project.yml, another adapter) still makes dbt parse in full.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from pipeline.dbt.project import DBT_ADAPTERS, DbtProject, template_profile, template_project, warm_up_project

logger = logging.getLogger("genesis.dbt")
_LOCK = threading.Lock()


@dataclass
class _Parsed:
    """A cached parse: the manifest, and whether this process has since run every one of its models successfully
    without vars (so they compile)."""

    manifest: Any
    models_ran: bool = False


_CACHE: OrderedDict[str, _Parsed] = OrderedDict()
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
    # The parse started from the adapter's template (see the module's docstring) instead of parsing in full.
    parsed_from_template: bool = False
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
            "parsed_from_template": self.parsed_from_template,
            "dbt_started_at": self.dbt_started_at, "dbt_completed_at": self.dbt_completed_at,
            "threads_used": self.threads_used,
            "nodes": [{k: v for k, v in asdict(n).items() if k != "compiled_code"} for n in self.nodes],
        }


def cache_key(project: DbtProject, profile: dict) -> str:
    profile_hash = hashlib.sha256(yaml.safe_dump(profile, sort_keys=True).encode()).hexdigest()
    return f"{project.revision}:{profile_hash[:16]}"


def cached_revisions() -> list[str]:
    return list(_CACHE)


def models_ran(project: DbtProject, profile: dict) -> bool:
    """Whether this process has run every model of the project with this profile successfully, without vars (so
    compiling them again would prove nothing new)."""
    parsed = _CACHE.get(cache_key(project, profile))
    return parsed is not None and parsed.models_ran


def cached_manifest(project: DbtProject, profile: dict) -> Any | None:
    """The parsed manifest this process holds for the project and profile, if any."""
    parsed = _CACHE.get(cache_key(project, profile))
    return parsed.manifest if parsed is not None else None


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


class _Collector:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: set[str] = set()

    def __call__(self, event) -> None:
        info = event.info
        self.names.add(info.name)
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


def template_root() -> Path:
    return Path(settings.GENESIS_DBT_TEMPLATE_DIR)


def template_file(adapter_type: str) -> Path:
    """The template's saved parse for dbt's adapter type (``sqlite``, ``duckdb``, ``postgres``)."""
    return template_root() / adapter_type / "partial_parse.msgpack"


def _adapter_type(profile: dict) -> str | None:
    for entry in profile.values():
        return ((entry.get("outputs") or {}).get(entry.get("target")) or {}).get("type")
    return None


def _template_aware(is_partial_parsable):
    """dbt's check whether a saved parse may be reused, knowing the template: when the saved parse dbt read is a
    template's, its profile is taken as the new project's and its root-project files (the generated macros, which
    the new project holds too) as living in the new project's directory; then dbt's own check decides."""

    def check(loader, manifest):
        from dbt.flags import get_flags  # noqa: PLC0415 - imported with dbt, only when dbt runs

        path = getattr(get_flags(), "PARTIAL_PARSE_FILE_PATH", None)
        if path and Path(path).parent.parent == template_root():
            manifest.state_check.profile_hash = loader.manifest.state_check.profile_hash
            root = loader.root_project
            for source_file in manifest.files.values():
                if source_file.project_name == root.project_name:
                    source_file.path.project_root = root.project_root
        return is_partial_parsable(loader, manifest)

    check.genesis_template_aware = True  # type: ignore[attr-defined]
    return check


def _plugin_modules_once(cls) -> dict:
    """dbt's plugin modules (the installed top-level modules named ``dbt_*``), looked for once per process: dbt
    looks on every invocation, a walk of every directory on ``sys.path`` (25-50 ms here, twice per build: the parse
    and the run). A worker's installed packages do not change while it runs; dbt keeps the same answer in its own
    cache, ``_get_dbt_modules``, which its ``PluginManager`` uses only under test caching."""
    from dbt.plugins import manager  # noqa: PLC0415 - imported with dbt, only when dbt runs

    return dict(manager._get_dbt_modules())


_plugin_modules_once.genesis_once = True  # type: ignore[attr-defined]


def _patch_dbt() -> None:
    from dbt.parser.manifest import ManifestLoader  # noqa: PLC0415 - imported with dbt, only when dbt runs
    from dbt.plugins.manager import PluginManager  # noqa: PLC0415
    from dbt_common import behavior_flags  # noqa: PLC0415

    behavior_flags.BehaviorFlagRendered._default_source = staticmethod(_behavior_flag_source)  # type: ignore[method-assign]
    if not getattr(ManifestLoader.is_partial_parsable, "genesis_template_aware", False):
        ManifestLoader.is_partial_parsable = _template_aware(ManifestLoader.is_partial_parsable)  # type: ignore[method-assign]
    if not getattr(PluginManager.get_prefixed_modules, "genesis_once", False):
        PluginManager.get_prefixed_modules = classmethod(_plugin_modules_once)  # type: ignore[method-assign,assignment]


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


def _write(project: DbtProject, project_dir: Path, profile: dict) -> list[str]:
    """Write the project and its profile; dbt's arguments naming them."""
    project.write(project_dir)
    profiles_dir = project_dir / "_profiles"
    profiles_dir.mkdir(parents=True, exist_ok=True)
    profiles = profiles_dir / "profiles.yml"
    text = yaml.safe_dump(profile, sort_keys=False)
    if not profiles.exists() or profiles.read_text() != text:
        profiles.write_text(text)
    return ["--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir), *_FLAGS]


def _parse(common: list[str], *, adapter_type: str | None, target_path: Path, log_path: Path,
           collector: _Collector) -> tuple[Any, bool]:
    """dbt's parse, from the adapter's template when there is one: (dbt's result, whether it started from the
    template). Holds the lock."""
    from dbt.cli.main import dbtRunner  # noqa: PLC0415 - dbt is slow to import; only a build pays for it

    template = template_file(adapter_type) if adapter_type else None
    offered = template is not None and template.exists()
    command = ["parse", *common, "--target-path", str(target_path), "--log-path", str(log_path)]
    if offered:
        command += ["--partial-parse-file-path", str(template)]
    parsed = dbtRunner(callbacks=[collector]).invoke(command)
    from_template = offered and "PartialParsingEnabled" in collector.names and not (
        {"UnableToPartialParse", "ParsedFileLoadFailed", "PartialParsingError"} & collector.names)
    return parsed, from_template


def prepare_template(adapter_type: str) -> Invocation:
    """Parse the template project for dbt's adapter type (what every generated project shares: dbt_project.yml
    and the macros) and put dbt's saved parse at ``template_file(adapter_type)``, replacing it whole (workers in
    other processes read it). A template already there is the start, when dbt accepts it (same dbt, same files):
    then nothing is parsed again."""
    _patch_dbt()
    started = time.monotonic()
    directory = template_file(adapter_type).parent
    common = _write(template_project(), directory, template_profile(adapter_type, directory))
    collector = _Collector()
    invocation = Invocation(command=f"parse the {adapter_type} template", success=False)
    with _LOCK, tempfile.TemporaryDirectory(dir=directory, prefix="parse-") as scratch:
        parsed, invocation.parsed_from_template = _parse(
            common, adapter_type=adapter_type, target_path=Path(scratch), log_path=Path(scratch), collector=collector)
        saved = Path(scratch) / "partial_parse.msgpack"
        if parsed.success and saved.exists():
            os.replace(saved, template_file(adapter_type))
    invocation.success = bool(parsed.success)
    if parsed.exception is not None:
        invocation.error = f"dbt could not parse the template: {parsed.exception}"
    invocation.log_lines = collector.lines
    invocation.elapsed = invocation.parse_elapsed = time.monotonic() - started
    return invocation


def warm_up() -> dict[str, float]:
    """A worker's start (``GENESIS_WORKER_WARMUP``): the template of each dbt adapter installed, parsed or found
    current, then a small project parsed from the SQLite template and built into a scratch SQLite file, which does
    dbt's once-per-process work (it builds the code and schemas that read, validate and run its objects: about a
    second that the first mission would otherwise pay); seconds per step. A template that cannot be parsed is
    logged, and projects on that adapter parse in full."""
    seconds = {}
    for adapter_type in DBT_ADAPTERS.values():
        if importlib.util.find_spec(f"dbt.adapters.{adapter_type}") is None:
            continue
        invocation = prepare_template(adapter_type)
        if not invocation.success:
            logger.warning("the dbt %s template could not be parsed: %s", adapter_type, invocation.error)
            continue
        seconds[f"{adapter_type} template"] = invocation.elapsed
    if "sqlite template" in seconds:
        with tempfile.TemporaryDirectory(prefix="genesis-dbt-warm-up-") as scratch:
            directory = Path(scratch)
            project, profile = warm_up_project(), template_profile("sqlite", directory)
            # Without dbt's static parser (dbt_extractor): it starts a thread pool of its own on first use, and the
            # warm-up runs before the cluster forks, whose workers would inherit the pool without its threads and
            # wait for them forever at their first parse of a model.
            invocation = invoke(project, project_dir=directory / "project", profile=profile,
                                env={"DBT_STATIC_PARSER": "false"}, args=["build"], target_dir=directory / "target",
                                write_results=False)
            with _LOCK:  # the warm-up's own project is not kept
                _CACHE.pop(cache_key(project, profile), None)
        if not invocation.success:
            logger.warning("the dbt warm-up build failed: %s", invocation.failure_text())
        elif not invocation.parsed_from_template:
            logger.warning("the dbt warm-up build did not start from the SQLite template: projects parse in full")
        seconds["build"] = invocation.elapsed
    return seconds


def invoke(project: DbtProject, *, project_dir: Path, profile: dict, env: dict[str, str], args: list[str],
           target_dir: Path, variables: dict | None = None, write_results: bool = True) -> Invocation:
    """Run one dbt command (e.g. ``["build"]``) on the project with a cached parse; blocks while another
    invocation runs in this process."""
    from dbt.cli.main import dbtRunner  # noqa: PLC0415 - dbt is slow to import; only a build pays for it

    _patch_dbt()
    started = time.monotonic()
    common = _write(project, project_dir, profile)
    target_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(project, profile)
    collector = _Collector()
    with _LOCK:
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            invocation = Invocation(command=" ".join(args), success=False, target_dir=target_dir)
            cached = _CACHE.get(key)
            if cached is None:
                parse_started = time.monotonic()
                parsed, invocation.parsed_from_template = _parse(
                    common, adapter_type=_adapter_type(profile), target_path=project_dir / "target",
                    log_path=project_dir / "logs", collector=collector)
                invocation.parse_elapsed = time.monotonic() - parse_started
                if not parsed.success:
                    invocation.error = f"dbt could not parse the project: {parsed.exception}"
                    invocation.log_lines = collector.lines
                    invocation.elapsed = time.monotonic() - started
                    return invocation
                cached = _CACHE[key] = _Parsed(parsed.result)
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
                result = dbtRunner(manifest=cached.manifest, callbacks=[collector]).invoke(command)
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
    if invocation.success and not variables and not cached.models_ran:
        models = {unique_id for unique_id in cached.manifest.nodes if unique_id.startswith("model.")}
        cached.models_ran = bool(models) and models <= {n.unique_id for n in invocation.nodes if n.status == "success"}
    if result.exception is not None:
        invocation.error = f"dbt stopped: {result.exception}"
    invocation.log_lines = collector.lines
    invocation.elapsed = time.monotonic() - started
    return invocation
