"""Small helpers shared by the apps' admin modules."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.utils.html import format_html, format_html_join

from genesis.documents import LimitedJSONDecoder
from genesis.exceptions import DomainError

# ``formfield_overrides`` of every admin that edits a JSON field: its text is read with the nesting limit
# (genesis/documents.py), so JSON nested too deep is "Enter a valid JSON", not a RecursionError (a 500).
JSON_FORMFIELDS = {models.JSONField: {"decoder": LimitedJSONDecoder}}


def service_action(service: Callable, *, description: str, verb: str, keyword: str = "mission",
                   noun: str = "mission(s)", name: str = "") -> Callable:
    """An admin action that calls ``service(<keyword>=obj, actor=user)`` per selected row and reports each
    refusal by name instead of failing the whole batch."""

    def action(modeladmin, request, queryset: QuerySet) -> None:
        done, refused = 0, []
        for obj in queryset:
            try:
                service(**{keyword: obj}, actor=request.user)
                done += 1
            except DomainError as error:
                refused.append(error.message)
        if done:
            modeladmin.message_user(request, f"{verb} {done} {noun}.", messages.SUCCESS)
        for message in refused:
            modeladmin.message_user(request, message, messages.ERROR)

    action.__name__ = name or f"action_{verb.lower()}"
    return admin.action(description=description)(action)


def history_table(entries) -> str:
    """A read-only timeline of history entries, newest first."""
    if not entries:
        return "No history yet."
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                entry.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                entry.event,
                entry.task.key if entry.task_id else "",
                f"{entry.from_status} → {entry.to_status}" if entry.from_status or entry.to_status else "",
                entry.actor_label,
                entry.message,
            )
            for entry in entries
        ),
    )
    return format_html(
        '<table class="history-timeline"><thead><tr><th>When</th><th>Event</th><th>Task</th>'
        "<th>Status</th><th>Actor</th><th>Message</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )


class ReadOnlyAdminMixin:
    """For records that change only through services (runs, history, questions...): the admin shows them and
    offers no add, edit or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
