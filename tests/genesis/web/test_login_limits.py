"""Failed sign-ins are throttled per username and per client address, on the site, in the admin and at the API's
token endpoint (one count for all three): past the free failures each attempt must wait a delay that doubles with
every further failure, capped; during the wait the attempt answers 429 with ``Retry-After`` and no password is
checked; after it the right password signs in. Failures are forgiven over time, a success clears its username's.
Time is a fake clock: nothing sleeps."""

import logging
from unittest import mock

import pytest
from django.contrib.auth.backends import ModelBackend
from django.urls import reverse
from rest_framework.test import APIClient

from genesis import login_limits

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"
SITE, ADMIN, TOKEN = "/login/", "/admin/login/", "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def clock(sign_in_clock):
    return sign_in_clock


@pytest.fixture(autouse=True)
def small_limits(small_sign_in_limits):
    pass


def _sign_in(client, url, username, password, address="192.0.2.1", **headers):
    if url == TOKEN:
        return APIClient(REMOTE_ADDR=address).post(TOKEN, {"username": username, "password": password}, **headers)
    form = {"username": username, "password": password, "next": reverse("admin:index") if url == ADMIN else ""}
    return client.post(url, form, REMOTE_ADDR=address, **headers)


def _is_signed_in(client) -> bool:
    return client.get(reverse("missions:list")).status_code == 200


def _failed(response, url) -> bool:
    return response.status_code == (401 if url == TOKEN else 200)


def _signed_in(response, url) -> bool:
    return response.status_code == (200 if url == TOKEN else 302)


@pytest.mark.parametrize("url", [SITE, ADMIN, TOKEN])
def test_past_the_free_failures_the_right_password_waits_then_works(client, lead, clock, caplog, url):
    lead.is_staff = True
    lead.save(update_fields=["is_staff"])
    with caplog.at_level(logging.WARNING, logger="genesis.auth"):
        failures = [_sign_in(client, url, "lead", "wrong", address=f"192.0.2.{i}") for i in range(3)]
        assert all(_failed(r, url) for r in failures)
        with mock.patch.object(ModelBackend, "authenticate", autospec=True) as backend:
            refused = _sign_in(client, url, "lead", PASSWORD, address="198.51.100.7")  # the right password
    backend.assert_not_called()
    assert refused.status_code == 429
    assert refused["Retry-After"] == "2"
    assert "Too many failed sign-in attempts. Wait 2 seconds before trying again." in refused.content.decode()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Login failed for 'lead' from 192.0.2." in m for m in messages) == 3
    assert any("Login refused without checking the password" in m and "'lead'" in m for m in messages)
    clock.advance(2)
    assert _signed_in(_sign_in(client, url, "lead", PASSWORD, address="198.51.100.7"), url)


def test_each_further_failure_doubles_the_wait_up_to_the_cap(lead, clock):
    addresses = (f"198.51.{n // 250}.{n % 250 + 1}" for n in range(1000))  # the username's wait alone

    def attempt(password):
        return _sign_in(None, TOKEN, "lead", password, address=next(addresses))

    for _ in range(3):
        assert attempt("wrong").status_code == 401
    waits = []
    for _ in range(7):
        refused = attempt("wrong")
        assert refused.status_code == 429 and refused.json()["code"] == "throttled"
        waits.append(int(refused["Retry-After"]))
        clock.advance(waits[-1] - 1)
        assert attempt("wrong").status_code == 429  # a second early: still waiting
        clock.advance(1)
        assert attempt("wrong").status_code == 401  # checked, and wrong again
    assert waits == [2, 4, 8, 16, 32, 60, 60]
    clock.advance(60)
    assert attempt(PASSWORD).status_code == 200  # never locked out for good


def test_failures_are_forgiven_over_time(lead, clock):
    assert [_sign_in(None, TOKEN, "lead", "wrong").status_code for _ in range(4)] == [401, 401, 401, 429]
    clock.advance(2)
    assert _sign_in(None, TOKEN, "lead", "wrong").status_code == 401
    counter = login_limits.FailureCounter.for_username("lead")
    assert (counter.standing().failures, counter.standing().wait) == (4, 4.0)
    clock.advance(20 * 60)  # 3/hour: one failure forgiven every 20 minutes
    assert counter.standing() == login_limits.Standing(3, clock.now - 20 * 60, 0.0)
    clock.advance(60 * 60)
    assert counter.standing().failures == 0
    # Nothing counted any more: the free failures come free again.
    assert [_sign_in(None, TOKEN, "lead", "wrong").status_code for _ in range(4)] == [401, 401, 401, 429]


