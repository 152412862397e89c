"""HTMX helpers shared by the pages (one URL serves a page and its fragments; writes answer where to go next)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseLocation


def is_fragment(request: HttpRequest) -> bool:
    """An HTMX request for a part of the page (a boosted navigation gets the whole page)."""
    return bool(getattr(request, "htmx", False) and not request.htmx.boosted)


def go_to(request: HttpRequest, url: str) -> HttpResponse:
    """After a write: HTMX follows ``HX-Location`` (no full reload); a plain form post is redirected."""
    if getattr(request, "htmx", False):
        return HttpResponseLocation(url)
    return redirect(url)
