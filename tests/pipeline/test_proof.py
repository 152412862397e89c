"""Proof on four generated sources of different shapes nobody tuned the mapping to (retail: bare ids everywhere and
payments in cents; a lending library: fines in cents of several kinds, two hops from members; claims: run-together
upper-case names, text ids, CHARGE/PAYMENT/TRANSFER lines, empty diagnosis columns; a subscription business:
text account numbers, churned subscriptions, paid/void/refunded invoices in cents two hops away). Each has a spec
in words only (grain and descriptions, no rule, no expression) and an answer key.

(a) With the answer key, every target cell equals a computation written here, in Python, apart from the mapping.
(b) With descriptions only and no answers, every column is either mapped right by the agent or asked about: the
    questions are answered from the key one at a time (as a person would), and each column the agent mapped on its
    own is compared with the computation. A wrong column that the reconciliation does not flag would be a silent
    wrong answer: there must be none. The counts are printed (asked / right / wrong / wrong-and-unflagged).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from agents.access import adapter_for
from pipeline.dbt.spec import target_from_dict
from pipeline.mapping import Ambiguity, Catalog, MappingProblem, TargetMapper
from pipeline.profiler import profile_source
from pipeline.quality.reconcile import reconcile
from tests.pipeline import sources
from tests.pipeline.conftest import sqlite_connection


def col(name, type_, description):
    return {"name": name, "type": type_, "description": description}


@dataclass
class Case:
    make: Callable
    targets: list[dict]
    answers: dict[str, dict[str, str]]  # target -> column -> answer
    expected: Callable[[Any], dict[str, dict[Any, dict[str, Any]]]]  # source -> target -> key -> column -> value


# --- retail -------------------------------------------------------------------------------------------------------
RETAIL_TARGETS = [
    {"name": "CUSTOMERS", "grain": {"entity": "customer"}, "columns": [
        col("CUSTOMER_ID", "INTEGER", "The customer's identifier."),
        col("FIRST_NAME", "TEXT", "The customer's first name."),
        col("LAST_NAME", "TEXT", "The customer's last name."),
        col("FIRST_ORDER", "DATE", "Date of the customer's earliest order."),
        col("MOST_RECENT_ORDER", "DATE", "Date of the customer's latest order."),
        col("NUMBER_OF_ORDERS", "INTEGER", "How many orders the customer placed (0 when none)."),
        col("CUSTOMER_LIFETIME_VALUE", "DECIMAL(12,2)",
            "Total of all the customer's payments in dollars (payment amounts are in cents; 0 when none)."),
    ]},
    {"name": "ORDERS", "grain": {"entity": "order"}, "columns": [
        col("ORDER_ID", "INTEGER", "The order's identifier."),
        col("CUSTOMER_ID", "INTEGER", "The customer who placed the order."),
        col("ORDER_DATE", "DATE", "When the order was placed."),
        col("STATUS", "TEXT", "The order's status."),
        col("CREDIT_CARD_AMOUNT", "DECIMAL(12,2)", "Dollars paid by credit card for the order."),
        col("COUPON_AMOUNT", "DECIMAL(12,2)", "Dollars paid with coupons for the order."),
        col("BANK_TRANSFER_AMOUNT", "DECIMAL(12,2)", "Dollars paid by bank transfer for the order."),
        col("AMOUNT", "DECIMAL(12,2)", "Total dollars paid for the order."),
    ]},
]


def _by_method(method):
    return (f"sql: COALESCE(SUM(CASE WHEN payments.payment_method = '{method}' THEN payments.amount END), 0) "
            "/ 100.0")


RETAIL_ANSWERS = {
    "CUSTOMERS": {
        "CUSTOMER_ID": "customers.id", "FIRST_NAME": "customers.first_name", "LAST_NAME": "customers.last_name",
        "FIRST_ORDER": "sql: MIN(orders.order_date)", "MOST_RECENT_ORDER": "sql: MAX(orders.order_date)",
        "NUMBER_OF_ORDERS": "sql: COUNT(orders.id)",
        "CUSTOMER_LIFETIME_VALUE": "sql: COALESCE(SUM(payments.amount), 0) / 100.0",
    },
    "ORDERS": {
        "ORDER_ID": "orders.id", "CUSTOMER_ID": "orders.customer_id", "ORDER_DATE": "orders.order_date",
        "STATUS": "orders.status", "CREDIT_CARD_AMOUNT": _by_method("credit_card"),
        "COUPON_AMOUNT": _by_method("coupon"), "BANK_TRANSFER_AMOUNT": _by_method("bank_transfer"),
        "AMOUNT": "sql: COALESCE(SUM(payments.amount), 0) / 100.0",
    },
}


def retail_expected(source):
    tables = source.tables
    order_customer = {o["id"]: o["customer_id"] for o in tables["orders"]}
    paid = defaultdict(lambda: defaultdict(int))
    for p in tables["payments"]:
        paid[p["order_id"]][p["payment_method"]] += p["amount"]
    customers = {}
    for c in tables["customers"]:
        mine = [o for o in tables["orders"] if o["customer_id"] == c["id"]]
        dates = [o["order_date"] for o in mine]
        cents = sum(sum(paid[o["id"]].values()) for o in mine)
        customers[c["id"]] = {
            "CUSTOMER_ID": c["id"], "FIRST_NAME": c["first_name"], "LAST_NAME": c["last_name"],
            "FIRST_ORDER": min(dates) if dates else None, "MOST_RECENT_ORDER": max(dates) if dates else None,
            "NUMBER_OF_ORDERS": len(mine), "CUSTOMER_LIFETIME_VALUE": cents / 100}
    orders = {o["id"]: {
        "ORDER_ID": o["id"], "CUSTOMER_ID": order_customer[o["id"]], "ORDER_DATE": o["order_date"],
        "STATUS": o["status"], "CREDIT_CARD_AMOUNT": paid[o["id"]]["credit_card"] / 100,
        "COUPON_AMOUNT": paid[o["id"]]["coupon"] / 100, "BANK_TRANSFER_AMOUNT": paid[o["id"]]["bank_transfer"] / 100,
        "AMOUNT": sum(paid[o["id"]].values()) / 100} for o in tables["orders"]}
    return {"CUSTOMERS": customers, "ORDERS": orders}


# --- lending library ------------------------------------------------------------------------------------------
LIBRARY_TARGETS = [
    {"name": "MEMBER_ACCOUNTS", "grain": {"entity": "member"}, "columns": [
        col("MEMBER_ID", "INTEGER", "The member's identifier."),
        col("FULL_NAME", "TEXT", "The member's full name."),
        col("JOINED_ON", "DATE", "When the member joined."),
        col("LOANS", "INTEGER", "How many loans the member took out (0 when none)."),
        col("LATE_FINES", "DECIMAL(10,2)", "Dollars of late-return fines on the member's loans (0 when none)."),
        col("DAMAGE_FINES", "DECIMAL(10,2)", "Dollars of damage fines (0 when none)."),
        col("LOST_FINES", "DECIMAL(10,2)", "Dollars of fines for lost items (0 when none)."),
        col("TOTAL_FINES", "DECIMAL(10,2)", "All fines in dollars; fines are recorded in cents (0 when none)."),
        col("LAST_BORROWED", "DATE", "The latest date the member borrowed something."),
    ]},
]


def _fines(kind=None):
    where = f"CASE WHEN Fine.Kind = '{kind}' THEN Fine.AmountCents END" if kind else "Fine.AmountCents"
    return f"sql: COALESCE(SUM({where}), 0) / 100.0"


LIBRARY_ANSWERS = {"MEMBER_ACCOUNTS": {
    "MEMBER_ID": "Member.MemberId", "FULL_NAME": "Member.FullName", "JOINED_ON": "Member.JoinedOn",
    "LOANS": "sql: COUNT(Loan.LoanId)", "LATE_FINES": _fines("LATE"), "DAMAGE_FINES": _fines("DAMAGE"),
    "LOST_FINES": _fines("LOST"), "TOTAL_FINES": _fines(), "LAST_BORROWED": "sql: MAX(Loan.BorrowedOn)",
}}


def library_expected(source):
    tables = source.tables
    loans = {loan["LoanId"]: loan for loan in tables["Loan"]}
    rows = {}
    for m in tables["Member"]:
        mine = [loan for loan in tables["Loan"] if loan["MemberId"] == m["MemberId"]]
        fines = [f for f in tables["Fine"] if loans[f["LoanId"]]["MemberId"] == m["MemberId"]]

        def cents(kind=None, fines=fines):
            return sum(f["AmountCents"] for f in fines if kind is None or f["Kind"] == kind) / 100

        rows[m["MemberId"]] = {
            "MEMBER_ID": m["MemberId"], "FULL_NAME": m["FullName"], "JOINED_ON": m["JoinedOn"], "LOANS": len(mine),
            "LATE_FINES": cents("LATE"), "DAMAGE_FINES": cents("DAMAGE"), "LOST_FINES": cents("LOST"),
            "TOTAL_FINES": cents(), "LAST_BORROWED": max((loan["BorrowedOn"] for loan in mine), default=None)}
    return {"MEMBER_ACCOUNTS": rows}


# --- claims ---------------------------------------------------------------------------------------------------
CLAIMS_TARGETS = [
    {"name": "CLAIM_BALANCES", "grain": {"entity": "claim"}, "columns": [
        col("CLAIM_ID", "TEXT", "The claim's identifier."),
        col("PATIENT_ID", "TEXT", "The patient the claim is for."),
        col("PROVIDER_ID", "TEXT", "The provider who gave the service."),
        col("SERVICE_DATE", "DATE", "The date of service."),
        col("PRIMARY_DIAGNOSIS", "TEXT", "The claim's first diagnosis code."),
        col("TOTAL_CHARGED", "DECIMAL(12,2)", "Sum of the amounts of the claim's CHARGE transactions (0 when none)."),
        col("TOTAL_PAID", "DECIMAL(12,2)", "Sum of the payments of the claim's PAYMENT transactions (0 when none)."),
        col("TRANSFERRED", "DECIMAL(12,2)", "Sum of the amounts of the claim's TRANSFER transactions (0 when none)."),
    ]},
    {"name": "PATIENT_CLAIMS", "grain": {"entity": "patient"}, "columns": [
        col("PATIENT_ID", "TEXT", "The patient's identifier."),
        col("FIRST_NAME", "TEXT", "The patient's first name."),
        col("LAST_NAME", "TEXT", "The patient's last name."),
        col("BIRTH_DATE", "DATE", "The patient's birth date."),
        col("CLAIMS", "INTEGER", "How many claims the patient has (0 when none)."),
        col("CHARGED", "DECIMAL(12,2)", "Sum of the CHARGE transaction amounts over the patient's claims."),
    ]},
]


def _tx(kind, column):
    return (f"sql: COALESCE(SUM(CASE WHEN claims_transactions.TYPE = '{kind}' THEN claims_transactions.{column} "
            "END), 0)")


CLAIMS_ANSWERS = {
    "CLAIM_BALANCES": {
        "CLAIM_ID": "claims.Id", "PATIENT_ID": "claims.PATIENTID", "PROVIDER_ID": "claims.PROVIDERID",
        "SERVICE_DATE": "claims.SERVICEDATE", "PRIMARY_DIAGNOSIS": "claims.DIAGNOSIS1",
        "TOTAL_CHARGED": _tx("CHARGE", "AMOUNT"), "TOTAL_PAID": _tx("PAYMENT", "PAYMENTS"),
        "TRANSFERRED": _tx("TRANSFER", "AMOUNT"),
    },
    "PATIENT_CLAIMS": {
        "PATIENT_ID": "patients.Id", "FIRST_NAME": "patients.FIRST", "LAST_NAME": "patients.LAST",
        "BIRTH_DATE": "patients.BIRTHDATE", "CLAIMS": "sql: COUNT(claims.Id)", "CHARGED": _tx("CHARGE", "AMOUNT"),
    },
}


def claims_expected(source):
    tables = source.tables
    tx = defaultdict(lambda: defaultdict(float))
    for t in tables["claims_transactions"]:
        tx[t["CLAIMID"]][t["TYPE"]] += (t["PAYMENTS"] if t["TYPE"] == "PAYMENT" else t["AMOUNT"]) or 0
    balances = {c["Id"]: {
        "CLAIM_ID": c["Id"], "PATIENT_ID": c["PATIENTID"], "PROVIDER_ID": c["PROVIDERID"],
        "SERVICE_DATE": c["SERVICEDATE"], "PRIMARY_DIAGNOSIS": c["DIAGNOSIS1"], "TOTAL_CHARGED": tx[c["Id"]]["CHARGE"],
        "TOTAL_PAID": tx[c["Id"]]["PAYMENT"], "TRANSFERRED": tx[c["Id"]]["TRANSFER"]} for c in tables["claims"]}
    patients = {}
    for p in tables["patients"]:
        mine = [c for c in tables["claims"] if c["PATIENTID"] == p["Id"]]
        patients[p["Id"]] = {"PATIENT_ID": p["Id"], "FIRST_NAME": p["FIRST"], "LAST_NAME": p["LAST"],
                             "BIRTH_DATE": p["BIRTHDATE"], "CLAIMS": len(mine),
                             "CHARGED": sum(tx[c["Id"]]["CHARGE"] for c in mine)}
    return {"CLAIM_BALANCES": balances, "PATIENT_CLAIMS": patients}


# --- subscription business ---------------------------------------------------------------------------------------
SUBSCRIPTION_TARGETS = [
    {"name": "ACCOUNT_REVENUE", "grain": {"entity": "account"}, "columns": [
        col("ACCOUNT_NUMBER", "TEXT", "The account's number."),
        col("SIGNUP_DATE", "DATE", "When the account signed up."),
        col("COUNTRY", "TEXT", "The account's country."),
        col("SUBSCRIPTIONS", "INTEGER", "How many subscriptions the account ever had (0 when none)."),
        col("ACTIVE_SUBSCRIPTIONS", "INTEGER", "Subscriptions not ended (0 when none)."),
        col("REVENUE", "DECIMAL(12,2)", "Dollars of paid invoices over all the account's subscriptions; invoices are "
                                        "in cents (0 when none)."),
        col("REFUNDED", "DECIMAL(12,2)", "Dollars of refunded invoices (0 when none)."),
        col("FIRST_INVOICE", "DATE", "Date of the account's first invoice."),
    ]},
]

SUBSCRIPTION_ANSWERS = {"ACCOUNT_REVENUE": {
    "ACCOUNT_NUMBER": "accounts.acct_no", "SIGNUP_DATE": "accounts.signup_date", "COUNTRY": "accounts.country",
    "SUBSCRIPTIONS": "sql: COUNT(subscriptions.sub_ref)",
    "ACTIVE_SUBSCRIPTIONS": "sql: COUNT(CASE WHEN subscriptions.ended_on IS NULL THEN subscriptions.sub_ref END)",
    "REVENUE": "sql: COALESCE(SUM(CASE WHEN invoices.status = 'PAID' THEN invoices.amount_cents END), 0) / 100.0",
    "REFUNDED": "sql: COALESCE(SUM(CASE WHEN invoices.status = 'REFUNDED' THEN invoices.amount_cents END), 0) / 100.0",
    "FIRST_INVOICE": "sql: MIN(invoices.billed_on)",
}}


def subscription_expected(source):
    tables = source.tables
    owner = {s["sub_ref"]: s["acct_no"] for s in tables["subscriptions"]}
    rows = {}
    for a in tables["accounts"]:
        subs = [s for s in tables["subscriptions"] if s["acct_no"] == a["acct_no"]]
        invoices = [i for i in tables["invoices"] if owner[i["sub_ref"]] == a["acct_no"]]
        rows[a["acct_no"]] = {
            "ACCOUNT_NUMBER": a["acct_no"], "SIGNUP_DATE": a["signup_date"], "COUNTRY": a["country"],
            "SUBSCRIPTIONS": len(subs), "ACTIVE_SUBSCRIPTIONS": sum(1 for s in subs if s["ended_on"] is None),
            "REVENUE": sum(i["amount_cents"] for i in invoices if i["status"] == "PAID") / 100,
            "REFUNDED": sum(i["amount_cents"] for i in invoices if i["status"] == "REFUNDED") / 100,
            "FIRST_INVOICE": min((i["billed_on"] for i in invoices), default=None)}
    return {"ACCOUNT_REVENUE": rows}


CASES = {
    "retail": Case(sources.retail, RETAIL_TARGETS, RETAIL_ANSWERS, retail_expected),
    "library": Case(sources.library, LIBRARY_TARGETS, LIBRARY_ANSWERS, library_expected),
    "claims": Case(sources.claims, CLAIMS_TARGETS, CLAIMS_ANSWERS, claims_expected),
    "subscriptions": Case(sources.subscriptions, SUBSCRIPTION_TARGETS, SUBSCRIPTION_ANSWERS, subscription_expected),
}


# --- the checks -------------------------------------------------------------------------------------------------
def same(got, want) -> bool:
    if isinstance(want, float) or isinstance(got, float):
        return got is not None and want is not None and abs(float(got) - float(want)) < 1e-6
    return got == want


def cells(source_path, content) -> dict[Any, dict[str, Any]]:
    db = sqlite3.connect(source_path)
    try:
        cursor = db.execute(content["sql"])
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    finally:
        db.close()


def wrong_cells(got: dict, want: dict, column: str) -> int:
    return sum(1 for key, row in want.items() if key not in got or not same(got[key][column], row[column]))


def catalog_for(source) -> Catalog:
    with adapter_for(sqlite_connection(source.path), mission=None) as adapter:
        return Catalog(profile_source(adapter))


@pytest.mark.parametrize("name", sorted(CASES))
def test_with_the_answer_key_every_cell_equals_the_independent_computation(tmp_path, name):
    case = CASES[name]
    source = case.make(tmp_path)
    catalog = catalog_for(source)
    expected = case.expected(source)
    for target in case.targets:
        content = TargetMapper(target=target, catalog=catalog, dialect="sqlite",
                               answers=case.answers[target["name"]]).plan()
        got = cells(source.path, content)
        want = expected[target["name"]]
        assert set(got) == set(want), target["name"]
        for column in target["columns"]:
            assert wrong_cells(got, want, column["name"]) == 0, (target["name"], column["name"])


def materialize(source_path, content, target_path) -> None:
    got = cells(source_path, content)
    names = [c["name"] for c in content["columns"]]
    db = sqlite3.connect(target_path)
    with db:
        db.execute(f'DROP TABLE IF EXISTS "{content["target"]}"')
        db.execute(f'CREATE TABLE "{content["target"]}" ({", ".join(names)})')
        db.executemany(f'INSERT INTO "{content["target"]}" VALUES ({", ".join("?" * len(names))})',  # noqa: S608
                       [tuple(row[n] for n in names) for row in got.values()])
    db.close()


def flagged_columns(source, content, tmp_path) -> set[str]:
    """The columns the reconciliation fails on."""
    target_path = tmp_path / "proof-target.sqlite3"
    materialize(source.path, content, target_path)
    spec = target_from_dict(content, sql=content["sql"])
    with adapter_for(sqlite_connection(target_path, "TGT"), mission=None) as target_adapter, \
            adapter_for(sqlite_connection(source.path), mission=None) as source_adapter:
        return {r.column for r in reconcile(target_adapter, source_adapter, spec) if not r.passed}


COUNTS: dict[str, dict[str, int]] = {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_with_descriptions_only_every_column_is_mapped_right_or_asked(tmp_path, name):
    case = CASES[name]
    source = case.make(tmp_path)
    catalog = catalog_for(source)
    expected = case.expected(source)
    counts = {"columns": 0, "asked": 0, "right": 0, "wrong": 0, "wrong_unflagged": 0}
    for target in case.targets:
        key_of = case.answers[target["name"]]
        given: dict[str, str] = {}
        asked: set[str] = set()
        for _ in range(4 * len(target["columns"]) + 4):
            try:
                content = TargetMapper(target=target, catalog=catalog, dialect="sqlite", answers=given).plan()
                break
            except Ambiguity as question:
                column = question.column.split(".")[0].upper()
                assert question.question.startswith(f"{target['name']}.{question.column}:"), question.question
                assert column in key_of, question.question
                asked.add(column)
                assert question.column.upper() not in given, f"asked twice: {question.question}"
                given[question.column.upper()] = key_of[column]
            except MappingProblem as problem:  # pragma: no cover - reported, never expected
                pytest.fail(f"{target['name']}: {problem}")
        else:  # pragma: no cover
            pytest.fail(f"{target['name']}: questions never ended")
        got = cells(source.path, content)
        want = expected[target["name"]]
        flagged = flagged_columns(source, content, tmp_path)
        for column in target["columns"]:
            counts["columns"] += 1
            if column["name"].upper() in asked:
                counts["asked"] += 1
                continue
            if wrong_cells(got, want, column["name"]) == 0:
                counts["right"] += 1
                continue
            counts["wrong"] += 1
            if column["name"] not in flagged:
                counts["wrong_unflagged"] += 1
                print(f"WRONG AND UNFLAGGED: {name} {target['name']}.{column['name']}")
    COUNTS[name] = counts
    print(f"\n{name}: {counts['columns']} columns: {counts['asked']} asked, {counts['right']} right, "
          f"{counts['wrong']} wrong, {counts['wrong_unflagged']} wrong and unflagged")
    assert counts["asked"] + counts["right"] + counts["wrong"] == counts["columns"]
    assert counts["wrong_unflagged"] == 0
