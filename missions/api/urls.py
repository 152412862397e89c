"""Mission routes: served as ``missions`` and, for tools that call a mission a project, as ``projects``."""

from missions.api.views import MissionViewSet

routes = [
    ("missions", MissionViewSet, "mission"),
    ("projects", MissionViewSet, "project"),
]
