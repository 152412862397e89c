"""Sources of shapes nobody tuned the agents to, generated here with their answer keys.

- ``retail``: a shop's customers, orders and payments, every table keyed by a bare ``id`` (so that ids of different
  tables overlap: 1..N everywhere), payments in cents of several methods.
- ``claims``: real-world-like healthcare claims with run-together upper-case names (``PATIENTID``,
  ``SERVICEDATE``, ``DIAGNOSIS1``), text identifiers, transaction lines typed CHARGE/PAYMENT/TRANSFER, and empty
  diagnosis columns.
- ``library``: a lending library's members, loans and fines in cents of several kinds.
- ``bike_hire``: docks with text codes and hires dated around two New Years (Sundays and Mondays among them), for
  periods (day, week from Monday, month, year) that must agree on every engine.
- ``field_service``: technicians and vans numbered alike, and jobs whose ``assignee_id`` fits both: a foreign key
  only a person can tell.

Each comes with the foreign keys a person knows it has (``relationships``), for the tests to hold the agents'
inferences against; the values are deterministic for a seed.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path


@dataclass
class Source:
    path: Path
    tables: dict[str, list[dict]]
    relationships: set[tuple[str, str, str, str]] = field(default_factory=set)


def _write(path: Path, tables: dict[str, list[dict]], types: dict[str, dict[str, str]]) -> None:
    db = sqlite3.connect(path)
    with db:
        for table, rows in tables.items():
            columns = types[table]
            db.execute(f'CREATE TABLE "{table}" ({", ".join(f"{c} {t}" for c, t in columns.items())})')
            db.executemany(f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(columns))})',  # noqa: S608
                           [tuple(row[c] for c in columns) for row in rows])
    db.close()


def retail(folder: Path, *, seed: int = 11, customers: int = 100, orders: int = 99) -> Source:
    rng = random.Random(seed)
    first = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken"]
    tables: dict[str, list[dict]] = {
        "customers": [{"id": i, "first_name": rng.choice(first), "last_name": f"L{i:03d}"}
                      for i in range(1, customers + 1)],
        "orders": [],
        "payments": [],
    }
    start = date(2024, 1, 1)
    pay_id = 0
    for i in range(1, orders + 1):
        # Customer ids are drawn so that some customers have several orders and some none: an order's id equal to
        # a customer's id means nothing.
        tables["orders"].append({"id": i, "customer_id": rng.randint(1, customers),
                                 "order_date": (start + timedelta(days=rng.randint(0, 120))).isoformat(),
                                 "status": rng.choice(["placed", "shipped", "completed", "returned"])})
        for _ in range(rng.randint(1, 3)):
            pay_id += 1
            tables["payments"].append({"id": pay_id, "order_id": i,
                                       "payment_method": rng.choice(["credit_card", "coupon", "bank_transfer"]),
                                       "amount": rng.randint(100, 5000)})  # cents
    path = folder / "retail.sqlite3"
    _write(path, tables, {
        "customers": {"id": "INTEGER", "first_name": "TEXT", "last_name": "TEXT"},
        "orders": {"id": "INTEGER", "customer_id": "INTEGER", "order_date": "TEXT", "status": "TEXT"},
        "payments": {"id": "INTEGER", "order_id": "INTEGER", "payment_method": "TEXT", "amount": "INTEGER"},
    })
    return Source(path, tables, {("orders", "customer_id", "customers", "id"),
                                 ("payments", "order_id", "orders", "id")})


def claims(folder: Path, *, seed: int = 5, patients: int = 60, claims_count: int = 200) -> Source:
    rng = random.Random(seed)
    tables: dict[str, list[dict]] = {"patients": [], "providers": [], "claims": [], "claims_transactions": []}
    for i in range(patients):
        tables["patients"].append({"Id": f"P{i:05d}-{rng.randint(1000, 9999)}", "FIRST": f"F{i}", "LAST": f"L{i}",
                                   "BIRTHDATE": date(1940 + rng.randint(0, 60), rng.randint(1, 12),
                                                     rng.randint(1, 28)).isoformat()})
    for i in range(12):
        tables["providers"].append({"Id": f"PRV-{i:03d}", "NAME": f"Dr {i}", "SPECIALITY": rng.choice(
            ["GENERAL PRACTICE", "CARDIOLOGY", "PEDIATRICS"])})
    tx = 0
    for i in range(claims_count):
        claim_id = f"CLM{i:06d}"
        tables["claims"].append({
            "Id": claim_id, "PATIENTID": rng.choice(tables["patients"])["Id"],
            "PROVIDERID": rng.choice(tables["providers"])["Id"],
            "SERVICEDATE": (date(2023, 1, 1) + timedelta(days=rng.randint(0, 364))).isoformat(),
            "DIAGNOSIS1": rng.choice(["J06.9", "I10", "E11.9"]),
            "DIAGNOSIS2": rng.choice([None, None, "Z00.00"]), "DIAGNOSIS3": None,
        })
        charge = rng.randint(50, 900)
        tables["claims_transactions"].append({"ID": f"T{tx:07d}", "CLAIMID": claim_id, "TYPE": "CHARGE",
                                              "AMOUNT": float(charge), "PAYMENTS": None})
        tx += 1
        paid = round(charge * rng.choice([0.0, 0.5, 0.8, 1.0]), 2)
        if paid:
            tables["claims_transactions"].append({"ID": f"T{tx:07d}", "CLAIMID": claim_id, "TYPE": "PAYMENT",
                                                  "AMOUNT": None, "PAYMENTS": paid})
            tx += 1
        if rng.random() < 0.2:
            tables["claims_transactions"].append({"ID": f"T{tx:07d}", "CLAIMID": claim_id, "TYPE": "TRANSFER",
                                                  "AMOUNT": float(charge - paid), "PAYMENTS": None})
            tx += 1
    path = folder / "claims.sqlite3"
    _write(path, tables, {
        "patients": {"Id": "TEXT", "FIRST": "TEXT", "LAST": "TEXT", "BIRTHDATE": "TEXT"},
        "providers": {"Id": "TEXT", "NAME": "TEXT", "SPECIALITY": "TEXT"},
        "claims": {"Id": "TEXT", "PATIENTID": "TEXT", "PROVIDERID": "TEXT", "SERVICEDATE": "TEXT",
                   "DIAGNOSIS1": "TEXT", "DIAGNOSIS2": "TEXT", "DIAGNOSIS3": "TEXT"},
        "claims_transactions": {"ID": "TEXT", "CLAIMID": "TEXT", "TYPE": "TEXT", "AMOUNT": "REAL",
                                "PAYMENTS": "REAL"},
    })
    return Source(path, tables, {("claims", "PATIENTID", "patients", "Id"), ("claims", "PROVIDERID", "providers", "Id"),
                                 ("claims_transactions", "CLAIMID", "claims", "Id")})


def library(folder: Path, *, seed: int = 3, members: int = 80, loans: int = 300) -> Source:
    rng = random.Random(seed)
    tables: dict[str, list[dict]] = {
        "Member": [{"MemberId": 1000 + i, "FullName": f"Member {i}", "JoinedOn": f"20{10 + i % 14:02d}-0{1 + i % 9}-15"}
                   for i in range(members)],
        "Loan": [], "Fine": [],
    }
    fine_id = 0
    for i in range(loans):
        loan_id = 5000 + i
        out = date(2024, 1, 1) + timedelta(days=rng.randint(0, 300))
        tables["Loan"].append({"LoanId": loan_id, "MemberId": rng.choice(tables["Member"])["MemberId"],
                               "BorrowedOn": out.isoformat(), "DueOn": (out + timedelta(days=21)).isoformat()})
        for kind in ("LATE", "DAMAGE", "LOST"):
            if rng.random() < {"LATE": 0.3, "DAMAGE": 0.05, "LOST": 0.02}[kind]:
                fine_id += 1
                tables["Fine"].append({"FineId": fine_id, "LoanId": loan_id, "Kind": kind,
                                       "AmountCents": rng.randint(25, 4000)})
    path = folder / "library.sqlite3"
    _write(path, tables, {
        "Member": {"MemberId": "INTEGER", "FullName": "TEXT", "JoinedOn": "TEXT"},
        "Loan": {"LoanId": "INTEGER", "MemberId": "INTEGER", "BorrowedOn": "TEXT", "DueOn": "TEXT"},
        "Fine": {"FineId": "INTEGER", "LoanId": "INTEGER", "Kind": "TEXT", "AmountCents": "INTEGER"},
    })
    return Source(path, tables, {("Loan", "MemberId", "Member", "MemberId"), ("Fine", "LoanId", "Loan", "LoanId")})


def subscriptions(folder: Path, *, seed: int = 8, accounts: int = 70) -> Source:
    """A subscription business: accounts with text numbers, plans by code, several subscriptions per account (some
    ended: churn), and invoices in cents that were paid, voided or refunded, two hops from the account."""
    rng = random.Random(seed)
    tables: dict[str, list[dict]] = {
        "plans": [{"plan_code": code, "plan_name": name, "monthly_price_cents": price}
                  for code, name, price in (("BAS", "Basic", 900), ("PRO", "Pro", 2900), ("TEAM", "Team", 9900))],
        "accounts": [], "subscriptions": [], "invoices": [],
    }
    sub_ref = inv_no = 0
    for i in range(accounts):
        acct = f"AC-{7000 + i}"
        signup = date(2023, 1, 1) + timedelta(days=rng.randint(0, 500))
        tables["accounts"].append({"acct_no": acct, "signup_date": signup.isoformat(),
                                   "country": rng.choice(["NL", "DE", "FR", "US"])})
        for _ in range(rng.randint(0, 3)):
            sub_ref += 1
            plan = rng.choice(tables["plans"])
            started = signup + timedelta(days=rng.randint(0, 90))
            months = rng.randint(1, 10)
            ended = (started + timedelta(days=30 * months)).isoformat() if rng.random() < 0.4 else None
            tables["subscriptions"].append({"sub_ref": sub_ref, "acct_no": acct, "plan_code": plan["plan_code"],
                                            "started_on": started.isoformat(), "ended_on": ended})
            for month in range(months):
                inv_no += 1
                tables["invoices"].append({
                    "inv_no": inv_no, "sub_ref": sub_ref,
                    "billed_on": (started + timedelta(days=30 * month)).isoformat(),
                    "amount_cents": plan["monthly_price_cents"],
                    "status": rng.choices(["PAID", "VOID", "REFUNDED"], weights=[8, 1, 1])[0]})
    path = folder / "subscriptions.sqlite3"
    _write(path, tables, {
        "plans": {"plan_code": "TEXT", "plan_name": "TEXT", "monthly_price_cents": "INTEGER"},
        "accounts": {"acct_no": "TEXT", "signup_date": "TEXT", "country": "TEXT"},
        "subscriptions": {"sub_ref": "INTEGER", "acct_no": "TEXT", "plan_code": "TEXT", "started_on": "TEXT",
                          "ended_on": "TEXT"},
        "invoices": {"inv_no": "INTEGER", "sub_ref": "INTEGER", "billed_on": "TEXT", "amount_cents": "INTEGER",
                     "status": "TEXT"},
    })
    return Source(path, tables, {("subscriptions", "acct_no", "accounts", "acct_no"),
                                 ("subscriptions", "plan_code", "plans", "plan_code"),
                                 ("invoices", "sub_ref", "subscriptions", "sub_ref")})


# Days a period's first day is easy to get wrong: New Year's Eve on a Sunday, New Year's Day on a Monday, a week
# that starts in one year and ends in the next, a leap day.
BIKE_EDGE_DAYS = ["2023-12-31", "2024-01-01", "2024-02-29", "2024-12-29", "2024-12-30", "2024-12-31", "2025-01-01",
                  "2025-01-05", "2025-01-06"]


def bike_hire(folder: Path, *, seed: int = 21, docks: int = 12, hires: int = 400) -> Source:
    """Docks keyed by text codes, and hires with their day, minutes and fare in cents, around two New Years."""
    rng = random.Random(seed)
    tables: dict[str, list[dict]] = {
        "docks": [{"dock_code": f"DK-{300 + i}", "area": rng.choice(["north", "harbour", "old town"])}
                  for i in range(docks)],
        "hires": [],
    }
    for i in range(hires):
        if i < len(BIKE_EDGE_DAYS) * 2:
            day = date.fromisoformat(BIKE_EDGE_DAYS[i % len(BIKE_EDGE_DAYS)])
        else:
            day = rng.choice([date(2023, 12, 20), date(2024, 12, 20)]) + timedelta(days=rng.randint(0, 25))
        tables["hires"].append({"hire_no": 70_000 + i, "dock_code": rng.choice(tables["docks"])["dock_code"],
                                "hired_on": day.isoformat(), "minutes": rng.randint(3, 180),
                                "fare_cents": rng.randint(150, 2_500)})
    path = folder / "bike_hire.sqlite3"
    _write(path, tables, {
        "docks": {"dock_code": "TEXT", "area": "TEXT"},
        "hires": {"hire_no": "INTEGER", "dock_code": "TEXT", "hired_on": "TEXT", "minutes": "INTEGER",
                  "fare_cents": "INTEGER"},
    })
    return Source(path, tables, {("hires", "dock_code", "docks", "dock_code")})


def field_service(folder: Path, *, seed: int = 17, people: int = 15, jobs: int = 240) -> Source:
    """Technicians and vans, both numbered 1..N, and jobs whose ``assignee_id`` holds a number of each: the
    values fit both keys and no name says which (the answer key: a technician)."""
    rng = random.Random(seed)
    first = ["Ines", "Mo", "Yara", "Teo", "Lis", "Bram", "Noor", "Sem"]
    tables: dict[str, list[dict]] = {
        "technicians": [{"tech_id": i, "full_name": f"{rng.choice(first)} T{i:02d}", "grade": rng.choice("ABC")}
                        for i in range(1, people + 1)],
        "vans": [{"van_id": i, "plate": f"VX-{100 + i}", "grade": rng.choice("ABC")} for i in range(1, people + 1)],
        "jobs": [],
    }
    for i in range(jobs):
        tables["jobs"].append({"job_no": 9_000 + i, "assignee_id": rng.randint(1, people),
                               "job_day": (date(2024, 3, 1) + timedelta(days=rng.randint(0, 90))).isoformat(),
                               "hours_worked": rng.randint(1, 9)})
    path = folder / "field_service.sqlite3"
    _write(path, tables, {
        "technicians": {"tech_id": "INTEGER", "full_name": "TEXT", "grade": "TEXT"},
        "vans": {"van_id": "INTEGER", "plate": "TEXT", "grade": "TEXT"},
        "jobs": {"job_no": "INTEGER", "assignee_id": "INTEGER", "job_day": "TEXT", "hours_worked": "INTEGER"},
    })
    return Source(path, tables, {("jobs", "assignee_id", "technicians", "tech_id")})
