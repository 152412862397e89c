from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """The agent framework: agents, connections and their access lists, connectors, the registry."""

    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The framework's own trivial agent (tests and hand-made blueprints use it).
        from agents import noop  # noqa: F401
