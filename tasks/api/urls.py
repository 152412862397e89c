"""Task-level routes; tasks are also served as ``todos`` for tools that call a task a todo."""

from tasks.api import views

routes = [
    ("tasks", views.TaskViewSet, "task"),
    ("todos", views.TaskViewSet, "todo"),
    ("dependencies", views.DependencyViewSet, "dependency"),
    ("runs", views.RunViewSet, "run"),
    ("artifacts", views.ArtifactViewSet, "artifact"),
    ("history", views.HistoryViewSet, "history"),
    ("phases", views.PhaseViewSet, "phase"),
    ("questions", views.QuestionViewSet, "question"),
]
