from django.apps import AppConfig


class HistoryConfig(AppConfig):
    """The append-only history every app writes to (HistoryEntry, ``history_record``)."""

    name = "history"
    verbose_name = "History"
    default_auto_field = "django.db.models.BigAutoField"
