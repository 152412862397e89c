"""A measure over a table two hops away (customers <- orders <- payments) is aggregated along the foreign-key path,
never by joining payments to customers on a coincident id; every cell equals a computation written here."""

import sqlite3
from collections import defaultdict

from agents.access import adapter_for
from pipeline.mapping import Catalog, TargetMapper
from pipeline.profiler import profile_source
from tests.pipeline import sources
from tests.pipeline.conftest import sqlite_connection

CUSTOMER_VALUE = {
    "name": "CUSTOMER_VALUE", "grain": {"entity": "customer"},
    "columns": [
        {"name": "CUSTOMER_ID", "type": "INTEGER", "description": "The customer."},
        {"name": "FIRST_NAME", "type": "TEXT", "description": "The customer's first name."},
        {"name": "LIFETIME_VALUE", "type": "DECIMAL(12,2)", "description": "All the customer's payments, dollars.",
         "rule": {"sum": "payment amount", "divide": 100, "default": 0}},
        {"name": "COUPON_VALUE", "type": "DECIMAL(12,2)", "description": "Payments by coupon, dollars.",
         "rule": {"sum": "payment amount", "where": "payment_method = 'coupon'", "divide": 100, "default": 0}},
        {"name": "ORDER_COUNT", "type": "INTEGER", "description": "Orders placed.", "rule": {"count": "orders"}},
        {"name": "PAYMENT_COUNT", "type": "INTEGER", "description": "Payments made.", "rule": {"count": "payments"}},
        {"name": "FIRST_ORDER", "type": "DATE", "description": "Earliest order.", "rule": {"min": "order date"}},
        {"name": "AVG_PAYMENT", "type": "DECIMAL(12,2)", "description": "Mean payment in cents.",
         "expression": "AVG(payments.amount)"},
    ],
}


def expected(source) -> dict[int, tuple]:
    """Computed from the generated rows, without SQL."""
    order_customer = {o["id"]: o["customer_id"] for o in source.tables["orders"]}
    paid, coupon, pays, amounts = defaultdict(int), defaultdict(int), defaultdict(int), defaultdict(list)
    for p in source.tables["payments"]:
        customer = order_customer[p["order_id"]]
        paid[customer] += p["amount"]
        pays[customer] += 1
        amounts[customer].append(p["amount"])
        if p["payment_method"] == "coupon":
            coupon[customer] += p["amount"]
    orders, first = defaultdict(int), {}
    for o in source.tables["orders"]:
        orders[o["customer_id"]] += 1
        first[o["customer_id"]] = min(first.get(o["customer_id"], o["order_date"]), o["order_date"])
    return {c["id"]: (c["id"], c["first_name"], paid[c["id"]] / 100, coupon[c["id"]] / 100, orders[c["id"]],
                      pays[c["id"]], first.get(c["id"]),
                      sum(amounts[c["id"]]) / len(amounts[c["id"]]) if amounts[c["id"]] else None)
            for c in source.tables["customers"]}


def test_customer_lifetime_value_goes_through_orders_and_every_cell_is_right(tmp_path):
    source = sources.retail(tmp_path)
    with adapter_for(sqlite_connection(source.path), mission=None) as adapter:
        catalog = Catalog(profile_source(adapter))
    content = TargetMapper(target=CUSTOMER_VALUE, catalog=catalog, dialect="sqlite",
                           answers={"CUSTOMER_ID": "customers.id"}).plan()
    payments = next(c for c in content["aggregated_children"] if c["table"] == "payments")
    assert payments["path"] == [["payments.order_id", "orders.id"], ["orders.customer_id", "customers.id"]]
    assert not any("payments" in j["table"] for j in content["joins"])
    db = sqlite3.connect(source.path)
    rows = {row[0]: row for row in db.execute(content["sql"])}
    db.close()
    want = expected(source)
    assert set(rows) == set(want)
    for key, row in want.items():
        got = rows[key]
        assert got[:2] == row[:2] and got[4:7] == row[4:7], (key, got, row)
        for index in (2, 3, 7):
            assert (got[index] is None) == (row[index] is None) and abs((got[index] or 0) - (row[index] or 0)) < 1e-9
    ltv = next(c for c in content["columns"] if c["name"] == "LIFETIME_VALUE")
    assert ltv["measure"]["table"] == "payments" and ltv["measure"]["function"] == "sum"
