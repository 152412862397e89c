"""Fixtures shared by the dbt, quality, validation and backfill tests: bronze files, connections, a mission."""

from __future__ import annotations

import sqlite3

import pytest

from agents.models import Connection
from pipeline.demo.generator import generate, write_sqlite
from tests.factories import AgentFactory, MissionFactory, TaskFactory
from tests.pipeline.build.healthcare import TARGETS, make_context


@pytest.fixture
def dbt_dir(settings, tmp_path, dbt_templates):
    settings.GENESIS_DBT_DIR = tmp_path / "dbt"
    settings.GENESIS_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
    return settings.GENESIS_DBT_DIR


@pytest.fixture(scope="session")
def bronze_a(tmp_path_factory):
    """1,200 claims, seed 7."""
    return write_sqlite(tmp_path_factory.mktemp("dbt-bronze") / "a.sqlite3", generate(claims=1_200, seed=7))


@pytest.fixture(scope="session")
def bronze_b(tmp_path_factory):
    """450 claims, seed 23."""
    return write_sqlite(tmp_path_factory.mktemp("dbt-bronze") / "b.sqlite3", generate(claims=450, seed=23))


def bronze_with_orphans(tmp_path, *, claims=400, seed=5, missing_provider_ids=(9001, 9002)):
    """A bronze file where a few claims point at providers that do not exist."""
    path = write_sqlite(tmp_path / "orphans.sqlite3", generate(claims=claims, seed=seed))
    db = sqlite3.connect(path)
    with db:
        for offset, provider in enumerate(missing_provider_ids):
            claim_id = 100 + offset * 37
            db.execute("UPDATE CLAIMS SET PROVIDER_ID = ? WHERE CLAIM_ID = ?", (provider, claim_id))
    db.close()
    return path


class Pipeline:
    """A mission with sqlite source and target connections and one task per agent kind."""

    def __init__(self, tmp_path, bronze, *, name="Healthcare Data Pipeline"):
        self.bronze = bronze
        self.target_path = tmp_path / "target.sqlite3"
        self.source = Connection.objects.create(name=f"SRC_{tmp_path.name}"[:100], engine="sqlite",
                                                location=str(bronze), purpose="source")
        self.target = Connection.objects.create(name=f"TGT_{tmp_path.name}"[:100], engine="sqlite",
                                                location=str(self.target_path), purpose="target")
        self.mission = MissionFactory(name=name, source_connection=self.source, target_connection=self.target)
        self.grant(self.source, self.target)
        self.workspace = tmp_path / "workspace"
        self.workspace.mkdir(exist_ok=True)

    def grant(self, *connections):
        """Put connections on the mission's access list (what a launch by staff does)."""
        for connection in connections:
            connection.missions.add(self.mission)

    def task(self, kind, key=None, **config):
        agent = AgentFactory(name=f"{kind}_agent", kind=kind)
        return TaskFactory(mission=self.mission, key=key or kind, owner_agent=agent,
                           config={"targets": TARGETS, **config})

    def context(self, task):
        return make_context(mission=self.mission, task=task, config=task.config,
                            connections={self.source.name: self.source, self.target.name: self.target},
                            workspace=self.workspace / f"task-{task.pk}")

    def run(self, kind, **config):
        from agents.registry import get

        task = self.task(kind, **config)
        context = self.context(task)
        outcome = get(kind)().run(context)
        return outcome, context
