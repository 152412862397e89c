"""Connection engines and purposes."""

from django.db import models


class Engine(models.TextChoices):
    SQLITE = "sqlite", "SQLite"
    POSTGRESQL = "postgresql", "PostgreSQL"
    DUCKDB = "duckdb", "DuckDB"


class Purpose(models.TextChoices):
    SOURCE = "source", "Source"
    TARGET = "target", "Target"
    VALIDATION = "validation", "Validation"
