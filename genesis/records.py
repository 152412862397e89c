"""Rows that are a record, not a working copy (history entries, saved artifacts)."""

from __future__ import annotations

from django.db import models


class ImmutableQuerySet(models.QuerySet):
    """Refuses bulk updates and deletes: the rows are a record, not a working copy."""

    def update(self, **kwargs):
        raise PermissionError(f"{self.model.__name__} rows are append-only; they cannot be updated.")

    def delete(self):
        raise PermissionError(f"{self.model.__name__} rows are append-only; they cannot be deleted.")

    _raw_delete = delete
