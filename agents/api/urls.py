"""Connection and agent routes."""

from agents.api.views import AgentViewSet, ConnectionViewSet

routes = [
    ("connections", ConnectionViewSet, "connection"),
    ("agents", AgentViewSet, "agent"),
]
