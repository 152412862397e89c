"""Limits on failed sign-ins, shared by the site's sign-in page, the admin's, and the API's token endpoint.

Every failed password check (Django's ``user_login_failed`` signal, whichever door it came through) is logged and
counted twice: for the username tried and for the client's address. Each count is a leaky bucket: a failure adds
one, and failures are forgiven at the rate ``GENESIS_LOGIN_FAILURE_RATES`` gives (``10/hour`` for a username by
default: ten failures come free, and one is forgiven every six minutes). Past the free ones, the next attempt must wait
after the last failure ``GENESIS_LOGIN_DELAY_SECONDS``, doubled for every further failure, at most
``GENESIS_LOGIN_DELAY_MAX_SECONDS``; an attempt during the wait answers 429 with ``Retry-After`` and no password is
checked. After the wait the password is checked again, so the right one signs in: nobody is locked out for good,
and a guesser can sustain no more than the rate. Once the wait is over, one attempt at a time may go on (the others
wait a second), so a burst sent the moment a wait ends counts as one guess (strictly with Redis, whose ``add`` is
atomic; the file cache of a single machine may let a rare second one through).

A successful sign-in clears its username's count (its owner is back); it leaves the address's count alone, so
signing in to one's own account does not wash away the failures of guesses from the same address.
``manage.py unlock_user USERNAME [--address IP]`` and the admin's "Unlock sign-in" action clear the counts.

The counts live in the ``limits`` cache, which every web worker process shares (see ``CACHES`` in settings): with a
per-process cache, each gunicorn worker would allow the full rate again. ``clock`` is the time they are kept in:
the tests replace it with a fake one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import caches
from django.dispatch import receiver
from django.utils.connection import ConnectionProxy
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger("genesis.auth")

limits_cache = ConnectionProxy(caches, "limits")

clock = time.time

USERNAME, ADDRESS = "username", "address"
# How long a claimed attempt (one past a wait, while its password is checked) holds the others back at most.
ATTEMPT_SECONDS = 30


def client_address(request) -> str:
    """The address counts are kept for: ``REMOTE_ADDR``, or the client an ``X-Forwarded-For`` header names when
    ``NUM_PROXIES`` says how many proxies in front of the server to trust (DRF's rule, so the API and the pages
    agree). With no trusted proxy the header is ignored, so a client cannot pick a fresh address per attempt."""
    return BaseThrottle().get_ident(request) or "unknown"


class FailureLimit(SimpleRateThrottle):
    """At most ``rate`` failures of one kind (``scope``) for one key (``ident``) in a sliding window: the API's
    failed token authentications per address (``API_AUTH_FAILURE_RATE``)."""

    cache = limits_cache

    def __init__(self, *, scope: str, ident: str, rate: str | None = None):
        self.scope, self.ident = scope, ident
        if rate is not None:
            self.rate = rate
        super().__init__()

    def get_cache_key(self, request=None, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident}

    def blocked(self) -> bool:
        """True when the failures in the window already reached the rate (counts nothing)."""
        self.key = self.get_cache_key()
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) >= self.num_requests

    def record_failure(self) -> None:
        if not self.blocked():
            self.throttle_success()  # DRF's name for "add this attempt to the window"


def username_key(username: str) -> str:
    # Hashed: any text may be typed as a username, and a cache key must be short and plain. Case does not matter.
    return hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _rate(scope: str) -> tuple[int, float]:
    """(free failures, seconds to forgive one) from ``GENESIS_LOGIN_FAILURE_RATES``."""
    count, period = settings.GENESIS_LOGIN_FAILURE_RATES[scope].split("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    return int(count), seconds / max(int(count), 1)


def delay_for(failures: int, free: int) -> float:
    """The wait after the last failure once ``failures`` are counted: none before the ``free``-th, the first delay
    after it, doubled for each failure beyond, capped."""
    over = failures - free
    if over < 0:
        return 0.0
    return float(min(settings.GENESIS_LOGIN_DELAY_MAX_SECONDS,
                     settings.GENESIS_LOGIN_DELAY_SECONDS * 2 ** min(over, 40)))


@dataclass(frozen=True)
class Standing:
    """What one counter holds now: failures still counted (forgiven ones gone), when the last one was, and how long
    the next attempt must still wait."""

    failures: int
    last_failure: float | None
    wait: float

    @property
    def waiting(self) -> bool:
        return self.wait > 0


class FailureCounter:
    """The failed sign-ins of one username (by its hash) or one address: a leaky bucket with a growing delay."""

    def __init__(self, scope: str, ident: str):
        self.scope, self.ident = scope, ident
        self.key = f"signin:{scope}:{ident}"
        self.free, self.forgive_seconds = _rate(scope)

    @classmethod
    def for_username(cls, username: str) -> FailureCounter:
        return cls(USERNAME, username_key(username))

    @classmethod
    def for_address(cls, address: str) -> FailureCounter:
        return cls(ADDRESS, address)

    def _lifetime(self) -> int:
        # Long enough for every failure to be forgiven and the longest wait to pass.
        return math.ceil(settings.GENESIS_LOGIN_DELAY_MAX_SECONDS + self.forgive_seconds * (self.free + 64)) + 60

    def _level(self, entry: dict | None, now: float) -> float:
        if not entry:
            return 0.0
        return max(0.0, entry["level"] - (now - entry["at"]) / self.forgive_seconds)

    def standing(self, entry: dict | None = None, *, now: float | None = None) -> Standing:
        now = clock() if now is None else now
        entry = self.read() if entry is None else entry
        if not entry:
            return Standing(0, None, 0.0)
        # The wait is set by the failures counted when the last one happened; forgiveness only shortens later ones.
        wait = max(0.0, entry["at"] + delay_for(math.ceil(entry["level"] - 1e-9), self.free) - now)
        return Standing(math.ceil(self._level(entry, now) - 1e-9), entry["at"], wait)

    def read(self) -> dict | None:
        return limits_cache.get(self.key)

    def record_failure(self) -> None:
        now = clock()
        level = self._level(self.read(), now) + 1
        limits_cache.set(self.key, {"level": level, "at": now}, self._lifetime())

    def _attempt_key(self, entry: dict) -> str:
        return f"{self.key}:attempt:{entry['at']!r}"

    def claim_attempt(self, entry: dict | None) -> str | None:
        """Past the free failures, one attempt at a time. Returns the key claimed ("" when no claim is needed), or
        None when another attempt holds it until it is decided (a failure starts a new wait, a success releases
        it)."""
        if not entry or delay_for(math.ceil(entry["level"] - 1e-9), self.free) == 0:
            return ""
        key = self._attempt_key(entry)
        return key if limits_cache.add(key, 1, ATTEMPT_SECONDS) else None

    def release_attempt(self) -> None:
        entry = self.read()
        if entry:
            limits_cache.delete(self._attempt_key(entry))

    def clear(self) -> Standing:
        """Forget every failure (an unlock, or a successful sign-in); returns what was counted."""
        before = self.standing()
        limits_cache.delete(self.key)
        return before


def standings_of(usernames: list[str]) -> dict[str, Standing]:
    """The standing of several usernames' counters in one cache read (the admin's list of people)."""
    counters = {name: FailureCounter.for_username(name) for name in usernames}
    entries = limits_cache.get_many([counter.key for counter in counters.values()])
    now = clock()
    return {name: counter.standing(entries.get(counter.key) or {}, now=now) for name, counter in counters.items()}


def describe(standing: Standing) -> str:
    """``waiting 4 min (8 failed sign-ins)``, ``2 failed sign-ins``, or empty."""
    if not standing.failures and not standing.waiting:
        return ""
    count = f"{standing.failures} failed sign-in{'s' if standing.failures != 1 else ''}"
    return f"waiting {_duration(standing.wait)} ({count})" if standing.waiting else count


def _duration(seconds: float) -> str:
    seconds = math.ceil(seconds)
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


class LoginLimit:
    """The failed-sign-in limits that apply to one attempt: its client address and its username."""

    retry_after = 0

    def __init__(self, request, username: str | None):
        self.address = client_address(request) if request is not None else None
        self.username = username if isinstance(username, str) else ""
        self.counters = []
        if self.address is not None:
            self.counters.append(FailureCounter.for_address(self.address))
        if self.username:
            self.counters.append(FailureCounter.for_username(self.username))

    def blocked(self) -> bool:
        """True (and logged) when the address or the username must still wait, or another attempt past a wait is
        being decided: refuse without checking the password. ``retry_after`` says how long to wait."""
        now = clock()
        entries = [(counter, counter.read()) for counter in self.counters]
        waits = [counter.standing(entry or {}, now=now).wait for counter, entry in entries]
        if any(waits):
            self.retry_after = max(1, math.ceil(max(waits)))
        elif self._claim(entries):
            return False
        else:
            self.retry_after = 1
        logger.warning("Login refused without checking the password: %r or %s must wait %s s",
                       self.username, self.address or "unknown", self.retry_after)
        return True

    def _claim(self, entries) -> bool:
        claimed = []
        for counter, entry in entries:
            key = counter.claim_attempt(entry)
            if key is None:
                limits_cache.delete_many(claimed)  # not this attempt's turn: hold no one else back
                return False
            if key:
                claimed.append(key)
        return True

    @property
    def message(self) -> str:
        return f"Too many failed sign-in attempts. Wait {_duration(self.retry_after)} before trying again."

    def record_failure(self) -> None:
        for counter in self.counters:
            counter.record_failure()

    def record_success(self) -> None:
        """The right password: the username's count is cleared; the address's stays, its next attempt free to go."""
        for counter in self.counters:
            if counter.scope == USERNAME:
                counter.clear()
            else:
                counter.release_attempt()


@receiver(user_login_failed, dispatch_uid="genesis.login_limits.login_failed")
def login_failed(sender, credentials, request=None, **kwargs):
    """Every failed password login (site, admin, token endpoint) leaves a log line and counts towards the limits."""
    username = credentials.get("username", "")
    address = client_address(request) if request is not None else "unknown"
    logger.warning("Login failed for %r from %s", username, address)
    LoginLimit(request, username if isinstance(username, str) else "").record_failure()


@receiver(user_logged_in, dispatch_uid="genesis.login_limits.logged_in")
def logged_in(sender, request, user, **kwargs):
    """A sign-in on the site or in the admin clears its username's failures."""
    LoginLimit(request, user.get_username()).record_success()
