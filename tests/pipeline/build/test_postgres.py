"""The same pipeline with source and target on the local PostgreSQL server (dbt's PostgreSQL adapter)."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import psycopg
import pytest
from psycopg.rows import dict_row

from agents.base import Failed, Succeeded
from agents.models import Connection
from pipeline.demo.generator import generate, write_postgresql, write_sqlite
from tasks.models import Artifact
from tests.pipeline.build.conftest import Pipeline
from tests.pipeline.build.healthcare import assert_target_matches, expected_targets, read_bronze

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
PG_SERVER = "postgres://postgres@127.0.0.1:5432/test"


def _dsn(schema: str) -> str:
    return f"{PG_SERVER}?options={quote(f'-c search_path={schema}')}"


@pytest.fixture
def pg_schemas(tmp_path):
    """A bronze schema holding a small demo (and the same rows in SQLite for the independent computation) and
    an empty target schema, both dropped afterwards."""
    try:
        admin = psycopg.connect(PG_SERVER, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    suffix = uuid.uuid4().hex[:10]
    bronze, target = f"genesis_dbt_bronze_{suffix}", f"genesis_dbt_target_{suffix}"
    admin.execute(f'CREATE SCHEMA "{bronze}"')
    admin.execute(f'CREATE SCHEMA "{target}"')
    data = generate(claims=400, seed=31)
    # Two claims point at providers that do not exist, to see the data-quality agent name them on PostgreSQL.
    claims = data.tables["CLAIMS"]
    for index, provider in ((10, 7001), (20, 7002)):
        claims[index] = (*claims[index][:2], provider, *claims[index][3:])
    try:
        with psycopg.connect(PG_SERVER, options=f"-c search_path={bronze}") as conn:
            write_postgresql(conn, data)
        yield bronze, target, write_sqlite(tmp_path / "same-bronze.sqlite3", data), claims
    finally:
        admin.execute(f'DROP SCHEMA "{bronze}" CASCADE')
        admin.execute(f'DROP SCHEMA "{target}" CASCADE')
        admin.close()


def pipeline_on_postgresql(tmp_path, pg_schemas) -> Pipeline:
    """The test pipeline with its source and target connections on the two schemas of ``pg_schemas``."""
    bronze_schema, target_schema, bronze_copy, _ = pg_schemas
    pipeline = Pipeline(tmp_path, bronze_copy)
    pipeline.source = Connection.objects.create(name="PG_BRONZE", engine="postgresql", location=_dsn(bronze_schema),
                                                purpose="source")
    pipeline.target = Connection.objects.create(name="PG_TARGET", engine="postgresql", location=_dsn(target_schema),
                                                purpose="target")
    pipeline.grant(pipeline.source, pipeline.target)
    pipeline.mission.source_connection, pipeline.mission.target_connection = pipeline.source, pipeline.target
    pipeline.mission.save(update_fields=["source_connection", "target_connection"])
    return pipeline


def test_pipeline_on_postgresql(tmp_path, dbt_dir, pg_schemas):
    bronze_schema, target_schema, bronze_copy, claims = pg_schemas
    pipeline = pipeline_on_postgresql(tmp_path, pg_schemas)

    outcome, _ = pipeline.run("dbt_build")
    assert isinstance(outcome, Succeeded), outcome
    expected = expected_targets(read_bronze(bronze_copy))
    with psycopg.connect(PG_SERVER, options=f"-c search_path={target_schema}", row_factory=dict_row) as conn:
        for name, want in expected.items():
            rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()
            assert_target_matches(name, rows, want)
        types = {r["column_name"]: r["data_type"] for r in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND "
            "table_name = 'CLAIM_SUMMARY'", [target_schema]).fetchall()}
    assert types["CLAIM_DATE"] == "date" and types["TOTAL_CHARGE"] == "numeric" and types["CLAIM_ID"] == "bigint"

    outcome, _ = pipeline.run("validation")
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["rows"]["CLAIM_SUMMARY"] == 400

    outcome, _ = pipeline.run("data_quality")
    assert isinstance(outcome, Failed)
    failed = outcome.outputs["failed"]
    assert [(f["check"], f["target"], f["column"]) for f in failed] == [("references", "CLAIM_SUMMARY", "PROVIDER_ID")]
    assert "7001" in outcome.error and "7002" in outcome.error
    assert sorted(failed[0]["sample_keys"]) == sorted([claims[10][0], claims[20][0]])

    orphan_months = {claims[10][3][:7], claims[20][3][:7]}
    month = next(c[3][:7] for c in claims if c[3][:7] not in orphan_months)
    outcome, _ = pipeline.run("backfill", months=[month])
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.outputs["final_rows"]["CLAIM_SUMMARY"] == 400

    # Every month verified: the orphans' months differ from the source, are rebuilt, and still differ.
    outcome, context = pipeline.run("backfill", key="backfill_all")
    assert isinstance(outcome, Failed) and sorted(outcome.outputs["failing_months"]) == sorted(orphan_months)
    report = json.loads(Artifact.objects.get(run=context.run, name="backfill_report.json").file.read())
    assert report["rebuilt"] == {"PROVIDER_SUMMARY": sorted(orphan_months)}  # rebuilt once, still short
    assert report["final_rows"]["CLAIM_SUMMARY"] == 400
    with psycopg.connect(PG_SERVER) as conn:
        kept = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND "
                            "table_name LIKE '%%genesis_backfill'", [target_schema]).fetchone()[0]
    assert kept == 0
