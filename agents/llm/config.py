"""The language-model settings, read from Django's settings (which read the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings as django_settings


@dataclass(frozen=True)
class LLMSettings:
    base_url: str
    model: str
    api_key: str = field(repr=False)  # a secret: never in a repr, a log line, a record or a response
    timeout: float
    max_calls: int  # per mission; 0 = no limit
    max_tokens: int  # per mission; 0 = no limit
    attempts: int  # per call, for rate limits, server errors and timeouts
    max_retry_wait: float  # the longest Retry-After honoured; longer means "not now"

    @property
    def enabled(self) -> bool:
        return bool(self.base_url and self.model)


def settings() -> LLMSettings:
    return LLMSettings(
        base_url=django_settings.GENESIS_LLM_BASE_URL.rstrip("/"),
        model=django_settings.GENESIS_LLM_MODEL,
        api_key=django_settings.GENESIS_LLM_API_KEY,
        timeout=django_settings.GENESIS_LLM_TIMEOUT_SECONDS,
        max_calls=django_settings.GENESIS_LLM_MAX_CALLS_PER_MISSION,
        max_tokens=django_settings.GENESIS_LLM_MAX_TOKENS_PER_MISSION,
        attempts=django_settings.GENESIS_LLM_ATTEMPTS,
        max_retry_wait=django_settings.GENESIS_LLM_MAX_RETRY_WAIT_SECONDS,
    )
