"""build-marts end to end on a source nobody tuned the agents to (the retail shop of tests/pipeline/sources.py),
driven headless by ``run_mission --auto-approve`` as the acceptance runs are."""

import json
import sqlite3
from collections import defaultdict
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from missions.choices import MissionStatus
from tasks.models import Artifact
from tests.pipeline.marts.conftest import RETAIL
from workflows.missions import mission_create_from_blueprint

pytestmark = pytest.mark.django_db


def test_build_marts_builds_a_retail_sources_targets_and_verifies_them(marts, retail, lead):
    source, src, tgt, val = retail
    mission = mission_create_from_blueprint(
        version=marts, name="Retail marts", objective="", owner=lead, actor=lead, mode="continuous",
        params={"validation_connection": val.name},
        spec_file=ContentFile(RETAIL.format(source=src.name, target=tgt.name).encode(), name="retail.yml"))
    # The spec named the source and target connections; its two targets became two mapping tasks.
    assert (mission.source_connection, mission.target_connection) == (src, tgt)
    assert sorted(mission.tasks.filter(key__startswith="map_").values_list("key", flat=True)) == [
        "map_customer_dim", "map_order_fact"]

    out = StringIO()
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "300", "--auto-approve", stdout=out)
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED, out.getvalue()
    assert set(mission.tasks.values_list("status", flat=True)) == {"done"}

    # The targets hold what an independent computation over the generated rows says.
    built = sqlite3.connect(tgt.location)
    customers = {row["id"]: row for row in source.tables["customers"]}
    assert sorted(built.execute("SELECT CUSTOMER_ID, FIRST_NAME, LAST_NAME FROM CUSTOMER_DIM").fetchall()) == sorted(
        (c["id"], c["first_name"], c["last_name"]) for c in customers.values())
    paid = defaultdict(int)
    for payment in source.tables["payments"]:
        paid[payment["order_id"]] += payment["amount"]
    facts = {row[0]: row[1:] for row in built.execute(
        "SELECT ORDER_ID, CUSTOMER_ID, AMOUNT_PAID FROM ORDER_FACT")}
    assert facts == {o["id"]: (o["customer_id"], paid[o["id"]]) for o in source.tables["orders"]}

    # ORDER_FACT (a monthly grain) was verified month by month after the build (nothing differed, nothing rebuilt);
    # CUSTOMER_DIM (no period) verified whole-table.
    report = json.loads(Artifact.objects.get(mission=mission, name="backfill_report.json").file.read())
    assert report["targets"] == ["ORDER_FACT"] and report["whole_table_targets"] == ["CUSTOMER_DIM"]
    checks = report["verified_before"]
    assert [c["month"] for c in checks] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert all(c["ok"] for c in checks) and report["rebuilt"] == {}
    assert sum(c["rows"] for c in checks) == len(source.tables["orders"])
    (whole,) = report["whole_table"]
    assert (whole["target"], whole["expected"], whole["actual"], whole["duplicate_keys"], whole["ok"]) == (
        "CUSTOMER_DIM", len(customers), len(customers), 0, True)
