"""A mission's calls to the language model: within its budget, each answer checked against a schema, each
exchange recorded, every fault a fallback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema

from agents.llm import budget, client
from agents.llm.config import LLMSettings, settings
from genesis.documents import loads_json
from history.models import HistoryEntry
from history.services import history_record

logger = logging.getLogger(__name__)

EVENT = "llm.call"
MAX_PROMPT_CHARS = 24_000  # what one call may send (the schema and the question beside it)


@dataclass
class Usage:
    calls: int = 0
    tokens: int = 0


def mission_usage(mission_id: int) -> Usage:
    """Calls and tokens the mission has spent (one query over its ``llm.call`` history entries)."""
    usage = Usage()
    for data in HistoryEntry.objects.filter(mission_id=mission_id, event=EVENT).values_list("data", flat=True):
        usage.calls += 1
        usage.tokens += int((data or {}).get("tokens") or 0)
    return usage


@dataclass
class Exchange:
    """One question to the model and what came of it. ``data`` is the validated answer, or None; ``outcome`` is
    ``ok`` or why not (``disabled``, ``budget``, ``timeout``, ``rate_limited``, ``server_error``, ``refused``,
    ``unreachable``, ``malformed``, ``schema``, ``too_large``)."""

    purpose: str
    outcome: str
    data: dict[str, Any] | None = None
    detail: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    attempts: int = 0
    messages: list[dict[str, str]] = field(default_factory=list)
    response_text: str = ""
    validation: dict[str, Any] = field(default_factory=dict)  # what the caller's own checks made of ``data``

    @property
    def ok(self) -> bool:
        return self.outcome == "ok" and self.data is not None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def record(self) -> dict[str, Any]:
        """What is stored of the exchange (the artifact): the prompt and response, never the key."""
        return {"purpose": self.purpose, "outcome": self.outcome, "detail": self.detail, "model": self.model,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "latency_ms": self.latency_ms, "attempts": self.attempts, "messages": self.messages,
                "response": self.response_text, "answer": self.data, "validation": self.validation}


class Assistant:
    """Calls on behalf of one mission (and, when an agent calls, its task and run)."""

    def __init__(self, *, mission_id: int | None, task_id: int | None = None, run_id: int | None = None,
                 config: LLMSettings | None = None, transport: httpx.BaseTransport | None = None,
                 write_artifact: Callable[..., Any] | None = None) -> None:
        self.mission_id, self.task_id, self.run_id = mission_id, task_id, run_id
        self.config = config or settings()
        self.transport = transport
        self.write_artifact = write_artifact

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def ask(self, purpose: str, messages: list[dict[str, str]], schema: dict[str, Any], *,
            max_tokens: int = 800) -> Exchange:
        exchange = Exchange(purpose=purpose, outcome="disabled", messages=messages)
        if not self.enabled:
            return exchange  # nothing to record: no model is configured
        size = sum(len(m.get("content", "")) for m in messages)
        if size > MAX_PROMPT_CHARS:
            exchange.outcome, exchange.detail = "too_large", f"the prompt is {size} characters"
            return self._recorded(exchange)
        if self.mission_id is None:
            return self._called(exchange, messages, schema, max_tokens)  # the caller holds the person's budget
        mission_id = self.mission_id
        reservation = budget.reserve(f"mission:{mission_id}", tokens=budget.token_bound(messages, max_tokens),
                                     lifetime=budget.call_lifetime(self.config),
                                     refusal=lambda held: self._spent(mission_id, held))
        if reservation.pk is None:
            exchange.outcome, exchange.detail = "budget", reservation.refused
            return self._recorded(exchange, count=False)
        try:
            self._called(exchange, messages, schema, max_tokens, record=False)
            with budget.settled(reservation):
                return self._recorded(exchange)
        except BaseException:
            budget.released(reservation)  # the call raised, or its record did: it counts for nothing
            raise

    def _spent(self, mission_id: int, held: budget.Held) -> str:
        """Why the mission may not call now (its recorded calls and those in flight), or ""."""
        usage = mission_usage(mission_id)
        if self.config.max_calls and usage.calls + held.calls >= self.config.max_calls:
            return f"the mission's {self.config.max_calls} calls are spent"
        if self.config.max_tokens and usage.tokens + held.tokens >= self.config.max_tokens:
            return f"the mission's {self.config.max_tokens} tokens are spent"
        return ""

    def _called(self, exchange: Exchange, messages: list[dict[str, str]], schema: dict[str, Any],
                max_tokens: int, *, record: bool = True) -> Exchange:
        """Make the call (no transaction open: it takes seconds) and check its answer."""
        started = time.monotonic()
        try:
            completion = client.complete(self.config, messages, max_tokens=max_tokens, transport=self.transport)
        except client.CallFailed as error:
            exchange.outcome, exchange.detail = error.outcome, str(error)
        else:
            exchange.model = completion.model or self.config.model
            exchange.prompt_tokens, exchange.completion_tokens = completion.prompt_tokens, completion.completion_tokens
            exchange.attempts, exchange.response_text = completion.attempts, completion.text[:20_000]
            exchange.outcome, exchange.detail, exchange.data = _validated(completion.text, schema)
        exchange.latency_ms = round((time.monotonic() - started) * 1000)
        return self._recorded(exchange) if record else exchange

    def _recorded(self, exchange: Exchange, *, count: bool = True) -> Exchange:
        """The history entry (what the budget and the cockpit's total read) and, when the caller writes artifacts,
        the whole exchange. ``count``: a refusal before any call spends no call."""
        logger.info("language model %s for mission %s: %s %s (%s tokens, %s ms)", exchange.purpose, self.mission_id,
                    exchange.outcome, exchange.detail, exchange.tokens, exchange.latency_ms)
        if self.mission_id is None:
            return exchange  # before a mission exists the caller stores it (blueprints.LaunchSuggestion)
        history_record(
            mission_id=self.mission_id, event=EVENT if count else "llm.skipped",
            message=f"Language model asked to {exchange.purpose}: {exchange.outcome}"
                    + (f" ({exchange.detail})" if exchange.detail else "") + ".",
            data={"purpose": exchange.purpose, "outcome": exchange.outcome, "model": exchange.model,
                  "tokens": exchange.tokens, "latency_ms": exchange.latency_ms, "task": self.task_id,
                  "run": self.run_id},
        )
        return exchange

    def attach(self, exchange: Exchange, name: str) -> None:
        """Store the exchange (prompt, response, validation) as an artifact of the calling run."""
        if self.write_artifact is not None and exchange.outcome != "disabled":
            self.write_artifact(name=name, kind="report", content_type="application/json",
                                content=json.dumps(exchange.record(), indent=2, default=str))


def _validated(text: str, schema: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    try:
        data = loads_json(text)
    except ValueError as error:
        return "malformed", f"the answer is not JSON: {str(error)[:200]}", None
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as error:
        path = "/".join(str(p) for p in error.absolute_path) or "(top)"
        return "schema", f"the answer breaks the schema at {path}: {error.message[:200]}", None
    if not isinstance(data, dict):
        return "schema", "the answer is not an object", None
    return "ok", "", data
