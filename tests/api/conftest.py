"""API test helpers: a token-authenticated client per named actor and an ``outsider`` with no role anywhere (the
caches, and so the throttles, are emptied around every test by tests/conftest.py)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def as_user():
    """``as_user(user)``: an APIClient sending that user's token (``as_user(None)``: anonymous)."""

    def make(user):
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def actors(lead, analyst, viewer, outsider, admin_user):
    return {"lead": lead, "analyst": analyst, "viewer": viewer, "outsider": outsider, "staff": admin_user,
            "anonymous": None}
