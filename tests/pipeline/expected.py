"""The healthcare targets computed straight from the generated rows, in plain Python, independently of the
mapping agent's SQL: what each target column means, per the demo spec file."""

from __future__ import annotations

from collections import defaultdict
from datetime import date


def _age(birth: str, year: int, month: int) -> int:
    b = date.fromisoformat(birth)
    on = date(year, month, 1)
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def _group(age: int) -> str:
    for high, label in ((17, "0-17"), (34, "18-34"), (49, "35-49"), (64, "50-64")):
        if age <= high:
            return label
    return "65+"


def claim_summary(data) -> dict[int, tuple]:
    charge, paid = defaultdict(float), defaultdict(float)
    for _line, claim, _n, _proc, amount, paid_amount, _units in data.tables["CLAIM_DETAILS"]:
        charge[claim] += amount
        paid[claim] += paid_amount
    rows = {}
    for claim, patient, provider, service_date, ctype, status, dx in data.tables["CLAIMS"]:
        total, insured = round(charge[claim], 2), round(paid[claim], 2)
        rows[claim] = (claim, service_date, patient, provider, ctype, status, dx, total, insured,
                       round(total - insured, 2))
    return rows


def _monthly(data, by: int):
    charge, paid = defaultdict(float), defaultdict(float)
    for _line, claim, _n, _proc, amount, paid_amount, _units in data.tables["CLAIM_DETAILS"]:
        charge[claim] += amount
        paid[claim] += paid_amount
    groups = defaultdict(lambda: {"claims": 0, "patients": set(), "charge": 0.0, "paid": 0.0, "denied": 0})
    for claim, patient, provider, service_date, _t, status, _dx in data.tables["CLAIMS"]:
        key = ((patient, provider)[by], int(service_date[:4]), int(service_date[5:7]))
        g = groups[key]
        g["claims"] += 1
        g["patients"].add(patient)
        g["charge"] += charge[claim]
        g["paid"] += paid[claim]
        g["denied"] += status == "DENIED"
    return groups


def provider_summary(data) -> dict[tuple, tuple]:
    providers = {p[0]: p for p in data.tables["PROVIDERS"]}
    rows = {}
    for (provider, year, month), g in _monthly(data, 1).items():
        p = providers[provider]
        rows[(provider, year, month)] = (provider, p[1], p[2], year, month, g["claims"], len(g["patients"]),
                                         round(g["charge"], 2), round(g["paid"], 2),
                                         round(g["denied"] / g["claims"], 4))
    return rows


def patient_summary(data) -> dict[tuple, tuple]:
    patients = {p[0]: p for p in data.tables["PATIENTS"]}
    rows = {}
    for (patient, year, month), g in _monthly(data, 0).items():
        p = patients[patient]
        age = _age(p[3], year, month)
        rows[(patient, year, month)] = (patient, f"{p[1]} {p[2]}", age, _group(age), year, month, g["claims"],
                                        round(g["charge"], 2), round(g["paid"], 2))
    return rows
