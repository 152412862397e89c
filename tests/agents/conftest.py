"""The agent framework's tests read the same generated bronze data as the pipeline's."""

from tests.pipeline.conftest import demo_small, pg_schema  # noqa: F401 - fixtures
