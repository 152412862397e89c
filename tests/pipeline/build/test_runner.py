"""The dbt runner's process-wide rules: one invocation at a time, manifests cached per revision and profile."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import dbt.cli.main

from pipeline.dbt import runner
from pipeline.dbt.project import DbtProject

PARSED = SimpleNamespace(nodes={})  # the fake parse's manifest


class _FakeRunner:
    """Stands in for dbtRunner to observe how the wrapper calls it (the real one is exercised elsewhere)."""

    active = 0
    overlaps = 0
    calls: list = []
    lock = threading.Lock()

    def __init__(self, manifest=None, callbacks=None):
        self.manifest = manifest

    def invoke(self, args):
        with _FakeRunner.lock:
            _FakeRunner.active += 1
            _FakeRunner.overlaps += _FakeRunner.active > 1
            _FakeRunner.calls.append((args[0], self.manifest))
        time.sleep(0.05)
        with _FakeRunner.lock:
            _FakeRunner.active -= 1
        result = PARSED if args[0] == "parse" else SimpleNamespace(results=[])
        return SimpleNamespace(success=True, result=result, exception=None)


def test_invocations_never_overlap_and_reuse_the_manifest_per_revision(tmp_path, monkeypatch):
    monkeypatch.setattr(dbt.cli.main, "dbtRunner", _FakeRunner)
    runner.clear_cache()
    project = DbtProject(name="p", files={"dbt_project.yml": "name: p\n"})
    other = DbtProject(name="p", files={"dbt_project.yml": "name: p\nversion: 2\n"})
    profile = {"genesis": {"target": "genesis", "outputs": {"genesis": {"type": "sqlite"}}}}

    def call(proj, index):
        runner.invoke(proj, project_dir=tmp_path / f"p{index}", profile=profile, env={}, args=["build"],
                      target_dir=tmp_path / f"t{index}", write_results=False)

    threads = [threading.Thread(target=call, args=(project if i % 2 else other, i)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _FakeRunner.overlaps == 0
    commands = [c for c, _ in _FakeRunner.calls]
    assert commands.count("parse") == 2 and commands.count("build") == 6  # one parse per revision
    assert all(m is PARSED for c, m in _FakeRunner.calls if c == "build")
    assert len(runner.cached_revisions()) == 2
    runner.clear_cache()


def test_each_node_carries_when_it_executed_within_the_invocation(tmp_path):
    """A real dbt build of a two-model project on SQLite: every model and test that ran reports its execute interval
    (Unix time), start before end, inside the dbt command's own wall time."""
    runner.clear_cache()
    project = DbtProject(name="spans", files={
        "dbt_project.yml": "name: spans\nversion: '1.0.0'\nconfig-version: 2\nprofile: genesis\n"
                           "models:\n  spans:\n    +materialized: table\n",
        "models/first.sql": "select 1 as id union all select 2 as id\n",
        "models/second.sql": "select id * 10 as id from {{ ref('first') }}\n",
        "models/schema.yml": "version: 2\nmodels:\n  - name: second\n    columns:\n      - name: id\n"
                             "        data_tests: [not_null, unique]\n",
    })
    target = tmp_path / "target.sqlite3"
    profile = {"genesis": {"target": "genesis", "outputs": {"genesis": {
        "type": "sqlite", "threads": 1, "database": "main", "schema": "main",
        "schemas_and_paths": {"main": str(target)}, "schema_directory": str(tmp_path)}}}}
    before = time.time()
    invocation = runner.invoke(project, project_dir=tmp_path / "project", profile=profile, env={}, args=["build"],
                               target_dir=tmp_path / "target", write_results=False)
    after = time.time()
    assert invocation.success, invocation.failure_text()
    assert sorted(n.name for n in invocation.nodes if n.resource_type == "model") == ["first", "second"]
    assert len(invocation.nodes) == 4  # two models, two tests
    assert before <= invocation.dbt_started_at <= invocation.dbt_completed_at <= after
    for node in invocation.nodes:
        assert node.execute_span is not None, node.name
        started, ended = node.execute_span
        assert invocation.dbt_started_at <= started <= ended <= invocation.dbt_completed_at, node.name
        assert ended - started <= node.execution_time + 0.01  # execution_time also counts the compile
    first, second = (next(n for n in invocation.nodes if n.name == name) for name in ("first", "second"))
    assert first.execute_completed_at <= second.execute_started_at  # second reads first: it waited for it
    summary = invocation.summary()
    assert {"execute_started_at", "execute_completed_at", "execution_time"} <= set(summary["nodes"][0])
    assert summary["dbt_started_at"] == invocation.dbt_started_at
    runner.clear_cache()


def test_models_ran_only_after_every_model_ran_without_vars_and_not_after_a_failure(tmp_path):
    """What lets the schedule check skip compiling: this process ran every model of this revision, against this
    target, without vars. A subset, a run with vars, a failed model or another profile does not count."""
    runner.clear_cache()
    files = {
        "dbt_project.yml": "name: ran\nversion: '1.0.0'\nconfig-version: 2\nprofile: genesis\n"
                           "models:\n  ran:\n    +materialized: table\n",
        "models/first.sql": "select 1 as id\n",
        "models/second.sql": "select id from {{ ref('first') }} where id = {{ var('wanted', 1) }}\n",
    }
    project = DbtProject(name="ran", files=files)
    broken = DbtProject(name="ran", files={
        **files, "models/second.sql": "select no_such_column from {{ ref('first') }}\n"})

    def profile(name: str) -> dict:
        return {"genesis": {"target": "genesis", "outputs": {"genesis": {
            "type": "sqlite", "threads": 1, "database": "main", "schema": "main",
            "schemas_and_paths": {"main": str(tmp_path / name)}, "schema_directory": str(tmp_path)}}}}

    def run(proj, args, variables=None, target="a.sqlite3"):
        return runner.invoke(proj, project_dir=tmp_path / proj.revision[:8], profile=profile(target), env={},
                             args=args, target_dir=tmp_path / "target", variables=variables, write_results=False)

    assert run(project, ["run", "--select", "first"]).success
    assert not runner.models_ran(project, profile("a.sqlite3"))
    assert run(project, ["run"], variables={"wanted": 2}).success
    assert not runner.models_ran(project, profile("a.sqlite3"))
    assert not run(broken, ["run"]).success
    assert not runner.models_ran(broken, profile("a.sqlite3"))
    assert run(project, ["run"]).success
    assert runner.models_ran(project, profile("a.sqlite3"))
    assert not runner.models_ran(project, profile("b.sqlite3"))
    runner.clear_cache()
    assert not runner.models_ran(project, profile("a.sqlite3"))


def test_dbt_looks_for_its_plugin_modules_once_per_process(monkeypatch):
    """dbt walks sys.path for ``dbt_*`` modules on every invocation; after the runner's patch it walks once (or not
    at all, when an earlier call already did), and finds the same modules."""
    import pkgutil  # noqa: PLC0415

    from dbt.plugins.manager import PluginManager  # noqa: PLC0415

    expected = {name for _, name, _ in pkgutil.iter_modules() if name.startswith("dbt_")}
    walks = []
    real = pkgutil.iter_modules
    monkeypatch.setattr(pkgutil, "iter_modules", lambda *args, **kwargs: walks.append(1) or real(*args, **kwargs))
    runner._patch_dbt()
    runner._patch_dbt()  # patching twice wraps once
    found = [PluginManager.get_prefixed_modules() for _ in range(3)]
    assert len(walks) <= 1
    assert all(set(modules) == expected for modules in found)
    assert "dbt_common" in expected
