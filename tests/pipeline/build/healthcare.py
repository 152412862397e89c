"""The healthcare targets written by hand from their meanings in the demo spec file (the dbt tests' stand-in for
approved mapping specs), an independent computation of what they must hold (plain Python over the bronze rows), and an
AgentContext builder for running agents without the engine."""

from __future__ import annotations

import functools
import sqlite3
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from agents.base import AgentContext
from tasks import selectors as task_selectors
from tasks import services as task_services

_CLAIM_TOTALS = """
claim_totals AS (
  SELECT c.CLAIM_ID, c.PATIENT_ID, c.PROVIDER_ID, c.STATUS, c.SERVICE_DATE,
         COALESCE(SUM(d.CHARGE_AMOUNT), 0) AS CHARGE, COALESCE(SUM(d.PAID_AMOUNT), 0) AS PAID
  FROM CLAIMS AS c LEFT JOIN CLAIM_DETAILS AS d ON d.CLAIM_ID = c.CLAIM_ID
  GROUP BY c.CLAIM_ID, c.PATIENT_ID, c.PROVIDER_ID, c.STATUS, c.SERVICE_DATE
)"""

CLAIM_SUMMARY_SQL = """
SELECT c.CLAIM_ID AS CLAIM_ID, c.SERVICE_DATE AS CLAIM_DATE, c.PATIENT_ID AS PATIENT_ID,
       c.PROVIDER_ID AS PROVIDER_ID, c.CLAIM_TYPE AS CLAIM_TYPE, c.STATUS AS CLAIM_STATUS,
       c.DIAGNOSIS_CODE AS PRIMARY_DIAGNOSIS,
       ROUND(COALESCE(SUM(d.CHARGE_AMOUNT), 0), 2) AS TOTAL_CHARGE,
       ROUND(COALESCE(SUM(d.PAID_AMOUNT), 0), 2) AS INSURANCE_PAID,
       ROUND(COALESCE(SUM(d.CHARGE_AMOUNT), 0) - COALESCE(SUM(d.PAID_AMOUNT), 0), 2) AS PATIENT_RESPONSIBILITY
FROM CLAIMS AS c LEFT JOIN CLAIM_DETAILS AS d ON d.CLAIM_ID = c.CLAIM_ID
GROUP BY c.CLAIM_ID, c.SERVICE_DATE, c.PATIENT_ID, c.PROVIDER_ID, c.CLAIM_TYPE, c.STATUS, c.DIAGNOSIS_CODE
"""

PROVIDER_SUMMARY_SQL = f"""
WITH {_CLAIM_TOTALS}
SELECT p.PROVIDER_ID AS PROVIDER_ID, p.PROVIDER_NAME AS PROVIDER_NAME, p.SPECIALTY AS SPECIALTY,
       CAST(substr(t.SERVICE_DATE, 1, 4) AS INTEGER) AS REPORT_YEAR,
       CAST(substr(t.SERVICE_DATE, 6, 2) AS INTEGER) AS REPORT_MONTH,
       COUNT(*) AS TOTAL_CLAIMS, COUNT(DISTINCT t.PATIENT_ID) AS UNIQUE_PATIENTS,
       ROUND(SUM(t.CHARGE), 2) AS TOTAL_CHARGES, ROUND(SUM(t.PAID), 2) AS TOTAL_PAID,
       ROUND(1.0 * SUM(CASE WHEN t.STATUS = 'DENIED' THEN 1 ELSE 0 END) / COUNT(*), 4) AS DENIAL_RATE
FROM claim_totals AS t JOIN PROVIDERS AS p ON p.PROVIDER_ID = t.PROVIDER_ID
GROUP BY p.PROVIDER_ID, p.PROVIDER_NAME, p.SPECIALTY, CAST(substr(t.SERVICE_DATE, 1, 4) AS INTEGER),
         CAST(substr(t.SERVICE_DATE, 6, 2) AS INTEGER)
"""

