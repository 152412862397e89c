"""One chat completion over the OpenAI-compatible API, with retries for what may pass (429 with its Retry-After,
5xx, timeouts, dropped connections) and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from agents.llm.config import LLMSettings
from genesis.documents import loads_json

MAX_RESPONSE_BYTES = 256 * 1024


class CallFailed(Exception):
    """The endpoint gave no usable answer; ``outcome`` names why (``timeout``, ``rate_limited``, ``server_error``,
    ``refused``, ``unreachable``, ``too_large``)."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


class _Retryable(Exception):
    def __init__(self, outcome: str, detail: str, wait: float) -> None:
        super().__init__(detail)
        self.outcome, self.wait = outcome, wait


@dataclass
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return default


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    return error.wait if isinstance(error, _Retryable) else 0.0


def complete(config: LLMSettings, messages: list[dict[str, str]], *, max_tokens: int = 800,
             transport: httpx.BaseTransport | None = None) -> Completion:
    """Ask for a JSON answer to ``messages``. Raises ``CallFailed`` when no attempt gave one."""
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    body = {"model": config.model, "messages": messages, "temperature": 0, "max_tokens": max_tokens,
            "response_format": {"type": "json_object"}}
    attempts = 0

    def once(client: httpx.Client) -> Completion:
        nonlocal attempts
        attempts += 1
        try:
            response = client.post("/chat/completions", json=body)
        except httpx.TimeoutException as error:
            raise _Retryable("timeout", f"no answer within {config.timeout:g} s", 1.0) from error
        except httpx.TransportError as error:
            raise _Retryable("unreachable", f"{type(error).__name__}", 1.0) from error
        if response.status_code == 429:
            wait = _retry_after(response, 2.0)
            if wait > config.max_retry_wait:
                raise CallFailed("rate_limited", f"rate limited; retry after {wait:g} s, longer than we wait")
            raise _Retryable("rate_limited", f"rate limited (429), retry after {wait:g} s", wait)
        if response.status_code >= 500:
            raise _Retryable("server_error", f"the endpoint answered {response.status_code}", 1.0)
        if response.status_code != 200:
            raise CallFailed("refused", f"the endpoint answered {response.status_code}")
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise CallFailed("too_large", f"the answer is {len(response.content)} bytes")
        return _completion(response, attempts)

    with httpx.Client(base_url=config.base_url, headers=headers, timeout=config.timeout,
                      transport=transport) as client:
        retrying = Retrying(stop=stop_after_attempt(max(config.attempts, 1)), wait=_wait, reraise=True,
                            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)))
        try:
            return retrying(once, client)
        except _Retryable as error:
            raise CallFailed(error.outcome, f"{error} (after {attempts} attempts)") from None


def _completion(response: httpx.Response, attempts: int) -> Completion:
    try:
        payload: Any = loads_json(response.content)
        text = payload["choices"][0]["message"]["content"]
        usage = payload.get("usage") or {}
        if not isinstance(text, str):
            raise TypeError("content is not text")
        return Completion(text=text, model=str(payload.get("model") or ""), attempts=attempts,
                          prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise CallFailed("malformed", f"not a chat completion: {type(error).__name__}") from None
