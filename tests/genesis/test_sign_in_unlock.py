"""Unlocking sign-in: ``manage.py unlock_user USERNAME [--address IP]`` clears the failed sign-ins counted, and the
admin's people list shows who must wait or has failed, filters them, and unlocks them with an action."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from genesis.login_limits import FailureCounter

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"


@pytest.fixture(autouse=True)
def limits(sign_in_clock, small_sign_in_limits):
    return sign_in_clock


def _token(username, password, address="192.0.2.1"):
    return APIClient(REMOTE_ADDR=address).post("/api/v1/auth/token/", {"username": username, "password": password})


def _throttle(username, address="192.0.2.1", failures=3):
    for _ in range(failures):
        assert _token(username, "wrong", address).status_code == 401
    assert _token(username, PASSWORD, address).status_code == 429


def _unlock(*args):
    out, err = StringIO(), StringIO()
    call_command("unlock_user", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_unlock_user_lets_the_right_password_in_at_once(lead):
    _throttle("lead", address="198.51.100.1")
    out, err = _unlock("lead")
    assert out == "Sign-in of 'lead' unlocked (waiting 2 seconds (3 failed sign-ins)).\n" and err == ""
    assert FailureCounter.for_username("lead").standing().failures == 0
    assert _token("lead", PASSWORD, address="198.51.100.2").status_code == 200


def test_unlock_user_clears_an_address(lead, analyst):
    for i in range(5):
        _token(f"guess{i}", "wrong", address="203.0.113.7")
    assert _token("analyst", PASSWORD, address="203.0.113.7").status_code == 429
    out, _ = _unlock("--address", "203.0.113.7")
    assert out == "Sign-in from 203.0.113.7 unlocked (waiting 2 seconds (5 failed sign-ins)).\n"
    assert _token("analyst", PASSWORD, address="203.0.113.7").status_code == 200


def test_unlock_user_says_what_it_did_when_nothing_was_counted_or_no_such_user(db):
    out, err = _unlock("nobody", "--address", "192.0.2.9")
    assert out.splitlines() == ["Sign-in of 'nobody' unlocked (nothing was counted).",
                                "Sign-in from 192.0.2.9 unlocked (nothing was counted)."]
    assert "No user named 'nobody'" in err


def test_unlock_user_needs_a_username_or_a_valid_address(db):
    with pytest.raises(CommandError, match="Name a username, an --address, or both."):
        _unlock()
    with pytest.raises(CommandError, match="'not-an-ip' is not an IP address."):
        _unlock("lead", "--address", "not-an-ip")


def test_the_admin_lists_filters_and_unlocks_throttled_people(client, admin_user, lead, analyst, viewer):
    _throttle("lead", address="198.51.100.1")
    _token("analyst", "wrong", address="198.51.100.2")
    client.force_login(admin_user)
    page = client.get("/admin/auth/user/").content.decode()
    assert "waiting 2 seconds (3 failed sign-ins)" in page and "1 failed sign-in" in page
    waiting = client.get("/admin/auth/user/", {"sign_in": "waiting"}).context["cl"].result_list
    assert [u.username for u in waiting] == ["lead"]
    failing = client.get("/admin/auth/user/", {"sign_in": "failing"}).context["cl"].result_list
    assert sorted(u.username for u in failing) == ["analyst", "lead"]

    response = client.post("/admin/auth/user/", {"action": "unlock_sign_in", "_selected_action": [lead.pk]},
                           follow=True)
    assert "Sign-in unlocked: lead (waiting 2 seconds (3 failed sign-ins))." in response.content.decode()
    assert FailureCounter.for_username("lead").standing().failures == 0
    assert FailureCounter.for_username("analyst").standing().failures == 1  # not selected: untouched
    assert _token("lead", PASSWORD, address="198.51.100.3").status_code == 200
