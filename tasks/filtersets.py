"""Filters for tasks, dependencies, runs, artifacts, history, phases and questions, shared by pages and the API.

Missions are filtered by id with a plain number filter: an id of a mission the caller cannot see simply
matches nothing (no "does not exist" answer that would reveal which ids exist)."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from genesis.filters import DateTimeRangeFilter, IdFilter
from history.choices import ActorKind
from history.models import HistoryEntry
from tasks.choices import ArtifactKind, PhaseStatus, QuestionStatus, RunStatus, TaskStatus
from tasks.models import Artifact, Dependency, Phase, Question, Run, Task


class TaskFilterSet(django_filters.FilterSet):
    """Tasks by mission, key, status, owner (a person's username or an agent's name), phase and dates."""

    q = django_filters.CharFilter(method="search", label="Search", max_length=200)
    mission = IdFilter(field_name="mission_id", label="Mission id")
    key = django_filters.CharFilter(field_name="key", max_length=64, label="Key (exact; unique within a mission)")
    status = django_filters.MultipleChoiceFilter(choices=TaskStatus.choices, label="Status")
    owner = django_filters.CharFilter(field_name="owner_user__username", label="Owner (username)", max_length=150)
    agent = django_filters.CharFilter(field_name="owner_agent__name", label="Agent (name)", max_length=100)
    phase = IdFilter(field_name="phase_id", label="Phase id")
    created = DateTimeRangeFilter(field_name="created_at")
    updated = DateTimeRangeFilter(field_name="updated_at")

    class Meta:
        model = Task
        fields = ["q", "mission", "key", "status", "owner", "agent", "phase", "created", "updated"]

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(key__icontains=value) | Q(title__icontains=value))


class TodoFilterSet(TaskFilterSet):
    """The task filters as the ``todos`` alias names them: ``project`` for the mission."""

    mission = None
    project = IdFilter(field_name="mission_id", label="Project id")

    class Meta(TaskFilterSet.Meta):
        fields = ["project" if name == "mission" else name for name in TaskFilterSet.Meta.fields]


class DependencyFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="task__mission_id", label="Mission id")
    task = IdFilter(field_name="task_id", label="Task id (the one that waits)")
    depends_on = IdFilter(field_name="depends_on_id", label="Task id (the prerequisite)")

    class Meta:
        model = Dependency
        fields = ["mission", "task", "depends_on"]


class RunFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="task__mission_id", label="Mission id")
    task = IdFilter(field_name="task_id", label="Task id")
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices, label="Status")
    created = DateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Run
        fields = ["mission", "task", "status", "created"]


class ArtifactFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="mission_id", label="Mission id")
    task = IdFilter(field_name="task_id", label="Task id")
    run = IdFilter(field_name="run_id", label="Run id")
    kind = django_filters.MultipleChoiceFilter(choices=ArtifactKind.choices, label="Kind")
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=200)
    created = DateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Artifact
        fields = ["mission", "task", "run", "kind", "name", "created"]


class HistoryFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="mission_id", label="Mission id")
    task = IdFilter(field_name="task_id", label="Task id")
    task_key = django_filters.CharFilter(field_name="task__key", max_length=64, label="Task key")
    run = IdFilter(field_name="run_id", label="Run id")
    event = django_filters.CharFilter(
        field_name="event", lookup_expr="startswith", max_length=64, label="Event (prefix, e.g. task. or run.lost)"
    )
    actor_kind = django_filters.ChoiceFilter(choices=ActorKind.choices, label="Actor kind")
    actor = django_filters.CharFilter(method="by_actor", max_length=150,
                                      label="Actor (a person's username or an agent's name)")
    created = DateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = HistoryEntry
        fields = ["mission", "task", "task_key", "run", "event", "actor_kind", "actor", "created"]

    def by_actor(self, queryset, name, value):
        return queryset.filter(Q(actor_user__username=value) | Q(actor_agent__name=value))


class PhaseFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="mission_id", label="Mission id")
    status = django_filters.MultipleChoiceFilter(choices=PhaseStatus.choices, label="Status")

    class Meta:
        model = Phase
        fields = ["mission", "status"]


class QuestionFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="mission_id", label="Mission id")
    task = IdFilter(field_name="task_id", label="Task id")
    status = django_filters.MultipleChoiceFilter(choices=QuestionStatus.choices, label="Status")
    addressed_to = django_filters.CharFilter(field_name="addressed_to__username", max_length=150)
    created = DateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Question
        fields = ["mission", "task", "status", "addressed_to", "created"]
