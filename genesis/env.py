"""Small typed readers of the environment, used by settings (healthchecks' hc/settings.py style)."""

from __future__ import annotations

import math
import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number; with ``minimum``/``maximum``, one in that range (a limit that would defeat itself is refused
    at start-up, not met as a failure later)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f" from {minimum:,} to {maximum:,}" if minimum is not None and maximum is not None
                  else f" from {minimum:,} up" if minimum is not None
                  else f" up to {maximum:,}" if maximum is not None else "")
        raise ImproperlyConfigured(f"{name} must be a whole number{bounds}, not {raw!r}")
    return value


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds: a number, zero or more."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ImproperlyConfigured(f"{name} must be a number of seconds, 0 or more, not {raw!r}")
    return value


_RATE = re.compile(r"[0-9]+/[smhd][a-z]*")


def env_rate(name: str, default: str) -> str:
    """A rate as DRF's throttles read it: ``<count>/<period>``, the period a second, minute, hour or day."""
    value = os.environ.get(name, "").strip() or default
    if not _RATE.fullmatch(value):
        raise ImproperlyConfigured(f"{name} must be a rate such as 10/min or 50/hour, not {value!r}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, *, required: bool, dev_default: str) -> str:
    """A secret that production must set; development falls back to an obviously unsafe value."""
    value = os.environ.get(name, "")
    if value:
        return value
    if required:
        raise ImproperlyConfigured(f"{name} must be set when DEBUG is off")
    return dev_default
