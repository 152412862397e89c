"""Mapping spec and environment routes."""

from pipeline.api.views import EnvironmentViewSet, MappingSpecVersionViewSet

routes = [
    ("mapping-specs", MappingSpecVersionViewSet, "mapping-spec"),
    ("environments", EnvironmentViewSet, "environment"),
]
