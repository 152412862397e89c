"""API authentication: tokens (issued in the admin, by ``manage.py issue_token`` or by POST /api/v1/auth/token/)
and browser sessions. Failed attempts are logged, and an address that keeps failing is throttled.

Loaded by DRF's settings while ``rest_framework.views`` imports: nothing here may import views."""

from __future__ import annotations

import logging

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger("genesis.auth")


class FailedAuthThrottle(SimpleRateThrottle):
    """Counts failed authentications per client address; past the rate, even the next try is refused."""

    scope = "auth_failures"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def blocked(self, request) -> bool:
        """True when this address already used up its failures in the window (does not count a new one)."""
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) >= self.num_requests

    def record_failure(self, request) -> None:
        if not self.blocked(request):
            self.throttle_success()


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


class LoggedTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``; a bad key is logged and counts towards the address's failure limit."""

    def authenticate(self, request):
        if not request.META.get("HTTP_AUTHORIZATION", "").strip():
            return None
        guard = FailedAuthThrottle()
        if guard.blocked(request):
            logger.warning("API token refused without checking: too many failures from %s", client_address(request))
            raise Throttled(wait=guard.wait(), detail="Too many failed authentication attempts from this address.")
        try:
            return super().authenticate(request)
        except AuthenticationFailed as error:
            guard.record_failure(request)
            logger.warning("API token authentication failed from %s: %s", client_address(request), error.detail)
            raise


@receiver(user_login_failed, dispatch_uid="genesis.api.auth.log_login_failure")
def log_login_failure(sender, credentials, request=None, **kwargs):
    """Every failed password login (admin, pages, token endpoint) leaves a log line with the address."""
    address = client_address(request) if request is not None else "unknown"
    logger.warning("Login failed for %r from %s", credentials.get("username", ""), address)
