"""Playwright for Python driving Debian's Chromium (never a downloaded browser) against pytest-django's
live server. Browser tests are skipped, with the reason, where /usr/bin/chromium is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = os.environ.get("GENESIS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def chromium_missing() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM}: run `make browser` (apt-get install chromium) to run browser tests"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (make install)"
    return ""


requires_chromium = pytest.mark.skipif(bool(chromium_missing()), reason=chromium_missing() or "chromium present")


def screenshot(page, name: str) -> None:
    """Keep a picture of a main page in docs/screenshots/ when GENESIS_SCREENSHOTS=1 (make screenshots)."""
    if os.environ.get("GENESIS_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def browser_context(monkeypatch):
    """One Chromium per test, stopped at the end (Playwright closes the process it started)."""
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            browser.close()
            # The test's own ORM calls ran inside Playwright's greenlet context, where Django's connection handler
            # (context-local) holds a connection of its own: close it here, or it outlives the test and keeps the
            # PostgreSQL test database from being dropped at the end of the session.
            connections.close_all()


def sign_in(context, live_server, username: str, password: str = "pw-for-tests-1"):  # noqa: S107
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/missions/")
    return page
