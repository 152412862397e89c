"""A mission launched from another mission's approved mapping specs verifies them against the current source instead
of mapping again, and builds them in its own target."""

import sqlite3
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from genesis.exceptions import DomainError
from missions.choices import MissionStatus
from missions.models import Mission
from pipeline.choices import MappingStatus
from pipeline.models import MappingSpecVersion
from tasks.models import Question, Run
from tests.conftest import leads_connection
from tests.pipeline.marts.conftest import RETAIL
from workflows.missions import mission_create_from_blueprint

# Transactional: the lease thread of a long run (its own connection) must see the run rows as committed.
pytestmark = pytest.mark.django_db(transaction=True)


def launch(marts, lead, spec: str, name: str, **options):
    return mission_create_from_blueprint(
        version=marts, name=name, objective="", owner=lead, actor=lead, mode="continuous",
        params={"validation_connection": "RETAIL_CHECK"}, spec_file=ContentFile(spec.encode(), name="retail.yml"),
        **options)


def drive(mission):
    out = StringIO()
    call_command("run_mission", str(mission.pk), "--wait", "--timeout", "300", "--auto-approve", stdout=out)
    mission.refresh_from_db()
    assert mission.status == MissionStatus.COMPLETED, out.getvalue()


def test_a_mission_from_another_reuses_its_approved_specs_and_builds_them_elsewhere(marts, retail, retail_spec,
                                                                                    lead, tmp_path):
    first = launch(marts, lead, retail_spec, "Retail (dev)")
    drive(first)
    # Another environment: the same source, its own warehouse.
    prod = tmp_path / "prod.sqlite3"
    sqlite3.connect(prod).close()
    leads_connection(name="RETAIL_PROD", engine="sqlite", location=str(prod), purpose="target")
    second = launch(marts, lead, RETAIL.format(source="RETAIL", target="RETAIL_PROD"), "Retail (prod)",
                    from_mission=first.pk)
    assert {t.key: t.config["from_mission"] for t in second.tasks.filter(key__startswith="map_")} == {
        "map_customer_dim": first.pk, "map_order_fact": first.pk}
    drive(second)

    # No mapping again: no question, and each spec is the first mission's approved SQL, verified on the source.
    assert not Question.objects.filter(task__mission=second).exists()
    for target in ("CUSTOMER_DIM", "ORDER_FACT"):
        original = MappingSpecVersion.objects.get(spec__mission=first, spec__target_table=target,
                                                  status=MappingStatus.APPROVED)
        reused = MappingSpecVersion.objects.get(spec__mission=second, spec__target_table=target,
                                                status=MappingStatus.APPROVED)
        assert reused.sql == original.sql and reused.content["reused_from"] == {
            "mission": first.pk, "mission_name": "Retail (dev)", "version": original.number}
        assert reused.content["dry_run"]["duplicate_grain_rows"] == 0 and reused.content["dry_run"]["rows"] > 0
        measures = [c["name"] for c in original.content["columns"] if c.get("measure", {}).get("function") in
                    {"sum", "count"}]
        assert [(r["column"], r["passed"]) for r in reused.content["reconciliation"]] == [(m, True) for m in measures]
    assert [c for c in reused.content["reconciliation"] if c["column"] == "AMOUNT_PAID"]
    run = Run.objects.filter(task__mission=second, task__key="map_order_fact").latest("pk")
    assert "not mapped again; verified on the current source" in run.result["summary"]
    built = sqlite3.connect(prod)
    assert built.execute("SELECT COUNT(*) FROM ORDER_FACT").fetchone()[0] == 99
    assert built.execute("SELECT COUNT(*) FROM CUSTOMER_DIM").fetchone()[0] == 100


def test_from_mission_is_refused_without_approved_specs_writing_nothing(marts, retail, retail_spec, lead, mission):
    before = Mission.objects.count()
    with pytest.raises(DomainError, match="has no approved mapping spec to reuse") as refused:
        launch(marts, lead, retail_spec, "Retail again", from_mission=mission.pk)
    assert refused.value.field == "from_mission"
    with pytest.raises(DomainError, match="no mission 999999 you may read"):
        launch(marts, lead, retail_spec, "Retail again", from_mission=999999)
    assert Mission.objects.count() == before


def test_a_reused_mapping_whose_totals_no_longer_reconcile_with_the_source_is_refused_naming_them(
        marts, retail, retail_spec, lead, tmp_path):
    source, _src, _tgt, _val = retail
    first = launch(marts, lead, retail_spec, "Retail (dev)")
    drive(first)
    approved = MappingSpecVersion.objects.get(spec__mission=first, spec__target_table="ORDER_FACT",
                                              status=MappingStatus.APPROVED)
    assert any(c.get("measure", {}).get("function") == "sum" for c in approved.content["columns"])
    # The source changes: payments arrive for an order it does not hold. The approved SQL still runs and keys no
    # order twice (the dry run passes), but its orders no longer carry every payment.
    db = sqlite3.connect(source.path)
    with db:
        db.executemany("INSERT INTO payments VALUES (?, ?, ?, ?)",
                       [(90_001, 5_000, "coupon", 700), (90_002, 5_000, "credit_card", 1_234)])
        paid_in_source = db.execute("SELECT SUM(amount) FROM payments").fetchone()[0]
        paid_for_orders = db.execute("SELECT SUM(p.amount) FROM payments p JOIN orders o ON o.id = p.order_id"
                                     ).fetchone()[0]
    db.close()
    assert paid_in_source - paid_for_orders == 1_934
    prod = tmp_path / "prod.sqlite3"
    sqlite3.connect(prod).close()
    leads_connection(name="RETAIL_PROD", engine="sqlite", location=str(prod), purpose="target")
    second = launch(marts, lead, RETAIL.format(source="RETAIL", target="RETAIL_PROD"), "Retail (prod)",
                    from_mission=first.pk)
    with pytest.raises(CommandError, match="The mission failed"):
        call_command("run_mission", str(second.pk), "--wait", "--timeout", "300", "--auto-approve",
                     stdout=StringIO())

    run = Run.objects.filter(task__mission=second, task__key="map_order_fact").latest("pk")
    assert run.status == "failed"
    assert "ORDER_FACT: the approved mapping of “Retail (dev)”" in run.error
    assert "does not reconcile with the current source" in run.error
    assert (f"reconcile on ORDER_FACT.AMOUNT_PAID: target total {paid_for_orders:,.6g} but source total "
            f"{paid_in_source:,.6g}") in run.error
    # Nothing of ORDER_FACT was proposed, nothing approved, nothing built.
    assert not MappingSpecVersion.objects.filter(spec__mission=second, spec__target_table="ORDER_FACT").exists()
    assert not MappingSpecVersion.objects.filter(spec__mission=second, status=MappingStatus.APPROVED).exists()
    assert not sqlite3.connect(prod).execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'ORDER_FACT'").fetchone()[0]
