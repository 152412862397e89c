"""API authentication: tokens (issued in the admin, by ``manage.py issue_token`` or by POST /api/v1/auth/token/),
sent as ``Authorization: Token <key>`` or ``Authorization: Bearer <key>``, and browser sessions. Failed attempts
are logged, and an address that keeps failing is throttled.

Loaded by DRF's settings while ``rest_framework.views`` imports: nothing here may import views."""

from __future__ import annotations

import logging

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled

# Also connects the failed-password logger and counter (genesis.login_limits.login_failed).
from genesis.login_limits import FailureLimit, client_address

logger = logging.getLogger("genesis.auth")


def failed_token_limit(request) -> FailureLimit:
    """Failed token authentications of one client address (``API_AUTH_FAILURE_RATE``); past the rate, even the
    next try is refused."""
    return FailureLimit(scope="auth_failures", ident=client_address(request))


class LoggedTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``; a bad key is logged and counts towards the address's failure limit."""

    def authenticate(self, request):
        if not request.META.get("HTTP_AUTHORIZATION", "").strip():
            return None
        guard = failed_token_limit(request)
        if guard.blocked():
            logger.warning("API token refused without checking: too many failures from %s", client_address(request))
            raise Throttled(wait=guard.wait(), detail="Too many failed authentication attempts from this address.")
        try:
            return super().authenticate(request)
        except AuthenticationFailed as error:
            guard.record_failure()
            logger.warning("API token authentication failed from %s: %s", client_address(request), error.detail)
            raise


class BearerTokenAuthentication(LoggedTokenAuthentication):
    """The same token as ``Authorization: Bearer <key>``, the spelling most HTTP clients and tools use."""

    keyword = "Bearer"
