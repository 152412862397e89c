"""Whole-table verification of a target without a period: its rows against the distinct grain keys of the source,
and no grain key twice; which targets go month by month and which whole."""

import sqlite3

import pytest

from agents.access import adapter_for
from agents.models import Connection
from pipeline.dbt.project import DbtProject
from pipeline.dbt.spec import ColumnSpec, TargetSpec, target_from_dict
from pipeline.quality.backfill import split_by_period, verify_whole

pytestmark = pytest.mark.django_db

CUSTOMERS = TargetSpec(name="CUSTOMER_DIM", sql="SELECT id AS CUSTOMER_ID, name AS NAME FROM customers",
                       grain=["CUSTOMER_ID"], period="",
                       columns=[ColumnSpec(name="CUSTOMER_ID", type="INTEGER", source_table="customers",
                                           source_column="id"), ColumnSpec(name="NAME")])


def database(path, statements):
    db = sqlite3.connect(path)
    with db:
        for statement in statements:
            db.execute(statement)
    db.close()
    return path


@pytest.fixture
def adapters(tmp_path):
    source = database(tmp_path / "src.sqlite3", [
        "CREATE TABLE customers (id INTEGER, name TEXT)",
        "INSERT INTO customers VALUES (1, 'a'), (2, 'b'), (3, 'c'), (3, 'c again')"])
    target = database(tmp_path / "tgt.sqlite3", ["CREATE TABLE CUSTOMER_DIM (CUSTOMER_ID INTEGER, NAME TEXT)"])
    src = Connection.objects.create(name="SRC", engine="sqlite", location=str(source), purpose="source")
    tgt = Connection.objects.create(name="TGT", engine="sqlite", location=str(target), purpose="target")
    with adapter_for(src, mission=None) as s, adapter_for(tgt, mission=None) as t:
        yield s, t, target


def test_a_target_without_a_period_matches_the_sources_distinct_grain_keys(adapters):
    source, built, path = adapters
    database(path, ["INSERT INTO CUSTOMER_DIM VALUES (1, 'a'), (2, 'b'), (3, 'c')"])
    (result,) = verify_whole(source, built, [CUSTOMERS])
    assert (result.expected, result.actual, result.duplicate_keys, result.ok) == (3, 3, 0, True)
    assert result.expected_sql == 'SELECT COUNT(*) FROM (SELECT DISTINCT "id" FROM "customers") AS genesis_grain'


def test_a_missing_row_and_a_key_on_two_rows_fail_it(adapters):
    source, built, path = adapters
    database(path, ["INSERT INTO CUSTOMER_DIM VALUES (1, 'a'), (3, 'c'), (3, 'c again')"])
    (result,) = verify_whole(source, built, [CUSTOMERS])
    assert (result.expected, result.actual, result.variance, result.duplicate_keys, result.ok) == (3, 3, 0, 1, False)
    database(path, ["DELETE FROM CUSTOMER_DIM WHERE NAME = 'c again'"])
    (result,) = verify_whole(source, built, [CUSTOMERS], {"customer_dim": "SELECT 5"})
    assert (result.expected, result.actual, result.variance, result.ok) == (5, 2, -3, False)


def test_only_month_partitioned_targets_with_a_period_go_month_by_month():
    monthly = TargetSpec(name="ORDER_FACT", sql="SELECT 1", period="orders.order_date")
    inline = TargetSpec(name="CLAIM_SUMMARY", sql="SELECT 1")  # the spec does not say: partitioning decides
    filtered = "SELECT * FROM x WHERE {{ genesis_month_filter('\"D\"') }}"
    project = DbtProject(name="p", files={f"models/{t.name}.sql": filtered
                                          for t in (monthly, inline, CUSTOMERS)},
                         targets=[monthly, inline, CUSTOMERS])
    by_month, whole = split_by_period(project, [monthly, inline, CUSTOMERS])
    assert [t.name for t in by_month] == ["ORDER_FACT", "CLAIM_SUMMARY"] and whole == [CUSTOMERS]
    # The mapping spec's grain says whether there is a period.
    assert target_from_dict({"target_table": "T", "sql": "SELECT 1", "grain": {"columns": ["K"]}}).period == ""
    assert target_from_dict({"target_table": "T", "sql": "SELECT 1",
                             "grain": {"columns": ["K"], "period": "O.D"}}).period == "O.D"
    assert target_from_dict({"target_table": "T", "sql": "SELECT 1", "grain": ["K"]}).period is None


def test_a_key_the_database_keeps_unique_is_counted_without_hashing_it(tmp_path):
    # A unique column may hold several missing values: SELECT DISTINCT keeps one of them, and so must the count.
    source = database(tmp_path / "src.sqlite3", [
        "CREATE TABLE customers (id INTEGER UNIQUE, name TEXT)",
        "INSERT INTO customers VALUES (1, 'a'), (2, 'b'), (5, 'e'), (NULL, 'x'), (NULL, 'y')",
        "CREATE TABLE keyed (ID INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO keyed VALUES (1, 'a'), (7, 'b')"])
    target = database(tmp_path / "tgt.sqlite3", [
        "CREATE TABLE CUSTOMER_DIM (CUSTOMER_ID INTEGER, NAME TEXT)",
        "INSERT INTO CUSTOMER_DIM VALUES (1, 'a'), (2, 'b'), (5, 'e'), (NULL, 'x')",
        "CREATE TABLE KEYED_DIM (K INTEGER)", "INSERT INTO KEYED_DIM VALUES (1), (7)"])
    keyed = TargetSpec(name="KEYED_DIM", sql="SELECT id AS K FROM keyed", grain=["K"], period="",
                       columns=[ColumnSpec(name="K", type="INTEGER", source_table="KEYED", source_column="id")])
    src = Connection.objects.create(name="SRC", engine="sqlite", location=str(source), purpose="source")
    tgt = Connection.objects.create(name="TGT", engine="sqlite", location=str(target), purpose="target")
    with adapter_for(src, mission=None) as s, adapter_for(tgt, mission=None) as t:
        customers, keys = verify_whole(s, t, [CUSTOMERS, keyed])
        distinct = s.scalar('SELECT COUNT(*) FROM (SELECT DISTINCT "id" FROM "customers") AS g')
    assert "DISTINCT" not in customers.expected_sql and "DISTINCT" not in keys.expected_sql
    assert '"ID"' in keys.expected_sql  # the key as the database spells it
    assert customers.expected == distinct == 4 and customers.ok
    assert (keys.expected, keys.actual, keys.ok) == (2, 2, True)
