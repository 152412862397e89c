"""A language model's suggestion for a launch (``agents.llm``): from a free-text objective, a blueprint and its
parameters, checked against the blueprint's declared parameters before the launch form is pre-filled. The person
still reads the form and launches; nothing is created here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agents.llm import Assistant
from blueprints.models import BlueprintVersion
from blueprints.services import param_value
from genesis.exceptions import DomainError

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


@dataclass
class LaunchSuggestion:
    version: BlueprintVersion
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    dropped: list[str] = field(default_factory=list)  # parameters the model gave that did not check out


def suggest_launch(objective: str, versions: list[BlueprintVersion]) -> LaunchSuggestion | None:
    """The model's suggestion, checked; None without a model, on any fault, or when it names no listed blueprint."""
    assistant = Assistant(mission_id=None)
    if not assistant.enabled or not objective.strip():
        return None
    catalogue = [{"slug": v.blueprint.slug, "name": v.name, "description": v.description[:400],
                  "parameters": [{k: p.get(k) for k in ("name", "type", "description", "required") if k in p}
                                 for p in v.parameters]} for v in versions]
    exchange = assistant.ask("suggest a blueprint", [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Objective: {objective[:4000]}\nBlueprints: {json.dumps(catalogue)[:16000]}"},
    ], SCHEMA)
    if not exchange.ok or exchange.data is None:
        return None
    version = next((v for v in versions if v.blueprint.slug == exchange.data["blueprint"]), None)
    if version is None:
        return None
    params: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in (exchange.data.get("params") or {}).items():
        try:
            params[name] = param_value(version=version, name=str(name), value=value)
        except DomainError:
            dropped.append(str(name))
    return LaunchSuggestion(version=version, name=str(exchange.data.get("name") or "")[:200], params=params,
                            reasoning=str(exchange.data.get("reasoning") or ""), dropped=dropped)
