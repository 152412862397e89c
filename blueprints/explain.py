"""A plain-language explanation of a phase's failed exit checks, beside their evidence (``tasks.explain``)."""

from __future__ import annotations

import json

from django.db import transaction
from django.db.models import Max

from agents.llm import Assistant
from blueprints.models import CheckEvaluation
from history.services import history_record
from tasks.explain import EXPLANATION_SCHEMA, SYSTEM, explanation_text, store_exchange
from tasks.models import Phase


def phase_explain(phase_id: int) -> str:
    phase = Phase.objects.select_related("mission").filter(pk=phase_id).first()
    if phase is None:
        return "nothing to explain"
    latest = CheckEvaluation.objects.filter(phase=phase).aggregate(m=Max("round"))["m"]
    failed = list(CheckEvaluation.objects.filter(phase=phase, round=latest, passed=False).order_by("criterion_index"))
    if not failed:
        return "nothing to explain"
    lines = [f"Phase {phase.order}. {phase.name} of mission “{phase.mission.name}”: these exit checks failed."]
    for check in failed:
        evidence = json.dumps(check.evidence, default=str)[:2500]
        lines.append(f"- {check.description or check.check_type} ({check.check_type}, params "
                     f"{json.dumps(check.params, default=str)[:500]}): {check.message[:1500]}\n  Evidence: {evidence}")
    assistant = Assistant(mission_id=phase.mission_id)
    exchange = assistant.ask("explain failed checks", [{"role": "system", "content": SYSTEM},
                                                       {"role": "user", "content": "\n".join(lines)[:20000]}],
                             EXPLANATION_SCHEMA)
    store_exchange(exchange.record(), mission=phase.mission, name=f"llm-explain-phase-{phase.pk}-round-{latest}.json")
    if not exchange.ok or exchange.data is None:
        return exchange.outcome
    with transaction.atomic():
        history_record(mission=phase.mission, event="check.explained", message=explanation_text(exchange.data),
                       data={"phase": phase.pk, "round": latest, "evaluations": [c.pk for c in failed],
                             "model": exchange.model, "tokens": exchange.tokens, "suggested_by": "language model"})
    return "explained"