def test_a_success_clears_the_usernames_failures_not_the_addresses(client, lead, analyst, clock):
    for _ in range(3):
        _sign_in(client, SITE, "lead", "wrong", address="192.0.2.1")
    clock.advance(2)
    assert _sign_in(client, SITE, "lead", PASSWORD, address="192.0.2.1").status_code == 302
    assert login_limits.FailureCounter.for_username("lead").standing().failures == 0
    assert login_limits.FailureCounter.for_address("192.0.2.1").standing().failures == 3
    client.post(reverse("logout"))
    # lead's own count starts again (three free); the address keeps its three of five.
    assert [_sign_in(client, SITE, "analyst", "wrong", address="192.0.2.1").status_code for _ in range(2)] == [200] * 2
    refused = _sign_in(client, SITE, "analyst", PASSWORD, address="192.0.2.1")
    assert refused.status_code == 429 and not _is_signed_in(client)


@pytest.mark.parametrize("url", [SITE, ADMIN])
def test_failures_from_one_address_throttle_every_username_from_it(client, lead, analyst, clock, url):
    analyst.is_staff = True
    analyst.save(update_fields=["is_staff"])
    codes = [_sign_in(client, url, f"guess{i}", "wrong").status_code for i in range(5)]
    assert codes == [200] * 5
    refused = _sign_in(client, url, "analyst", PASSWORD)
    assert refused.status_code == 429 and refused["Retry-After"] == "2"
    # Another address is not held back by this one's failures.
    other = _sign_in(client, url, "analyst", PASSWORD, address="203.0.113.9")
    assert other.status_code == 302 and _is_signed_in(client)


def test_a_forwarded_for_header_does_not_give_a_fresh_address(client, lead):
    # No proxy is trusted by default (NUM_PROXIES=0): the connecting address is counted, whatever the header says.
    for i in range(5):
        _sign_in(client, SITE, f"guess{i}", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    assert _sign_in(client, SITE, "lead", PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_the_site_page_says_why_and_how_long(client, lead):
    for _ in range(3):
        assert b"did not match" in _sign_in(client, SITE, "lead", "wrong").content
    page = _sign_in(client, SITE, "lead", PASSWORD).content.decode()
    assert ('<p class="error" role="alert">Too many failed sign-in attempts. Wait 2 seconds before trying again.'
            in page)
    assert "did not match" not in page
    assert client.get(SITE).status_code == 200  # the page itself still opens


def test_the_admin_page_names_the_wait(client, admin_user):
    for _ in range(3):
        _sign_in(client, ADMIN, "root", "wrong")
    page = _sign_in(client, ADMIN, "root", PASSWORD)
    assert page.status_code == 429
    assert "Too many failed sign-in attempts. Wait 2 seconds" in page.content.decode()
    assert b"Genesis" in page.content  # the admin's own page, not a bare error


def test_one_count_for_the_site_the_admin_and_the_token_endpoint(client, lead):
    _sign_in(client, SITE, "lead", "wrong")
    _sign_in(client, ADMIN, "lead", "wrong")
    assert _sign_in(client, TOKEN, "lead", "wrong").status_code == 401
    with mock.patch.object(ModelBackend, "authenticate", autospec=True) as backend:
        refused = _sign_in(client, TOKEN, "lead", PASSWORD)
    backend.assert_not_called()
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert refused.json()["detail"].startswith("Too many failed sign-in attempts.")
    assert _sign_in(client, SITE, "lead", PASSWORD).status_code == 429


def test_usernames_are_counted_whatever_their_case(client, lead):
    for address, name in enumerate(["lead", "LEAD", "Lead"], 1):
        _sign_in(client, SITE, name, "wrong", address=f"192.0.2.{address}")
    assert _sign_in(client, SITE, "lead", PASSWORD, address="198.51.100.1").status_code == 429


def test_a_burst_sent_when_the_wait_ends_is_one_attempt(rf, lead, clock):
    for _ in range(3):
        _sign_in(None, TOKEN, "lead", "wrong")
    clock.advance(2)
    first = login_limits.LoginLimit(rf.post(TOKEN, REMOTE_ADDR="192.0.2.1"), "lead")
    second = login_limits.LoginLimit(rf.post(TOKEN, REMOTE_ADDR="198.51.100.2"), "lead")
    assert first.blocked() is False  # this one's password is checked...
    assert second.blocked() is True and second.retry_after == 1  # ...the others wait until it is decided
    first.record_failure()
    assert second.blocked() is True and second.retry_after == 4  # it failed: a new, longer wait for everyone


def test_a_form_without_a_password_neither_counts_nor_holds_anyone_back(client, lead, clock):
    for _ in range(3):
        _sign_in(client, SITE, "lead", "wrong")
    clock.advance(2)
    assert client.post(SITE, {"username": "lead", "password": ""}, REMOTE_ADDR="192.0.2.1").status_code == 200
    assert _sign_in(client, SITE, "lead", PASSWORD).status_code == 302