PATIENT_SUMMARY_SQL = f"""
WITH {_CLAIM_TOTALS},
per_claim AS (
  SELECT pa.PATIENT_ID, pa.FIRST_NAME, pa.LAST_NAME, t.CHARGE, t.PAID,
         CAST(substr(t.SERVICE_DATE, 1, 4) AS INTEGER) AS REPORT_YEAR,
         CAST(substr(t.SERVICE_DATE, 6, 2) AS INTEGER) AS REPORT_MONTH,
         CAST(substr(t.SERVICE_DATE, 1, 4) AS INTEGER) - CAST(substr(pa.BIRTH_DATE, 1, 4) AS INTEGER)
           - CASE WHEN substr(pa.BIRTH_DATE, 6, 5) > (substr(t.SERVICE_DATE, 6, 2) || '-01') THEN 1 ELSE 0 END
           AS AGE
  FROM claim_totals AS t JOIN PATIENTS AS pa ON pa.PATIENT_ID = t.PATIENT_ID
)
SELECT PATIENT_ID, FIRST_NAME || ' ' || LAST_NAME AS PATIENT_FULL_NAME, AGE AS PATIENT_AGE,
       CASE WHEN AGE < 18 THEN '0-17' WHEN AGE < 35 THEN '18-34' WHEN AGE < 50 THEN '35-49'
            WHEN AGE < 65 THEN '50-64' ELSE '65+' END AS AGE_GROUP,
       REPORT_YEAR, REPORT_MONTH, COUNT(*) AS TOTAL_CLAIMS,
       ROUND(SUM(CHARGE), 2) AS TOTAL_CHARGES, ROUND(SUM(PAID), 2) AS TOTAL_PAID
FROM per_claim
GROUP BY PATIENT_ID, FIRST_NAME, LAST_NAME, AGE, REPORT_YEAR, REPORT_MONTH
"""


def _col(name, type_, description, *, constraints=(), source="", references=""):
    column = {"name": name, "type": type_, "description": description, "constraints": list(constraints)}
    if source:
        column["source_table"], column["source_column"] = source.split(".")
    if references:
        column["references"] = references
    return column


TARGETS = [
    {
        "target_table": "CLAIM_SUMMARY", "description": "One row per claim with its amounts.",
        "grain": ["CLAIM_ID"], "sql": CLAIM_SUMMARY_SQL, "dialect": "sqlite",
        "columns": [
            _col("CLAIM_ID", "INTEGER", "The claim.", constraints=["not_null", "unique"], source="CLAIMS.CLAIM_ID"),
            _col("CLAIM_DATE", "DATE", "The service date.", constraints=["not_null"], source="CLAIMS.SERVICE_DATE"),
            _col("PATIENT_ID", "INTEGER", "The patient.", constraints=["not_null"], source="CLAIMS.PATIENT_ID",
                 references="PATIENTS.PATIENT_ID"),
            _col("PROVIDER_ID", "INTEGER", "The provider.", constraints=["not_null"], source="CLAIMS.PROVIDER_ID",
                 references="PROVIDERS.PROVIDER_ID"),
            _col("CLAIM_TYPE", "VARCHAR(20)", "Claim type.", source="CLAIMS.CLAIM_TYPE"),
            _col("CLAIM_STATUS", "VARCHAR(10)", "PAID, DENIED or PENDING.", source="CLAIMS.STATUS"),
            _col("PRIMARY_DIAGNOSIS", "VARCHAR(10)", "Diagnosis code.", source="CLAIMS.DIAGNOSIS_CODE"),
            _col("TOTAL_CHARGE", "DECIMAL(12,2)", "Sum of line charges, 0 without lines."),
            _col("INSURANCE_PAID", "DECIMAL(12,2)", "Sum of line paid amounts, 0 without lines."),
            _col("PATIENT_RESPONSIBILITY", "DECIMAL(12,2)", "TOTAL_CHARGE - INSURANCE_PAID."),
        ],
    },
    {
        "target_table": "PROVIDER_SUMMARY", "description": "One row per provider and claim month.",
        "grain": ["PROVIDER_ID", "REPORT_YEAR", "REPORT_MONTH"], "sql": PROVIDER_SUMMARY_SQL, "dialect": "sqlite",
        "columns": [
            _col("PROVIDER_ID", "INTEGER", "The provider.", constraints=["not_null"], source="PROVIDERS.PROVIDER_ID"),
            _col("PROVIDER_NAME", "VARCHAR(100)", "Name.", source="PROVIDERS.PROVIDER_NAME"),
            _col("SPECIALTY", "VARCHAR(50)", "Specialty.", source="PROVIDERS.SPECIALTY"),
            {**_col("REPORT_YEAR", "INTEGER", "Year of the claims.", constraints=["not_null"]),
             "rule": {"year_of": "period"}},
            {**_col("REPORT_MONTH", "INTEGER", "Month of the claims.", constraints=["not_null"]),
             "rule": {"month_of": "period"}},
            _col("TOTAL_CLAIMS", "INTEGER", "Claims."),
            _col("UNIQUE_PATIENTS", "INTEGER", "Distinct patients."),
            _col("TOTAL_CHARGES", "DECIMAL(14,2)", "Charges."),
            _col("TOTAL_PAID", "DECIMAL(14,2)", "Paid."),
            _col("DENIAL_RATE", "DECIMAL(5,4)", "Denied claims / claims."),
        ],
    },
    {
        "target_table": "PATIENT_SUMMARY", "description": "One row per patient and claim month.",
        "grain": ["PATIENT_ID", "REPORT_YEAR", "REPORT_MONTH"], "sql": PATIENT_SUMMARY_SQL, "dialect": "sqlite",
        "columns": [
            _col("PATIENT_ID", "INTEGER", "The patient.", constraints=["not_null"], source="PATIENTS.PATIENT_ID"),
            _col("PATIENT_FULL_NAME", "VARCHAR(100)", "First, space, last."),
            _col("PATIENT_AGE", "INTEGER", "Whole years on the first day of the report month."),
            _col("AGE_GROUP", "VARCHAR(10)", "0-17, 18-34, 35-49, 50-64, 65+."),
            {**_col("REPORT_YEAR", "INTEGER", "Year.", constraints=["not_null"]), "rule": {"year_of": "period"}},
            {**_col("REPORT_MONTH", "INTEGER", "Month.", constraints=["not_null"]), "rule": {"month_of": "period"}},
            _col("TOTAL_CLAIMS", "INTEGER", "Claims."),
            _col("TOTAL_CHARGES", "DECIMAL(14,2)", "Charges."),
            _col("TOTAL_PAID", "DECIMAL(14,2)", "Paid."),
        ],
    },
]


