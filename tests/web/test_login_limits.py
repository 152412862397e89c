"""Failed sign-ins are limited per username and per client address, on the site, in the admin and at the API's token
endpoint (one count for all three): past a limit the attempt answers 429 with the reason and no password is checked;
every failure is logged."""

import logging
from unittest import mock

import pytest
from django.contrib.auth.backends import ModelBackend
from django.urls import reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"
SITE, ADMIN = "/login/", "/admin/login/"


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.GENESIS_LOGIN_FAILURE_RATES = {"username": "3/hour", "address": "5/hour"}


def _sign_in(client, url, username, password, address="192.0.2.1", **headers):
    form = {"username": username, "password": password, "next": reverse("admin:index") if url == ADMIN else ""}
    return client.post(url, form, REMOTE_ADDR=address, **headers)


def _is_signed_in(client) -> bool:
    return client.get(reverse("missions:list")).status_code == 200


@pytest.mark.parametrize("url", [SITE, ADMIN])
def test_failures_for_one_username_then_429_without_checking_the_password(client, lead, caplog, url):
    lead.is_staff = True
    lead.save(update_fields=["is_staff"])
    with caplog.at_level(logging.WARNING, logger="genesis.auth"):
        failures = [_sign_in(client, url, "lead", "wrong", address=f"192.0.2.{i}") for i in range(3)]
        assert [r.status_code for r in failures] == [200, 200, 200]
        with mock.patch.object(ModelBackend, "authenticate", autospec=True) as backend:
            refused = _sign_in(client, url, "lead", PASSWORD, address="198.51.100.7")  # the right password, too
    backend.assert_not_called()
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Too many failed sign-in attempts. Wait 60 minutes before trying again." in refused.content.decode()
    assert not _is_signed_in(client)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Login failed for 'lead' from 192.0.2." in m for m in messages) == 3
    assert any("Login refused without checking the password" in m and "'lead'" in m for m in messages)


def test_the_site_page_says_why_it_refused(client, lead):
    for _ in range(3):
        assert b"did not match" in _sign_in(client, SITE, "lead", "wrong").content
    page = _sign_in(client, SITE, "lead", PASSWORD).content.decode()
    assert '<p class="error" role="alert">Too many failed sign-in attempts.' in page
    assert "did not match" not in page
    assert client.get(SITE).status_code == 200  # the page itself still opens


@pytest.mark.parametrize("url", [SITE, ADMIN])
def test_failures_from_one_address_then_429_for_any_username(client, lead, analyst, url):
    analyst.is_staff = True
    analyst.save(update_fields=["is_staff"])
    codes = [_sign_in(client, url, f"guess{i}", "wrong").status_code for i in range(5)]
    assert codes == [200] * 5
    assert _sign_in(client, url, "analyst", PASSWORD).status_code == 429
    # Another address is not held back by this one's failures.
    other = _sign_in(client, url, "analyst", PASSWORD, address="203.0.113.9")
    assert other.status_code == 302 and _is_signed_in(client)


def test_a_forwarded_for_header_does_not_give_a_fresh_address(client, lead):
    # No proxy is trusted by default (NUM_PROXIES=0): the connecting address is counted, whatever the header says.
    for i in range(5):
        _sign_in(client, SITE, f"guess{i}", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    assert _sign_in(client, SITE, "lead", PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_a_success_before_the_limit_resets_nothing(client, lead):
    assert [_sign_in(client, SITE, "lead", "wrong").status_code for _ in range(2)] == [200, 200]
    assert _sign_in(client, SITE, "lead", PASSWORD).status_code == 302  # under the limit: signed in
    assert _is_signed_in(client)
    client.post(reverse("logout"))
    # The success was not a failure (this third one is still checked)...
    assert _sign_in(client, SITE, "lead", "wrong").status_code == 200
    # ...and did not wipe the two before it: three failures, so the next attempt is refused.
    assert _sign_in(client, SITE, "lead", PASSWORD).status_code == 429
    assert not _is_signed_in(client)


def test_admin_sign_in_still_works_under_the_limit(client, admin_user):
    assert _sign_in(client, ADMIN, "root", "wrong").status_code == 200
    response = _sign_in(client, ADMIN, "root", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    assert client.get(reverse("admin:index")).status_code == 200


def test_the_admin_page_names_the_limit(client, admin_user):
    for _ in range(3):
        _sign_in(client, ADMIN, "root", "wrong")
    page = _sign_in(client, ADMIN, "root", PASSWORD)
    assert page.status_code == 429
    assert "Too many failed sign-in attempts." in page.content.decode()
    assert b"Genesis" in page.content  # the admin's own page, not a bare error


def test_one_count_for_the_site_the_admin_and_the_token_endpoint(client, lead):
    _sign_in(client, SITE, "lead", "wrong")
    _sign_in(client, ADMIN, "lead", "wrong")
    api = APIClient(REMOTE_ADDR="192.0.2.1")
    assert api.post("/api/v1/auth/token/", {"username": "lead", "password": "wrong"}).status_code == 401
    with mock.patch.object(ModelBackend, "authenticate", autospec=True) as backend:
        refused = api.post("/api/v1/auth/token/", {"username": "lead", "password": PASSWORD})
    backend.assert_not_called()
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert refused.json()["detail"].startswith("Too many failed sign-in attempts.")
    assert _sign_in(client, SITE, "lead", PASSWORD).status_code == 429


def test_usernames_are_counted_whatever_their_case(client, lead):
    for address, name in enumerate(["lead", "LEAD", "Lead"], 1):
        _sign_in(client, SITE, name, "wrong", address=f"192.0.2.{address}")
    assert _sign_in(client, SITE, "lead", PASSWORD, address="198.51.100.1").status_code == 429
