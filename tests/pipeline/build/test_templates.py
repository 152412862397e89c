"""A new project's parse starts from its adapter's template (the generated dbt_project.yml and macros, parsed once at
a worker's start): it must give the manifest a full parse gives, on every adapter, and fall back to a full parse
whenever the template does not fit (stale macros, an unreadable file, another dbt)."""

from __future__ import annotations

import json

import pytest

from pipeline.dbt import project as dbt_project
from pipeline.dbt import runner
from pipeline.dbt.project import DbtProject, generate_project, template_profile
from pipeline.dbt.spec import target_from_dict
from tests.pipeline.build.healthcare import TARGETS

BRONZE = {t: t for t in ("PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS")}
SCHEMAS = {"sqlite": ("bronze", None), "duckdb": ("main", "bronze"), "postgres": ("public", None)}
ENGINES = {"sqlite": "sqlite", "duckdb": "duckdb", "postgres": "postgresql"}


def healthcare(adapter_type: str) -> DbtProject:
    schema, database = SCHEMAS[adapter_type]
    return generate_project(name="Claims for finance", targets=[target_from_dict(t) for t in TARGETS],
                            engine=ENGINES[adapter_type], bronze_tables=BRONZE, source_schema=schema,
                            source_database=database,
                            references=[("CLAIM_SUMMARY", "PATIENT_ID", "PATIENTS", "PATIENT_ID")])


def profile(adapter_type: str, directory) -> dict:
    """A profile of the type that is not the template's (other files, another database and user)."""
    profile = template_profile(adapter_type, directory)
    output = profile["genesis"]["outputs"]["genesis"]
    if adapter_type == "postgres":
        output |= {"user": "someone", "dbname": "warehouse", "schema": "gold", "port": 5433}
    return profile


def parse(project: DbtProject, directory, adapter_type: str) -> tuple[runner.Invocation, object]:
    """Parse (then list, which needs no connection) in a fresh directory; the invocation and the manifest."""
    runner.clear_cache()
    project_profile = profile(adapter_type, directory)
    invocation = runner.invoke(project, project_dir=directory / "project", profile=project_profile, env={},
                               args=["ls"], target_dir=directory / "target", write_results=False)
    assert invocation.success, invocation.failure_text()
    manifest = runner.cached_manifest(project, project_profile)
    runner.clear_cache()
    return invocation, manifest


def signature(manifest) -> dict:
    """What the build runs from: every node's code, configuration, dependencies and test arguments, every macro's
    code and dependencies, every source's relation."""
    def dump(value) -> str:
        return json.dumps(value.to_dict() if hasattr(value, "to_dict") else value, sort_keys=True, default=str)

    items = {}
    for key, node in manifest.nodes.items():
        items[key] = (node.raw_code, sorted(node.depends_on.nodes), sorted(node.depends_on.macros),
                      dump(node.config), node.original_file_path, node.checksum.checksum,
                      dump(getattr(node, "test_metadata", None)), node.package_name)
    for key, macro in manifest.macros.items():
        items[key] = (macro.macro_sql, sorted(macro.depends_on.macros), macro.original_file_path)
    for key, source in manifest.sources.items():
        items[key] = (source.relation_name, source.original_file_path)
    return items


@pytest.mark.parametrize("adapter_type", ["sqlite", "duckdb", "postgres"])
def test_a_parse_from_the_template_equals_a_full_parse(adapter_type, tmp_path, settings):
    settings.GENESIS_DBT_TEMPLATE_DIR = tmp_path / "templates"
    project = healthcare(adapter_type)
    full, full_manifest = parse(project, tmp_path / "full", adapter_type)
    assert not full.parsed_from_template

    template = runner.prepare_template(adapter_type)
    assert template.success, template.error
    assert runner.template_file(adapter_type).exists()
    started, manifest = parse(project, tmp_path / "mission", adapter_type)
    assert started.parsed_from_template
    assert signature(manifest) == signature(full_manifest)
    assert {"model.genesis.CLAIM_SUMMARY", "model.genesis.PROVIDER_SUMMARY",
            "model.genesis.PATIENT_SUMMARY"} <= set(manifest.nodes)
    assert any(key.startswith("test.genesis.relationships_CLAIM_SUMMARY") for key in manifest.nodes)
    # The generated macros kept from the template now live in the project's own directory.
    roots = {f.path.project_root for f in manifest.files.values() if f.project_name == "genesis"}
    assert roots == {str(tmp_path / "mission" / "project")}
    # A template already current is found so, not parsed again.
    again = runner.prepare_template(adapter_type)
    assert again.success and again.parsed_from_template


