"""POST /api/v1/auth/token/: a username and password for the user's API token, rate-limited per address, and
refused without checking while the address or the username must wait after failed sign-ins (genesis.login_limits)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.throttling import ScopedRateThrottle

from genesis.api.errors import ErrorSerializer
from genesis.login_limits import LoginLimit, limits_cache


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Bearer <token>` (or `Token <token>`).")


class AuthTokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"})


class LimitedAuthTokenSerializer(AuthTokenSerializer):
    def validate(self, attrs):
        limit = LoginLimit(self.context.get("request"), attrs.get("username"))
        if limit.blocked():
            raise Throttled(wait=limit.retry_after, detail=limit.message)
        try:
            attrs = super().validate(attrs)
        except serializers.ValidationError as error:
            # Wrong credentials are not malformed input: 401, like any refused authentication.
            if error.get_codes() == ["authorization"]:
                raise AuthenticationFailed(str(error.detail[0])) from None
            raise
        limit.record_success()  # the site and the admin do this on user_logged_in; a token request logs no one in
        return attrs


class SharedScopedRateThrottle(ScopedRateThrottle):
    """Counted in the cache every web worker shares, so several workers do not each allow the full rate."""

    cache = limits_cache


class ObtainTokenView(ObtainAuthToken):
    """Trade a username and password for the user's API token. Rate-limited per address; failures are logged."""

    serializer_class = LimitedAuthTokenSerializer
    throttle_classes = [SharedScopedRateThrottle]
    throttle_scope = "auth"
    authentication_classes = []

    @extend_schema(
        operation_id="auth_token_create",
        tags=["auth"],
        summary="Get your API token",
        description="Trade your username and password for your API token, then send it as `Authorization: Bearer "
                    "<token>` (or `Token <token>`). The same token comes back until an administrator rotates it."
                    "\n\n"
                    "**Who:** anyone with an account; no token needed.\n\n"
                    "**Errors:** 400 when the username or password is missing; 401 when they do not match; 429 when "
                    "this address asks too often, or after repeated failed sign-ins for this username or from this "
                    "address, until the wait named in `Retry-After` has passed (the password is not checked "
                    "before).",
        request=AuthTokenRequestSerializer,
        responses={200: TokenResponseSerializer, 400: ErrorSerializer, 401: ErrorSerializer, 429: ErrorSerializer},
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def get_authenticate_header(self, request):
        # DRF answers an authentication failure without a challenge as 403; this endpoint's is a 401.
        return "Token"
