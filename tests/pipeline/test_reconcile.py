"""Reconciliation from the mapping spec: each summed or counted measure's target total equals the source table's own
total; a join on a coincident id (payments matched to orders by the payment's id) fails it, naming the target, the
column and both totals."""

import sqlite3

from agents.access import adapter_for
from pipeline.dbt.spec import target_from_dict
from pipeline.mapping import Catalog, TargetMapper
from pipeline.profiler import profile_source
from pipeline.quality.reconcile import reconcile
from tests.pipeline import sources
from tests.pipeline.conftest import sqlite_connection

ORDERS_PAID = {
    "name": "ORDER_PAYMENTS", "grain": {"entity": "order"},
    "columns": [
        {"name": "ORDER_ID", "type": "INTEGER", "description": "The order."},
        {"name": "AMOUNT_PAID", "type": "INTEGER", "description": "Sum of the order's payments, in cents.",
         "rule": {"sum": "payment amount", "default": 0}},
        {"name": "PAYMENT_COUNT", "type": "INTEGER", "description": "How many payments.",
         "rule": {"count": "payments"}},
    ],
}


def materialize(source_path, sql: str, name: str, target_path) -> None:
    """Build the target as the dbt model would: the mapping's SELECT over the source, stored in the target."""
    src = sqlite3.connect(source_path)
    cursor = src.execute(sql)
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    src.close()
    db = sqlite3.connect(target_path)
    with db:
        db.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r}" for c in columns)})')
        db.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(columns))})', rows)  # noqa: S608
    db.close()


def mapped(source, target, *, wrong_fk=None, declared=None):
    with adapter_for(sqlite_connection(source.path), mission=None) as adapter:
        profile = profile_source(adapter, relationships=declared)
    if wrong_fk:
        profile["foreign_keys"] = [fk for fk in profile["foreign_keys"] if fk["table"] != wrong_fk["table"]]
        profile["foreign_keys"].append(wrong_fk)
    return TargetMapper(target=target, catalog=Catalog(profile), dialect="sqlite",
                        answers={"ORDER_ID": "orders.id"}).plan()


def checks(source, content, tmp_path):
    target_path = tmp_path / "target.sqlite3"
    target_path.unlink(missing_ok=True)
    materialize(source.path, content["sql"], content["target"], target_path)
    spec = target_from_dict(content, sql=content["sql"])
    with adapter_for(sqlite_connection(target_path, "TGT"), mission=None) as target_adapter, \
            adapter_for(sqlite_connection(source.path), mission=None) as source_adapter:
        return {r.column: r for r in reconcile(target_adapter, source_adapter, spec)}


def test_the_measures_of_a_right_mapping_reconcile(tmp_path):
    source = sources.retail(tmp_path)
    content = mapped(source, ORDERS_PAID)
    measures = {c["name"]: c.get("measure") for c in content["columns"]}
    assert measures["AMOUNT_PAID"] == {"function": "sum", "table": "payments", "expression": '"amount"',
                                       "describe": 'SUM("payments"."amount")'}
    assert measures["PAYMENT_COUNT"]["function"] == "count" and measures["ORDER_ID"] is None
    results = checks(source, content, tmp_path)
    assert set(results) == {"AMOUNT_PAID", "PAYMENT_COUNT"}
    assert all(r.passed for r in results.values()), [r.describe() for r in results.values()]
    total = sum(p["amount"] for p in source.tables["payments"])
    assert f"{total:,}" in results["AMOUNT_PAID"].detail


def test_a_join_on_a_coincident_id_fails_reconciliation_naming_both_totals(tmp_path):
    source = sources.retail(tmp_path)
    wrong = {"table": "payments", "column": "id", "ref_table": "orders", "ref_column": "id"}
    content = mapped(source, ORDERS_PAID, wrong_fk=wrong)
    results = checks(source, content, tmp_path)
    paid = results["AMOUNT_PAID"]
    assert not paid.passed
    right = sum(p["amount"] for p in source.tables["payments"])
    wrongly = sum(p["amount"] for p in source.tables["payments"] if p["id"] <= len(source.tables["orders"]))
    assert paid.describe() == (
        f"reconcile on ORDER_PAYMENTS.AMOUNT_PAID: target total {wrongly:,} but source total {right:,} "
        '(SUM("payments"."amount")): the target misses source rows; a join on the wrong key does this')
    assert not results["PAYMENT_COUNT"].passed


def test_a_wrong_relationship_declared_in_the_spec_fails_reconciliation(tmp_path):
    """``sources.relationships: ["payments.id -> orders.id"]``: a person's mistake is taken as declared, and the
    totals show it."""
    source = sources.retail(tmp_path)
    declared = [{"table": "payments", "column": "id", "ref_table": "orders", "ref_column": "id"}]
    content = mapped(source, ORDERS_PAID, declared=declared)
    assert content["aggregated_children"][0]["on"] == "payments.id = orders.id"
    results = checks(source, content, tmp_path)
    assert not results["AMOUNT_PAID"].passed and not results["PAYMENT_COUNT"].passed
    assert "the target misses source rows" in results["AMOUNT_PAID"].detail
