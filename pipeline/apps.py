from django.apps import AppConfig


class PipelineConfig(AppConfig):
    """The data-pipeline agents and their records: profiling, mapping, dbt builds, quality, spec files."""

    name = "pipeline"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the implementations registers their kinds.
        from pipeline import implementations  # noqa: F401
        from pipeline.ingest import agent  # noqa: F401
