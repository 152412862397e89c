"""Limits on failed sign-ins, shared by the site's sign-in page, the admin's, and the API's token endpoint.

Every failed password check (Django's ``user_login_failed`` signal, whichever door it came through) is logged and
counted twice: for the client's address and for the username tried. Once either count reaches its rate
(``GENESIS_LOGIN_FAILURE_RATES``), the next attempt is refused before any password is checked, until the oldest
failure in the window has aged out. A successful sign-in resets nothing: one good account does not wash away the
failures of an address, nor does a guessed password clear its username's.

The counting is the API's (DRF's sliding-window throttle, counting failures only). The counts live in the
``limits`` cache, which every web worker process shares (see ``CACHES`` in settings): with a per-process cache,
each gunicorn worker would allow the full rate again.
"""

from __future__ import annotations

import hashlib
import logging
import math

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import caches
from django.dispatch import receiver
from django.utils.connection import ConnectionProxy
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger("genesis.auth")

limits_cache = ConnectionProxy(caches, "limits")


def client_address(request) -> str:
    """The address counts are kept for: ``REMOTE_ADDR``, or the client an ``X-Forwarded-For`` header names when
    ``NUM_PROXIES`` says how many proxies in front of the server to trust (DRF's rule, so the API and the pages
    agree). With no trusted proxy the header is ignored, so a client cannot pick a fresh address per attempt."""
    return BaseThrottle().get_ident(request) or "unknown"


class FailureLimit(SimpleRateThrottle):
    """At most ``rate`` failures of one kind (``scope``) for one key (``ident``) in a sliding window."""

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


def _username_key(username: str) -> str:
    # Hashed: any text may be typed as a username, and a cache key must be short and plain.
    return hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:40]


class LoginLimit:
    """The failed-password limits that apply to one sign-in attempt: its client address and its username."""

    def __init__(self, request, username: str | None):
        rates = settings.GENESIS_LOGIN_FAILURE_RATES
        self.address = client_address(request) if request is not None else None
        self.username = username or ""
        self.limits = []
        if self.address is not None:
            self.limits.append(FailureLimit(scope="login_address", ident=self.address, rate=rates["address"]))
        if self.username:
            self.limits.append(FailureLimit(scope="login_username", ident=_username_key(self.username),
                                            rate=rates["username"]))

    def blocked(self) -> bool:
        """True (and logged) when the address or the username used up its failures: refuse without checking."""
        reached = [limit for limit in self.limits if limit.blocked()]
        if not reached:
            return False
        self.retry_after = max(math.ceil(limit.wait() or limit.duration) for limit in reached)
        logger.warning("Login refused without checking the password: too many failures for %r or from %s",
                       self.username, self.address or "unknown")
        return True

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after / 60))
        return (f"Too many failed sign-in attempts. Wait {minutes} minute{'s' if minutes > 1 else ''} "
                "before trying again.")

    def record_failure(self) -> None:
        for limit in self.limits:
            limit.record_failure()


@receiver(user_login_failed, dispatch_uid="genesis.login_limits.login_failed")
def login_failed(sender, credentials, request=None, **kwargs):
    """Every failed password login (site, admin, token endpoint) leaves a log line and counts towards the limits."""
    username = credentials.get("username", "")
    address = client_address(request) if request is not None else "unknown"
    logger.warning("Login failed for %r from %s", username, address)
    LoginLimit(request, username if isinstance(username, str) else "").record_failure()
