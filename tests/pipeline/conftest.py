"""Bronze databases for the agent tests: the demo on SQLite (two seeds/sizes, a renamed variant) and a scratch
schema on the local PostgreSQL server."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from agents.models import Connection
from pipeline.demo.generator import DemoData, generate, write_postgresql, write_sqlite

PG_SERVER = "postgres://postgres@127.0.0.1:5432/test"
ALLOWED = ["PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS"]


@dataclass
class Bronze:
    """A generated bronze database: its file and the rows written into it."""

    path: Path
    data: DemoData
    rename: dict[str, str] = field(default_factory=dict)


def _bronze(tmp_path_factory, name: str, *, claims: int, seed: int, rename: dict | None = None) -> Bronze:
    data = generate(claims=claims, seed=seed)
    path = write_sqlite(tmp_path_factory.mktemp("bronze") / f"{name}.sqlite3", data, rename=rename)
    return Bronze(path=path, data=data, rename=rename or {})


@pytest.fixture(scope="session")
def demo_small(tmp_path_factory):
    """2,000 claims, seed 7."""
    return _bronze(tmp_path_factory, "small", claims=2_000, seed=7).path


@pytest.fixture(scope="session")
def bronze_small(tmp_path_factory):
    return _bronze(tmp_path_factory, "small2", claims=2_000, seed=7)


@pytest.fixture(scope="session")
def bronze_default_seed(tmp_path_factory):
    """6,000 claims with the default seed (42)."""
    return _bronze(tmp_path_factory, "default", claims=6_000, seed=42)


@pytest.fixture(scope="session")
def bronze_renamed(tmp_path_factory):
    """SERVICE_DATE renamed SVC_DT and DIAGNOSIS_CODE renamed DX1."""
    return _bronze(tmp_path_factory, "renamed", claims=1_500, seed=11,
                   rename={"CLAIMS.SERVICE_DATE": "SVC_DT", "CLAIMS.DIAGNOSIS_CODE": "DX1"})


@pytest.fixture(scope="session")
def bronze_opaque(tmp_path_factory):
    """SERVICE_DATE renamed to a name that says nothing (EVENT_TS) and DIAGNOSIS_CODE to COL7."""
    return _bronze(tmp_path_factory, "opaque", claims=800, seed=5,
                   rename={"CLAIMS.SERVICE_DATE": "EVENT_TS", "CLAIMS.DIAGNOSIS_CODE": "COL7"})


def sqlite_connection(path, name="SRC") -> Connection:
    return Connection(name=name, engine="sqlite", location=str(path), purpose="source")


@contextmanager
def pg_scratch_schema(prefix: str):
    """A new schema on the local PostgreSQL server, with an admin connection to it: (admin, schema name); dropped
    afterwards. Skips the test when no server runs."""
    try:
        admin = psycopg.connect(PG_SERVER, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield admin, schema
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def pg_schema():
    """A scratch schema on the local PostgreSQL server holding a small demo; dropped afterwards."""
    with pg_scratch_schema("genesis_map") as (_, schema):
        with psycopg.connect(PG_SERVER, options=f"-c search_path={schema}") as conn:
            write_postgresql(conn, generate(claims=300, seed=3))
        yield schema


def pg_connection(schema: str, name="PG_SRC") -> Connection:
    options = quote(f"-c search_path={schema}")
    return Connection(name=name, engine="postgresql", location=f"{PG_SERVER}?options={options}", purpose="source")


SPEC_PATH = str(Path(__file__).resolve().parents[2] / "pipeline" / "demo" / "project.yml")


@dataclass
class AgentRun:
    """What one run of an agent produced, as the tests see it."""

    outcome: object
    task: object
    run: object
    context: object


@pytest.fixture
def run_agent(db):
    """Run an agent kind once on a task of ``mission`` through an AgentContext built the way the engine builds
    it (artifacts through ``artifact_create``), without the engine."""
    import functools
    import logging

    from agents import registry
    from agents.base import AgentContext, Failed, NeedsApproval, NeedsInput, Succeeded
    from agents.models import Agent
    from tasks import selectors as task_selectors
    from tasks import services as task_services
    from tasks.choices import RunStatus
    from tasks.models import Task

    def _run(kind, *, mission, config, key=None, feedback=(), answers=(), workspace=None, connections=None):
        # What launching does: the connections the task names (and the mission's own) are granted to the mission.
        from agents.access import connection_names_in
        from agents.models import Connection

        named = connection_names_in(config) | {c.name for c in (connections or {}).values()}
        for connection in Connection.objects.filter(name__in=named):
            connection.missions.add(mission)
        for connection in (mission.source_connection, mission.target_connection):
            if connection is not None:
                connection.missions.add(mission)
        agent_row, _ = Agent.objects.get_or_create(name=f"{kind}-agent", defaults={"kind": kind})
        key = key or kind.replace("_", "-")
        task = Task.objects.filter(mission=mission, key=key).first() or task_services.task_create(
            mission=mission, key=key, title=f"{kind} task", owner_agent=agent_row, config=config)
        run = task_services.run_create(task=task)
        task_services.run_transition(run=run, to=RunStatus.RUNNING)

        def write_artifact(*, name, kind, content, content_type=""):
            return task_services.artifact_create(mission=mission, task=task, run=run, actor=agent_row, kind=kind,
                                                 name=name, file=content, content_type=content_type)

        context = AgentContext(
            mission=mission, task=task, run=run, agent=agent_row, config=config, connections=connections or {},
            feedback=list(feedback), answers=list(answers), write_artifact=write_artifact,
            log=logging.getLogger(f"tests.agents.{kind}"), heartbeat=lambda: None, cancelled=lambda: False,
            workspace=workspace,
            read_artifact=functools.partial(task_selectors.artifact_content_latest, mission=mission),
            mission_runs=functools.partial(task_selectors.mission_runs, mission=mission),
        )
        outcome = registry.get(kind)().run(context)
        final = {Succeeded: RunStatus.SUCCEEDED, Failed: RunStatus.FAILED, NeedsInput: RunStatus.WAITING,
                 NeedsApproval: RunStatus.WAITING}[type(outcome)]
        task_services.run_transition(run=run, to=final)
        return AgentRun(outcome=outcome, task=task, run=run, context=context)

    return _run


@pytest.fixture
def source_for(db):
    """Register a bronze file as a source connection and return it."""
    from agents.models import Connection

    def _make(path, name=None):
        return Connection.objects.create(name=name or f"SRC_{uuid.uuid4().hex[:8]}", engine="sqlite",
                                         location=str(path), purpose="source")

    return _make
