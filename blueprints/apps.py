from django.apps import AppConfig


class BlueprintsConfig(AppConfig):
    name = "blueprints"
    default_auto_field = "django.db.models.BigAutoField"
