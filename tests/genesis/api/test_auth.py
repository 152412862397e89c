"""Token and session authentication, the token endpoint's rate limit, failure logging, and issue_token."""

import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_anonymous_requests_get_401_with_a_token_challenge():
    response = APIClient().get("/api/v1/missions/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "code": "not_authenticated", "detail": "Authentication credentials were not provided.", "errors": {},
    }


def test_a_token_authenticates_and_lists_the_callers_missions(as_user, lead, mission):
    response = as_user(lead).get("/api/v1/missions/")
    assert response.status_code == 200
    assert [m["name"] for m in response.json()["results"]] == ["Healthcare Data Pipeline"]


def test_a_bearer_token_authenticates_like_a_token(lead, mission):
    token = Token.objects.create(user=lead)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    response = client.get("/api/v1/missions/")
    assert response.status_code == 200
    assert [(m["id"], m["my_role"]) for m in response.json()["results"]] == [(mission.pk, "mission_owner")]
    client.credentials(HTTP_AUTHORIZATION=f"bearer {token.key}")  # the scheme is case-insensitive (RFC 9110)
    assert client.get("/api/v1/missions/").status_code == 200


def test_a_bad_bearer_token_is_refused_and_counts_towards_the_address_limit(caplog):
    from django.core.cache import caches

    client = APIClient(REMOTE_ADDR="192.0.2.8")
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-real-token")
    with caplog.at_level(logging.WARNING, logger="genesis.auth"):
        response = client.get("/api/v1/missions/")
    assert response.status_code == 401
    assert response.json() == {"code": "authentication_failed", "detail": "Invalid token.", "errors": {}}
    assert len(caches["limits"].get("throttle_auth_failures_192.0.2.8")) == 1
    assert any("token authentication failed" in r.getMessage() for r in caplog.records)


def test_a_bad_token_is_refused_and_logged(caplog):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    with caplog.at_level(logging.WARNING, logger="genesis.auth"):
        response = client.get("/api/v1/missions/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert any("token authentication failed" in r.getMessage() for r in caplog.records)


def test_repeated_bad_tokens_are_throttled_even_before_the_key_is_checked(settings, lead):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    codes = [client.get("/api/v1/missions/").status_code for _ in range(25)]
    assert codes[:20] == [401] * 20
    assert codes[20:] == [429] * 5
    # Even a valid token from the same address waits until the window passes.
    token = Token.objects.create(user=lead)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get("/api/v1/missions/")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"


def test_the_token_endpoint_trades_a_password_for_the_users_token(lead):
    response = APIClient().post("/api/v1/auth/token/", {"username": "lead", "password": "pw-for-tests-1"})
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=lead).key}


def test_a_wrong_password_is_a_401_in_the_error_format_logged_and_rate_limited(lead, caplog):
    client = APIClient()
    with caplog.at_level(logging.WARNING, logger="genesis.auth"):
        first = client.post("/api/v1/auth/token/", {"username": "lead", "password": "wrong"})
    assert first.status_code == 401
    assert first.json() == {"code": "authentication_failed", "detail": "Unable to log in with provided credentials.",
                            "errors": {}}
    assert first["WWW-Authenticate"] == "Token"
    assert any("Login failed for 'lead'" in r.getMessage() for r in caplog.records)
    codes = [client.post("/api/v1/auth/token/", {"username": "lead", "password": "wrong"}).status_code
             for _ in range(12)]
    assert codes[:9] == [401] * 9
    assert set(codes[9:]) == {429}
    assert not Token.objects.filter(user=lead).exists()


def test_a_token_request_without_a_password_is_still_a_400_naming_the_field(lead):
    response = APIClient().post("/api/v1/auth/token/", {"username": "lead"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"password": ["This field is required."]}


def test_session_authentication_works_for_the_browser_and_enforces_csrf(lead, mission):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(lead)
    assert client.get(f"/api/v1/missions/{mission.pk}/").json()["my_role"] == "mission_owner"
    response = client.post(f"/api/v1/missions/{mission.pk}/launch/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    mission.refresh_from_db()
    assert mission.status == "draft"


def test_issue_token_prints_the_token_and_rotates_it(lead):
    out = StringIO()
    call_command("issue_token", "lead", stdout=out, stderr=StringIO())
    first = out.getvalue().strip()
    assert first == Token.objects.get(user=lead).key
    out = StringIO()
    call_command("issue_token", "lead", stdout=out, stderr=StringIO())
    assert out.getvalue().strip() == first
    out = StringIO()
    call_command("issue_token", "lead", "--rotate", stdout=out, stderr=StringIO())
    rotated = out.getvalue().strip()
    assert rotated != first and rotated == Token.objects.get(user=lead).key


def test_issue_token_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("issue_token", "nobody", stdout=StringIO(), stderr=StringIO())


def test_failed_tokens_are_counted_in_the_shared_limits_cache_per_connecting_address(settings):
    from django.core.cache import caches

    client = APIClient(REMOTE_ADDR="192.0.2.5")
    # A client cannot pick a fresh address per attempt with X-Forwarded-For: no proxy is trusted by default.
    for i in range(20):
        client.credentials(HTTP_AUTHORIZATION="Token wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
        assert client.get("/api/v1/missions/").status_code == 401
    assert client.get("/api/v1/missions/").status_code == 429
    assert len(caches["limits"].get("throttle_auth_failures_192.0.2.5")) == 20
    assert caches["default"].get("throttle_auth_failures_192.0.2.5") is None
