"""build-marts fixtures: the blueprint loaded, a generated retail source with its target and validation connections,
and its spec file, written as a person would (targets in words, the connections named)."""

import sqlite3

import pytest

from blueprints.services import blueprint_import
from tests.blueprints.conftest import FILES
from tests.conftest import leads_connection
from tests.pipeline import sources

RETAIL = """
version: 1
name: Retail marts
description: Customers and their orders, from the shop's database.
sources:
  connection: {source}
  allowed_tables: [customers, orders, payments]
  relationships:
    - orders.customer_id -> customers.id
    - payments.order_id -> orders.id
targets:
  connection: {target}
  tables:
    - name: CUSTOMER_DIM
      description: One row per customer of the shop.
      grain:
        entity: customer
      columns:
        - name: CUSTOMER_ID
          type: INTEGER
          description: Identifier of the customer.
          constraints: [not_null, unique]
        - name: FIRST_NAME
          type: TEXT
          description: The customer's first name.
        - name: LAST_NAME
          type: TEXT
          description: The customer's last name.
    - name: ORDER_FACT
      description: One row per order, with what was paid for it.
      grain:
        entity: order
        period: {{month_of: "order date"}}
      columns:
        - name: ORDER_ID
          type: INTEGER
          description: Identifier of the order.
          constraints: [not_null, unique]
        - name: ORDER_DATE
          type: DATE
          description: The date the order was placed.
          constraints: [not_null]
        - name: CUSTOMER_ID
          type: INTEGER
          description: The customer who placed the order.
        - name: ORDER_MONTH
          type: DATE
          description: The first day of the month the order was placed in.
          rule: {{period_start: period}}
        - name: ORDER_STATUS
          type: TEXT
          description: The order's status.
        - name: AMOUNT_PAID
          type: INTEGER
          description: Total paid for the order, in cents.
          rule: {{sum: "payment amount", default: 0}}
"""


@pytest.fixture
def marts(db):
    path = FILES / "build-marts.yaml"
    return blueprint_import(text=path.read_text(), filename=str(path))


@pytest.fixture
def retail(db, tmp_path, settings, dbt_templates):
    """(the generated source, its connection, the target connection, the validation connection)."""
    settings.GENESIS_DBT_DIR = tmp_path / "dbt"
    source = sources.retail(tmp_path)
    target = tmp_path / "marts.sqlite3"
    sqlite3.connect(target).close()
    src = leads_connection(name="RETAIL", engine="sqlite", location=str(source.path), purpose="source")
    tgt = leads_connection(name="RETAIL_MARTS", engine="sqlite", location=str(target), purpose="target")
    val = leads_connection(name="RETAIL_CHECK", engine="sqlite", location=str(target), purpose="validation")
    return source, src, tgt, val


@pytest.fixture
def retail_spec(retail):
    _source, src, tgt, _val = retail
    return RETAIL.format(source=src.name, target=tgt.name)
