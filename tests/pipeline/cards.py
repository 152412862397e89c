"""Mapping spec versions for the approval-card tests, made through the mapping spec service: PROVIDER_SUMMARY v1 as
the agent would propose it, and v2 after the feedback "keep NPI as text" (NPI becomes text, and the new join to
PROVIDER_IDS comes before PROVIDERS, so PROVIDERS moves from alias d1 to d2 while SPECIALTY still reads it)."""

from __future__ import annotations

import copy

from pipeline.services import mapping_spec_propose
from tasks.choices import TaskStatus
from tests.factories import AgentFactory, TaskFactory


def _column(name, target_type, sources, expression, transformation, confidence, reasoning, *, kind="direct",
            rule=None, decided_by="agent"):
    return {"name": name, "target_type": target_type, "description": f"{name}.", "constraints": [], "kind": kind,
            "sources": [{"table": t, "column": c} for t, c in sources], "expression": expression, "join_path": [],
            "transformation": transformation, "rule": rule, "confidence": confidence, "reasoning": reasoning,
            "candidates": [], "decided_by": decided_by, "citations": []}


def provider_v1() -> dict:
    return {
        "format": "genesis.mapping-spec/1", "target": "PROVIDER_SUMMARY", "dialect": "sqlite", "fact_table": "CLAIMS",
        "grain": {"entity": "provider", "entity_table": "PROVIDERS", "entity_key": "PROVIDER_ID", "period": None,
                  "columns": ["PROVIDER_ID"]},
        "joins": [{"alias": "d1", "table": "PROVIDERS", "type": "left",
                   "on": "CLAIMS.PROVIDER_ID = PROVIDERS.PROVIDER_ID"}],
        "aggregated_children": [],
        "columns": [
            _column("PROVIDER_ID", "INTEGER", [("CLAIMS", "PROVIDER_ID")], 'f."PROVIDER_ID"', "copied as is", 1.0,
                    "PROVIDER_ID: CLAIMS.PROVIDER_ID (score 1.00: same name)."),
            _column("SPECIALTY", "VARCHAR(50)", [("PROVIDERS", "SPECIALTY")], 'd1."SPECIALTY"', "copied as is", 0.95,
                    "SPECIALTY: PROVIDERS.SPECIALTY (score 0.95: same name)."),
            _column("NPI", "INTEGER", [("PROVIDERS", "NPI")], 'CAST(d1."NPI" AS INTEGER)', "cast to INTEGER", 0.62,
                    "NPI: PROVIDERS.NPI (score 0.62: same name, but it holds text).", kind="derived"),
            _column("DENIAL_RATE", "DECIMAL(5,4)", [("CLAIMS", "STATUS")],
                    """ROUND(SUM(CASE WHEN f."STATUS" = 'DENIED' THEN 1 ELSE 0 END) * 1.0 / COUNT(*), 4)""",
                    "share of CLAIMS rows where CLAIMS.STATUS = 'DENIED', rounded to 4 decimals", 0.92,
                    "DENIAL_RATE's fraction of 'claim status': CLAIMS.STATUS.", kind="aggregate",
                    rule={"fraction": {"column": "claim status", "equals": "DENIED"}, "round": 4}),
        ],
        "dry_run": {"rows": 465, "scope": "all rows", "columns": ["PROVIDER_ID"], "sample": [[1]],
                    "duplicate_grain_rows": 0, "elapsed_ms": 8.79},
        "sql": ('SELECT f."PROVIDER_ID" FROM "CLAIMS" AS f '
                'LEFT JOIN "PROVIDERS" AS d1 ON d1."PROVIDER_ID" = f."PROVIDER_ID"'),
    }


def provider_v2() -> dict:
    """v1 after "keep NPI as text": NPI is copied as text from the new PROVIDER_IDS table, joined first."""
    content = copy.deepcopy(provider_v1())
    content["joins"] = [{"alias": "d1", "table": "PROVIDER_IDS", "type": "left",
                         "on": "CLAIMS.PROVIDER_ID = PROVIDER_IDS.PROVIDER_ID"},
                        {"alias": "d2", "table": "PROVIDERS", "type": "left",
                         "on": "CLAIMS.PROVIDER_ID = PROVIDERS.PROVIDER_ID"}]
    columns = {c["name"]: c for c in content["columns"]}
    columns["SPECIALTY"]["expression"] = 'd2."SPECIALTY"'
    columns["NPI"].update(target_type="VARCHAR(10)", kind="direct", expression='d1."NPI"',
                          sources=[{"table": "PROVIDER_IDS", "column": "NPI"}], transformation="copied as text",
                          confidence=0.9, decided_by="feedback",
                          reasoning="The review's feedback: keep NPI as text.")
    content["dry_run"] = {"rows": 470, "scope": "latest month", "columns": ["PROVIDER_ID"], "sample": [[1]],
                          "duplicate_grain_rows": 2, "elapsed_ms": 12.4}
    content["sql"] = content["sql"] + " -- v2"
    return content


def mapping_task(mission, *, key="map_provider_summary", kind="field_mapping", **fields):
    """An agent's mapping task waiting for approval (made as a row: the card reads what is stored)."""
    agent = AgentFactory(name=f"{kind}_agent", kind=kind)
    fields.setdefault("status", TaskStatus.WAITING_APPROVAL)
    return TaskFactory(mission=mission, key=key, title=f"Define the {key} mapping", owner_agent=agent, **fields)


def propose(mission, task, content, target="PROVIDER_SUMMARY"):
    content = copy.deepcopy(content)
    content["target"] = target
    return mapping_spec_propose(mission=mission, target_table=target, content=content, sql=content["sql"],
                                dialect="sqlite", task=task, actor=task.owner_agent)
