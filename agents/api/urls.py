"""Connection and agent routes."""

from agents.api.views import AgentViewSet, ConnectionViewSet, MappingSpecVersionViewSet

routes = [
    ("connections", ConnectionViewSet, "connection"),
    ("agents", AgentViewSet, "agent"),
    ("mapping-specs", MappingSpecVersionViewSet, "mapping-spec"),
]