def test_a_template_whose_macros_are_stale_is_still_a_start_and_the_macros_are_parsed_anew(
        tmp_path, settings, monkeypatch):
    settings.GENESIS_DBT_TEMPLATE_DIR = tmp_path / "templates"
    project = healthcare("sqlite")
    _, full_manifest = parse(project, tmp_path / "full", "sqlite")
    stale = dbt_project.MACROS.replace("{% macro genesis_child_filter(", "{% macro genesis_old_filter(")
    monkeypatch.setattr(dbt_project, "MACROS", stale)
    assert runner.prepare_template("sqlite").success
    monkeypatch.undo()
    settings.GENESIS_DBT_TEMPLATE_DIR = tmp_path / "templates"

    started, manifest = parse(project, tmp_path / "mission", "sqlite")
    assert started.parsed_from_template
    assert "macro.genesis.genesis_child_filter" in manifest.macros
    assert "macro.genesis.genesis_old_filter" not in manifest.macros
    assert signature(manifest) == signature(full_manifest)


def test_an_unreadable_template_or_another_project_shape_means_a_full_parse(tmp_path, settings):
    settings.GENESIS_DBT_TEMPLATE_DIR = tmp_path / "templates"
    assert runner.prepare_template("sqlite").success
    # A project that is not generated (another name, its own dbt_project.yml): dbt rejects the template.
    other = DbtProject(name="mine", files={
        "dbt_project.yml": "name: mine\nversion: '1.0.0'\nconfig-version: 2\nprofile: genesis\n",
        "models/one.sql": "select 1 as id\n"})
    invocation, manifest = parse(other, tmp_path / "other", "sqlite")
    assert not invocation.parsed_from_template and "model.mine.one" in manifest.nodes

    runner.template_file("sqlite").write_bytes(b"\x93not a manifest")
    invocation, manifest = parse(healthcare("sqlite"), tmp_path / "broken", "sqlite")
    assert not invocation.parsed_from_template and "model.genesis.CLAIM_SUMMARY" in manifest.nodes


def test_the_handed_off_project_carries_the_missions_name_and_runs_under_the_shared_one():
    import io
    import zipfile

    import yaml

    project = healthcare("sqlite")
    assert yaml.safe_load(project.files["dbt_project.yml"])["name"] == "genesis"
    archive = zipfile.ZipFile(io.BytesIO(project.zip_bytes()))
    handed = yaml.safe_load(archive.read("claims_for_finance/dbt_project.yml"))
    assert handed["name"] == "claims_for_finance"
    assert handed["models"] == {"claims_for_finance": {"+materialized": "table"}}
    assert handed["data_tests"] == {"claims_for_finance": {"+severity": "warn"}}
    assert archive.read("claims_for_finance/models/CLAIM_SUMMARY.sql").decode() == (
        project.files["models/CLAIM_SUMMARY.sql"])


def test_warm_up_parses_each_installed_adapters_template_and_builds_from_it(tmp_path, settings):
    settings.GENESIS_DBT_TEMPLATE_DIR = tmp_path / "templates"
    seconds = runner.warm_up()
    assert set(seconds) == {"sqlite template", "duckdb template", "postgres template", "build"}
    assert all(runner.template_file(t).exists() for t in ("sqlite", "duckdb", "postgres"))
    assert runner.cached_revisions() == []  # the warm-up's own project is not kept


FORKED_PARSE = """
import faulthandler, os, sys, tempfile
from pathlib import Path
import django
django.setup()
from pipeline.dbt import runner
from pipeline.dbt.project import template_profile
from tests.pipeline.build.test_templates import healthcare
runner.warm_up()
pid = os.fork()
if pid == 0:
    faulthandler.dump_traceback_later(60, exit=True)
    directory = Path(tempfile.mkdtemp())
    invocation = runner.invoke(healthcare("sqlite"), project_dir=directory / "p",
                               profile=template_profile("sqlite", directory), env={}, args=["ls"],
                               target_dir=directory / "t", write_results=False)
    os._exit(0 if invocation.success and invocation.parsed_from_template else 3)
_, status = os.waitpid(pid, 0)
import shutil
from django.conf import settings
for path in (settings.MEDIA_ROOT, settings.GENESIS_DBT_TEMPLATE_DIR):
    shutil.rmtree(path, ignore_errors=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.slow
def test_a_worker_forked_after_the_warm_up_parses_models(tmp_path):
    """The warm-up runs in the cluster's command before it forks its workers: a worker's first parse of models (dbt's
    static parser included) must not wait on anything the warm-up started in the parent (it did: dbt_extractor's
    thread pool, whose threads a fork does not copy)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    # The test settings give the process templates of its own, in a new directory.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "genesis.settings_test", "GENESIS_VAR_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", FORKED_PARSE], cwd=root, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
    assert process.returncode == 0, output[-3000:]
