"""Task-level routes; tasks are also served as ``todos`` for tools that call a task a todo (and its mission a
project: see ``TodoViewSet``)."""

from tasks.api import views

routes = [
    ("tasks", views.TaskViewSet, "task"),
    ("todos", views.TodoViewSet, "todo"),
    ("dependencies", views.DependencyViewSet, "dependency"),
    ("runs", views.RunViewSet, "run"),
    ("artifacts", views.ArtifactViewSet, "artifact"),
    ("history", views.HistoryViewSet, "history"),
    ("phases", views.PhaseViewSet, "phase"),
    ("questions", views.QuestionViewSet, "question"),
]
