"""Connection, agent, mapping spec and environment routes."""

from agents.api.views import AgentViewSet, ConnectionViewSet, EnvironmentViewSet, MappingSpecVersionViewSet

routes = [
    ("connections", ConnectionViewSet, "connection"),
    ("agents", AgentViewSet, "agent"),
    ("mapping-specs", MappingSpecVersionViewSet, "mapping-spec"),
    ("environments", EnvironmentViewSet, "environment"),
]
