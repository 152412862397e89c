from django.apps import AppConfig


class PipelineConfig(AppConfig):
    """The data-pipeline agents and their records: ingest, profiling, mapping, dbt builds, quality, spec files."""

    name = "pipeline"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing an agent's module registers its kind.
        from pipeline.ingest import agent  # noqa: F401
