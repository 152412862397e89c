"""The mission's history: an append-only record of every change, written by every app's services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from genesis.records import ImmutableQuerySet
from history.choices import ActorKind


class HistoryEntry(models.Model):
    """One append-only record of something that happened to a mission, task or run, and who did it."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.PROTECT, related_name="history")
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.PROTECT, related_name="history")
    run = models.ForeignKey("tasks.Run", null=True, blank=True, on_delete=models.PROTECT, related_name="history")
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices, default=ActorKind.SYSTEM)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    event = models.CharField(max_length=64)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        db_table = "tasks_historyentry"  # kept from when the model lived in the tasks app (its guards name it)
        verbose_name_plural = "history entries"
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["mission", "created_at"], name="history_mission_time_idx"),
            models.Index(fields=["task", "created_at"], name="history_task_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("History is append-only: an entry cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("History is append-only: an entry cannot be deleted.")

    @property
    def actor(self):
        return self.actor_user or self.actor_agent

    @property
    def actor_label(self) -> str:
        if self.actor_kind == ActorKind.USER and self.actor_user_id:
            return self.actor_user.get_username()
        if self.actor_kind == ActorKind.AGENT and self.actor_agent_id:
            return self.actor_agent.name
        return "system"
