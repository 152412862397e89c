"""The second half of the pipeline on what the field-mapping agent really proposes: its three specs approved, then
dbt build, data quality and validation; the targets equal the independent computation."""

from __future__ import annotations

import json

import pytest

from agents.base import NeedsApproval, Succeeded
from pipeline import services as agent_services
from pipeline.dbt.spec import approved_targets
from pipeline.models import MappingSpecVersion
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline
from tests.pipeline.build.healthcare import (
    assert_target_matches,
    expected_targets,
    read_bronze,
    read_sqlite_table,
)
from tests.pipeline.conftest import SPEC_PATH

pytestmark = pytest.mark.django_db
TARGET_NAMES = ["CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"]


def test_approved_mapping_specs_build_check_and_validate(tmp_path, dbt_dir, bronze_b, lead):
    pipeline = Pipeline(tmp_path, bronze_b)
    for target in TARGET_NAMES:
        outcome, _ = pipeline.run("field_mapping", key=target.lower(), target=target, spec_path=SPEC_PATH,
                                  source_connection=pipeline.source.name)
        assert isinstance(outcome, NeedsApproval), outcome
    # Nothing is approved yet: the build refuses.
    outcome, _ = pipeline.run("dbt_build", key="build_early", targets=[])
    assert "approved mapping spec" in outcome.error
    for version in MappingSpecVersion.objects.all():
        agent_services.mapping_spec_approve(version=version, actor=lead)

    specs = {t.name: t for t in approved_targets(pipeline.mission)}
    assert set(specs) == set(TARGET_NAMES)
    assert specs["PROVIDER_SUMMARY"].grain == ["PROVIDER_ID", "REPORT_YEAR", "REPORT_MONTH"]
    assert specs["CLAIM_SUMMARY"].column("CLAIM_DATE").source_column == "SERVICE_DATE"

    for kind in ("dbt_build", "data_quality", "validation"):
        outcome, context = pipeline.run(kind, targets=[])  # no inline targets: the approved specs are used
        assert isinstance(outcome, Succeeded), (kind, outcome)
        if kind == "data_quality":
            results = json.loads(Artifact.objects.get(run=context.run, name="dq_results.json").file.read())
            reconciled = {(r["target"], r["column"]) for r in results if r["check"] == "reconcile" and r["passed"]}
            assert {("CLAIM_SUMMARY", "TOTAL_CHARGE"), ("PROVIDER_SUMMARY", "TOTAL_CLAIMS")} <= reconciled
    expected = expected_targets(read_bronze(bronze_b))
    for name, want in expected.items():
        assert_target_matches(name, read_sqlite_table(pipeline.target_path, name), want)
