"""Rendered panels of a busy page kept in a cache, keyed by the version of what they show.

A panel of the cockpit (the task board, the graph, the approval cards, the artifacts...) costs tens of milliseconds of
queries and template work, while people look at the same mission again and again and its live poller asks for every
panel after each change. ``FragmentCache.render`` builds a panel once per key and serves the HTML afterwards. The key
is the caller's, and must name everything the panel shows that can differ: for the cockpit, the mission, its history
version (which every change of state moves in the transaction that makes the change) and what the viewer may do.

The one part of a panel that belongs to a browser session rather than to the data is the CSRF token of its forms: a
panel is rendered with a placeholder in the token's place and each response gets the requester's own token put in
(``get_token`` also makes the middleware send the cookie, as ``{% csrf_token %}`` would).

A panel that also shows what moves without a history entry (a running attempt's log tail or its run time so far)
passes a shorter lifetime for its entry. The cache is the ``pages`` alias: local memory in each worker process, which
is enough since the key carries the version; an old version's entries are never read again and age out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

CACHE_ALIAS = "pages"
# Stands where a form's CSRF token goes in a cached panel: letters only, so escaping leaves it as it is.
CSRF_PLACEHOLDER = "GenesisCsrfTokenPlaceholderQx7"

# What a panel's builder returns: its template, its context, and a lifetime shorter than the cache's (or None).
Built = tuple[str, dict[str, Any], int | None]


class FragmentCache:
    """Panels of one request: ``render(key, build)`` returns the panel's HTML, from the cache when it holds ``key``
    (``hits`` and ``misses`` count what happened, for the response's ``X-Genesis-Cache`` header)."""

    def __init__(self, request: HttpRequest, *, lifetime: int, prefix: str) -> None:
        self.request = request
        self.lifetime = lifetime
        self.prefix = prefix
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.lifetime > 0

    def render(self, key: str, build: Callable[[], Built]) -> SafeString:
        if not self.enabled:
            template, context, _ = build()
            return mark_safe(render_to_string(template, context, request=self.request))  # noqa: S308 (a template)
        cache = caches[CACHE_ALIAS]
        full_key = f"{self.prefix}:{key}"
        html = cache.get(full_key)
        if html is None:
            self.misses += 1
            template, context, shorter = build()
            html = render_to_string(template, {**context, "csrf_token": CSRF_PLACEHOLDER}, request=self.request)
            cache.set(full_key, html, min(self.lifetime, shorter) if shorter else self.lifetime)
        else:
            self.hits += 1
        if CSRF_PLACEHOLDER in html:
            html = html.replace(CSRF_PLACEHOLDER, get_token(self.request))
        return mark_safe(html)  # noqa: S308 (rendered by a template, which escaped what it showed)

    @property
    def outcome(self) -> str:
        """``hit`` (every panel from the cache), ``miss`` (none), ``partial`` or ``off``."""
        if not self.enabled:
            return "off"
        if not self.misses:
            return "hit"
        return "miss" if not self.hits else "partial"
