"""A language model's suggestion for a launch (``agents.llm``): from a free-text objective, a blueprint and its
parameters, checked against the blueprint's declared parameters before the launch form is pre-filled. The person
still reads the form and launches; no mission is created here.

No mission exists yet to hold the exchange, so each one is stored as a ``LaunchSuggestion`` of the person who asked
(``blueprints.services.launch_suggestion_record``): staff see them all in the admin, a launch from one gives the
mission the exchange and its tokens (``launch_suggestion_attach``), and each person has a daily budget of calls and
tokens (``GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY``, ``GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY``); once
spent, the page says so and offers the suggestions from the objective's words alone. Each call is reserved against
that budget before it is made and settled to its actual tokens when stored (``agents.llm.budget``), so two requests
of one person at the same instant cannot both spend its last call."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from agents.llm import Assistant, Exchange, budget
from blueprints.models import BlueprintVersion, LaunchSuggestion
from blueprints.selectors import launch_suggestion_usage
from blueprints.services import launch_suggestion_record, launch_suggestion_refused, param_value
from genesis.exceptions import DomainError

logger = logging.getLogger(__name__)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["blueprint"],
    "properties": {
        "blueprint": {"type": "string", "maxLength": 100},
        "name": {"type": "string", "maxLength": 200},
        "params": {"type": "object", "maxProperties": 50},
        "reasoning": {"type": "string", "maxLength": 1000},
    },
}
SYSTEM = ("You help a data engineer launch a mission from a catalogue of blueprints. From their objective, choose "
          "the one blueprint that fits (its slug, exactly as listed), a short mission name, and values for the "
          "blueprint's parameters that the objective states (leave out what it does not say). Answer with a JSON "
          'object: {"blueprint": "<slug>", "name": "...", "params": {...}, "reasoning": "..."}.')
MAX_TOKENS = 800  # the most the answer may take: with the prompt's estimate, what a call reserves of the budget


@dataclass
class SuggestedLaunch:
    """What came of asking: ``version`` is None when no usable suggestion came (``outcome`` and ``detail`` say why:
    a fault, no listed blueprint, or the person's budget spent)."""

    outcome: str
    detail: str = ""
    version: BlueprintVersion | None = None
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    dropped: list[str] = field(default_factory=list)  # parameters the model gave that did not check out
    record: LaunchSuggestion | None = None  # the stored exchange, or the stored refusal when the budget was spent


def budget_spent(user: User, held: budget.Held | None = None) -> str:
    """Why ``user`` may not ask for another suggestion now (their last 24 hours' calls or tokens, and ``held``: their
    calls in flight with the tokens reserved for them), or ""."""
    held = held or budget.Held()
    calls_allowed = settings.GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY
    tokens_allowed = settings.GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY
    if not calls_allowed and not tokens_allowed:
        return ""
    calls, tokens = launch_suggestion_usage(user=user, since=timezone.now() - timedelta(days=1))
    calls, tokens = calls + held.calls, tokens + held.tokens
    if calls_allowed and calls >= calls_allowed:
        return f"you have had your {calls_allowed} suggestions of the last 24 hours"
    if tokens_allowed and tokens >= tokens_allowed:
        return f"your suggestions of the last 24 hours have used their {tokens_allowed:,} tokens"
    return ""


def suggest_launch(objective: str, versions: list[BlueprintVersion], *, user: User
                   ) -> SuggestedLaunch | None:
    """The model's suggestion for ``user``, checked and stored; None without a model or an objective."""
    assistant = Assistant(mission_id=None)
    if not assistant.enabled or not objective.strip():
        return None
    catalogue = [{"slug": v.blueprint.slug, "name": v.name, "description": v.description[:400],
                  "parameters": [{k: p.get(k) for k in ("name", "type", "description", "required") if k in p}
                                 for p in v.parameters]} for v in versions]
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Objective: {objective[:4000]}\nBlueprints: {json.dumps(catalogue)[:16000]}"},
    ]
    reservation = budget.reserve(f"user:{user.pk}", tokens=budget.token_bound(messages, MAX_TOKENS),
                                 lifetime=budget.call_lifetime(assistant.config),
                                 refusal=lambda held: budget_spent(user, held))
    if reservation.pk is None:
        logger.info("launch suggestion refused for user %s: %s", user.pk, reservation.refused)
        record = launch_suggestion_refused(user=user, objective=objective, reason=reservation.refused,
                                           model=assistant.config.model)
        return SuggestedLaunch(outcome=LaunchSuggestion.BUDGET_SPENT, detail=reservation.refused, record=record)
    try:
        exchange = assistant.ask("suggest a blueprint", messages, SCHEMA, max_tokens=MAX_TOKENS)
        return _checked(exchange, objective, versions, user=user, reservation=reservation)
    except BaseException:
        budget.released(reservation)  # the call raised, or its record did: it counts for nothing
        raise


def _checked(exchange: Exchange, objective: str, versions: list[BlueprintVersion], *, user: User,
             reservation: budget.Reservation) -> SuggestedLaunch:
    """The suggestion checked against the listed blueprints and their parameters, stored in place of its
    reservation."""
    result = SuggestedLaunch(outcome=exchange.outcome, detail=exchange.detail)
    if exchange.ok and exchange.data is not None:
        result.version = next((v for v in versions if v.blueprint.slug == exchange.data["blueprint"]), None)
        if result.version is None:
            result.outcome, result.detail = "not_listed", f"{exchange.data['blueprint']!r} is not a listed blueprint"
        else:
            for name, value in (exchange.data.get("params") or {}).items():
                try:
                    result.params[name] = param_value(version=result.version, name=str(name), value=value)
                except DomainError:
                    result.dropped.append(str(name))
            result.name = str(exchange.data.get("name") or "")[:200]
            result.reasoning = str(exchange.data.get("reasoning") or "")
        exchange.validation = {"passed": result.version is not None, "detail": result.detail,
                               "params": result.params, "dropped": result.dropped}
    with budget.settled(reservation):
        result.record = launch_suggestion_record(user=user, objective=objective, exchange=exchange,
                                                 version=result.version, outcome=result.outcome)
    return result
