"""The dbt runner's process-wide rules: one invocation at a time, manifests cached per revision and profile."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import dbt.cli.main

from pipeline.dbt import runner
from pipeline.dbt.project import DbtProject


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
        result = "parsed-manifest" if args[0] == "parse" else SimpleNamespace(results=[])
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
    assert all(m == "parsed-manifest" for c, m in _FakeRunner.calls if c == "build")
    assert len(runner.cached_revisions()) == 2
    runner.clear_cache()
