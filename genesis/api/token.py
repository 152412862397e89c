"""POST /api/v1/auth/token/: a username and password for the user's API token, rate-limited per address."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import ScopedRateThrottle

from genesis.api import auth  # noqa: F401  (connects the failed-login logger)
from genesis.api.errors import ErrorSerializer


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")


class AuthTokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"})


class ObtainTokenView(ObtainAuthToken):
    """Trade a username and password for the user's API token. Rate-limited per address; failures are logged."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
    authentication_classes = []

    @extend_schema(
        operation_id="auth_token_create",
        tags=["auth"],
        request=AuthTokenRequestSerializer,
        responses={200: TokenResponseSerializer, 400: ErrorSerializer, 429: ErrorSerializer},
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
