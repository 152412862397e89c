"""What the API may show a caller: each queryset keeps only rows of missions the caller can see (staff: all) and
fetches the related rows its serializer reads, so a page costs the same number of queries whatever its size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Prefetch, QuerySet

from history.models import HistoryEntry
from missions.models import restrict_to_visible
from tasks.models import Artifact, Dependency, Phase, Question, Run, Task

if TYPE_CHECKING:
    from history.services import Viewer


def tasks_visible(user: Viewer) -> QuerySet[Task]:
    edges = Prefetch("dependency_links", queryset=Dependency.objects.only("id", "task_id", "depends_on_id"))
    queryset = Task.objects.select_related("owner_user", "owner_agent").prefetch_related(edges)
    return restrict_to_visible(queryset, user, "mission")


def dependencies_visible(user: Viewer) -> QuerySet[Dependency]:
    queryset = Dependency.objects.select_related("task", "depends_on").order_by("id")
    return restrict_to_visible(queryset, user, "task__mission")


def runs_visible(user: Viewer) -> QuerySet[Run]:
    return restrict_to_visible(Run.objects.select_related("task"), user, "task__mission")


def artifacts_visible(user: Viewer) -> QuerySet[Artifact]:
    queryset = Artifact.objects.select_related("created_by_user", "created_by_agent")
    return restrict_to_visible(queryset, user, "mission")


def history_visible(user: Viewer) -> QuerySet[HistoryEntry]:
    queryset = HistoryEntry.objects.select_related("actor_user", "actor_agent", "task")
    return restrict_to_visible(queryset, user, "mission")


def phases_visible(user: Viewer) -> QuerySet[Phase]:
    return restrict_to_visible(Phase.objects.all(), user, "mission")


def questions_visible(user: Viewer) -> QuerySet[Question]:
    queryset = Question.objects.select_related("task", "addressed_to", "answered_by")
    return restrict_to_visible(queryset, user, "mission")
