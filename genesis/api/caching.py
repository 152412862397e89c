"""Repeated reads of the busiest list pages (missions, tasks) are answered from a cache of the rendered JSON.

Dashboards and scripts poll the same page again and again; building it costs a few queries and serializing 50
rows. The cache key names the caller, the host, the full URL, the response format and the newest history entry's
id. Every state change goes through a service that writes a history entry in the same transaction, so a change
makes a new key the moment it commits: a caller never reads a page older than its own last write. The key is
checked after authentication, permissions and throttling, which still run on every request.

What the history id cannot see — a transaction that took an older id commits after a newer one, or a row
changed outside the services (a person's username) — is bounded by a short lifetime,
``GENESIS_API_LIST_CACHE_SECONDS`` (5 s by default; 0 turns the cache off). The cache is the ``api`` alias:
local memory in each worker process is enough, since the key carries the version and entries are small.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import caches
from django.db.models import Max
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers

from history.models import HistoryEntry

CACHE_ALIAS = "api"


def history_version() -> int:
    """The newest history entry's id: one index lookup (the primary key's last entry)."""
    return HistoryEntry.objects.aggregate(newest=Max("id"))["newest"] or 0


def _lifetime() -> int:
    return int(settings.GENESIS_API_LIST_CACHE_SECONDS)


class CachedListMixin:
    """For a viewset's ``list``: serve the rendered page from the cache while nothing changed."""

    def list(self, request, *args, **kwargs):
        return self.cached_list(request, lambda: super(CachedListMixin, self).list(request, *args, **kwargs))

    def cached_list(self, request, build):
        """``build()`` makes the page (a DRF Response) when the cache has none for this key."""
        lifetime = _lifetime()
        renderer = getattr(request, "accepted_renderer", None)
        if lifetime <= 0 or renderer is None or renderer.format != "json":
            return build()
        raw = "|".join([str(request.user.pk), request.get_host(), request.get_full_path(),
                        request.accepted_media_type or "", str(history_version())])
        key = "list:" + hashlib.sha256(raw.encode()).hexdigest()
        cache = caches[CACHE_ALIAS]
        hit = cache.get(key)
        if hit is not None:
            content, content_type = hit
            response = HttpResponse(content, content_type=content_type)
            response["X-Genesis-Cache"] = "hit"
            patch_vary_headers(response, ["Accept", "Authorization", "Cookie"])
            return response
        response = build()

        def store(rendered):
            if rendered.status_code == 200:
                cache.set(key, (rendered.content, rendered["Content-Type"]), lifetime)

        response.add_post_render_callback(store)
        response["X-Genesis-Cache"] = "miss"
        patch_vary_headers(response, ["Authorization", "Cookie"])
        return response
