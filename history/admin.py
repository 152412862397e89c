"""The history in the admin: read-only, filtered by mission, task, event and who acted."""

from django.contrib import admin

from genesis.admin_utils import ReadOnlyAdminMixin
from history.models import HistoryEntry


@admin.register(HistoryEntry)
class HistoryEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "mission", "task", "event", "status_change", "actor_display", "message"]
    list_filter = ["actor_kind", "mission"]
    list_select_related = ["mission", "task", "actor_user", "actor_agent"]
    search_fields = ["event", "message", "task__key", "mission__name"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in HistoryEntry._meta.fields]

    @admin.display(description="Status")
    def status_change(self, obj):
        return f"{obj.from_status} → {obj.to_status}" if obj.from_status or obj.to_status else ""

    @admin.display(description="Actor")
    def actor_display(self, obj):
        return obj.actor_label