# --- the independent computation ---------------------------------------------------------------------


def cents(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def read_bronze(path: Path) -> dict[str, list[dict]]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return {t: [dict(r) for r in db.execute(f"SELECT * FROM {t}")]
                for t in ("PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS")}
    finally:
        db.close()


def expected_targets(bronze: dict[str, list[dict]]) -> dict[str, dict[tuple, dict]]:
    """What each target must hold, keyed by its grain, computed in Python from the bronze rows."""
    charge, paid = defaultdict(Decimal), defaultdict(Decimal)
    for line in bronze["CLAIM_DETAILS"]:
        charge[line["CLAIM_ID"]] += Decimal(str(line["CHARGE_AMOUNT"]))
        paid[line["CLAIM_ID"]] += Decimal(str(line["PAID_AMOUNT"]))
    providers = {p["PROVIDER_ID"]: p for p in bronze["PROVIDERS"]}
    patients = {p["PATIENT_ID"]: p for p in bronze["PATIENTS"]}
    claims = {}
    prov = defaultdict(lambda: {"claims": 0, "patients": set(), "charge": Decimal(0), "paid": Decimal(0),
                                "denied": 0})
    pat = defaultdict(lambda: {"claims": 0, "charge": Decimal(0), "paid": Decimal(0)})
    for c in bronze["CLAIMS"]:
        cid = c["CLAIM_ID"]
        claims[(cid,)] = {
            "CLAIM_DATE": c["SERVICE_DATE"], "PATIENT_ID": c["PATIENT_ID"], "PROVIDER_ID": c["PROVIDER_ID"],
            "CLAIM_TYPE": c["CLAIM_TYPE"], "CLAIM_STATUS": c["STATUS"], "PRIMARY_DIAGNOSIS": c["DIAGNOSIS_CODE"],
            "TOTAL_CHARGE": cents(charge[cid]), "INSURANCE_PAID": cents(paid[cid]),
            "PATIENT_RESPONSIBILITY": cents(charge[cid] - paid[cid]),
        }
        year, month = int(c["SERVICE_DATE"][:4]), int(c["SERVICE_DATE"][5:7])
        if c["PROVIDER_ID"] in providers:
            p = prov[(c["PROVIDER_ID"], year, month)]
            p["claims"] += 1
            p["patients"].add(c["PATIENT_ID"])
            p["charge"] += charge[cid]
            p["paid"] += paid[cid]
            p["denied"] += c["STATUS"] == "DENIED"
        if c["PATIENT_ID"] in patients:
            q = pat[(c["PATIENT_ID"], year, month)]
            q["claims"] += 1
            q["charge"] += charge[cid]
            q["paid"] += paid[cid]
    provider_rows = {
        key: {"PROVIDER_NAME": providers[key[0]]["PROVIDER_NAME"], "SPECIALTY": providers[key[0]]["SPECIALTY"],
              "TOTAL_CLAIMS": v["claims"], "UNIQUE_PATIENTS": len(v["patients"]), "TOTAL_CHARGES": cents(v["charge"]),
              "TOTAL_PAID": cents(v["paid"]), "DENIAL_RATE": v["denied"] / v["claims"]}
        for key, v in prov.items()
    }
    patient_rows = {}
    for (pid, year, month), v in pat.items():
        birth = patients[pid]["BIRTH_DATE"]
        by, bm, bd = int(birth[:4]), int(birth[5:7]), int(birth[8:10])
        age = year - by - (1 if (bm, bd) > (month, 1) else 0)
        group = "0-17" if age < 18 else "18-34" if age < 35 else "35-49" if age < 50 else "50-64" if age < 65 else "65+"
        patient_rows[(pid, year, month)] = {
            "PATIENT_FULL_NAME": f"{patients[pid]['FIRST_NAME']} {patients[pid]['LAST_NAME']}", "PATIENT_AGE": age,
            "AGE_GROUP": group, "TOTAL_CLAIMS": v["claims"], "TOTAL_CHARGES": cents(v["charge"]),
            "TOTAL_PAID": cents(v["paid"]),
        }
    return {"CLAIM_SUMMARY": claims, "PROVIDER_SUMMARY": provider_rows, "PATIENT_SUMMARY": patient_rows}


GRAINS = {t["target_table"]: t["grain"] for t in TARGETS}


def assert_target_matches(name: str, rows: list[dict], expected: dict[tuple, dict]) -> None:
    """Every built row equals the independent computation (amounts to the cent, rates to 4 decimals)."""
    grain = GRAINS[name]
    built = {tuple(int(r[g]) for g in grain): r for r in rows}
    assert len(built) == len(rows), f"{name}: duplicate grain keys"
    assert set(built) == set(expected), (
        f"{name}: {len(set(expected) - set(built))} missing, {len(set(built) - set(expected))} unexpected keys")
    for key, want in expected.items():
        got = built[key]
        for column, value in want.items():
            actual = got[column]
            if isinstance(value, Decimal):
                assert cents(actual) == value, f"{name} {key} {column}: {actual} != {value}"
            elif isinstance(value, float):
                assert abs(float(actual) - value) <= 0.00005 + 1e-9, f"{name} {key} {column}: {actual} != {value}"
            elif isinstance(value, int) and not isinstance(value, bool):
                assert int(actual) == value, f"{name} {key} {column}: {actual} != {value}"
            else:
                assert (str(actual) if actual is not None else None) == value, f"{name} {key} {column}: {actual!r}"


def read_sqlite_table(path: Path, table: str) -> list[dict]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(f'SELECT * FROM "{table}"')]
    finally:
        db.close()


# --- running agents without the engine -----------------------------------------------------------------


class Log:
    """Collects an agent's log lines the way the engine's RunLog does."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message, *args):
        self.lines.append(message % args if args else str(message))

    debug = warning = error = exception = info


def make_context(*, mission, task, config=None, connections=None, workspace=None) -> AgentContext:
    run = task_services.run_create(task=task)
    log = Log()

    def write_artifact(*, name, kind, content, content_type=""):
        return task_services.artifact_create(mission=mission, task=task, run=run, kind=kind, name=name,
                                             file=content, content_type=content_type, actor=task.owner_agent)

    context = AgentContext(
        mission=mission, task=task, run=run, agent=task.owner_agent, config=config or {},
        connections=connections or {}, write_artifact=write_artifact, log=log,
        heartbeat=lambda: None, cancelled=lambda: False, workspace=workspace,
        # What the engine gives every agent (tasks.runtime._context): the mission's records, read for it.
        read_artifact=functools.partial(task_selectors.artifact_content_latest, mission=mission),
        mission_runs=functools.partial(task_selectors.mission_runs, mission=mission),
    )
    context.lines = log.lines
    return context
