"""Task-level endpoints: tasks (and their approve/reject/retry/cancel verbs), dependencies, runs, artifacts
(upload and download), history, phases and questions. Views parse, call a service or selector, and render."""

from __future__ import annotations

import django_filters
from django.http import FileResponse, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet, ReadOnlyModelViewSet

from genesis.api.caching import CachedListMixin
from genesis.api.filters import KnownQueryParametersMixin
from genesis.api.parsers import FormParser, JSONParser, MultiPartParser
from genesis.api.permissions import RolePermission, require
from tasks import services
from tasks.api import selectors
from tasks.api.serializers import (
    AnswerSerializer,
    ApproveSerializer,
    ArtifactSerializer,
    CancelSerializer,
    DependencySerializer,
    HistoryEntrySerializer,
    PhaseSerializer,
    QuestionSerializer,
    RejectSerializer,
    RunDetailSerializer,
    RunSerializer,
    TaskSerializer,
    TodoSerializer,
)
from tasks.filtersets import (
    ArtifactFilterSet,
    DependencyFilterSet,
    HistoryFilterSet,
    PhaseFilterSet,
    QuestionFilterSet,
    RunFilterSet,
    TaskFilterSet,
    TodoFilterSet,
)
from tasks.phase_gate import phase_recheck


def ordered(filterset: type, *fields: str) -> type:
    """The shared FilterSet plus an ``ordering`` parameter that refuses unknown fields (400, not ignored)."""
    attrs = {
        "ordering": django_filters.OrderingFilter(fields=[(f, f) for f in fields]),
        "Meta": type("Meta", (filterset.Meta,), {"fields": [*filterset.Meta.fields, "ordering"]}),
    }
    return type(f"{filterset.__name__}WithOrdering", (filterset,), attrs)


# --- tasks -------------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Tasks of the missions the caller can see."),
    retrieve=extend_schema(summary="One task, with the ids of the tasks it waits for."),
    create=extend_schema(summary="Add a task to a mission (Mission Owner)."),
    partial_update=extend_schema(summary="Edit a task's definition (Mission Owner); its status moves only by verbs."),
)
class TaskViewSet(
    KnownQueryParametersMixin, CachedListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
    mixins.CreateModelMixin, mixins.UpdateModelMixin, GenericViewSet,
):
    serializer_class = TaskSerializer
    permission_classes = [RolePermission]
    filterset_class = ordered(TaskFilterSet, "position", "created_at", "updated_at", "key", "status", "id")
    http_method_names = ["get", "post", "patch", "head", "options"]
    write_rules = {"approve": "task", "reject": "task", "retry": "task", "cancel": "task"}
    nouns = {"task": "task", "mission": "mission"}

    def get_queryset(self):
        return selectors.tasks_visible(self.request.user)

    def permission_target(self, task, rule):
        return task if rule == "task" else task.mission

    def _render(self, task, status_code=status.HTTP_200_OK):
        fresh = self.get_queryset().get(pk=task.pk)
        return Response(self.get_serializer(fresh).data, status=status_code)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        mission = data.pop("mission")
        require("manage", request.user, mission)
        task = services.task_create(mission=mission, actor=request.user, **data)
        return self._render(task, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        task = self.get_object()
        serializer = self.get_serializer(task, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "mission" in data and data.pop("mission").pk != task.mission_id:
            field = self.nouns["mission"]
            raise ValidationError({field: [f"A {self.nouns['task']} cannot move to another {field}."]})
        task = services.task_update(task=task, actor=request.user, **data)
        return self._render(task)

    def _verb(self, request, function, body=None, **arguments_from):
        task = self.get_object()
        arguments = {}
        if body is not None:
            serializer = body(data=request.data)
            serializer.is_valid(raise_exception=True)
            arguments = {kw: serializer.validated_data[field] for kw, field in arguments_from.items()}
        function(task=task, actor=request.user, **arguments)
        return self._render(task)

    @extend_schema(summary="Approve work waiting for approval: the task is done and the mission moves on.",
                   request=ApproveSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._verb(request, services.task_approve, ApproveSerializer, note="note")

    @extend_schema(summary="Reject the work with feedback: it runs again with the feedback, downstream re-opens.",
                   request=RejectSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._verb(request, services.task_reject, RejectSerializer, feedback="feedback")

    @extend_schema(summary="Retry a failed or cancelled task as a new attempt.", request=None)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._verb(request, services.task_retry)

    @extend_schema(summary="Cancel a task and stop its live work.", request=CancelSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._verb(request, services.task_cancel, CancelSerializer, reason="reason")


class TodoViewSet(TaskViewSet):
    """Tasks as ``todos``, for tools that call a task a todo and a mission a project: the same tasks and verbs,
    with ``project`` where the tasks say ``mission`` (in bodies, responses, filters and errors)."""

    serializer_class = TodoSerializer
    filterset_class = ordered(TodoFilterSet, "position", "created_at", "updated_at", "key", "status", "id")
    nouns = {"task": "todo", "mission": "project"}


# --- dependencies ------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Edges of the task graphs the caller can see."),
    create=extend_schema(summary="Make a task wait for another (Mission Owner). A cycle is refused with its path."),
    destroy=extend_schema(summary="Remove an edge (Mission Owner)."),
)
class DependencyViewSet(
    KnownQueryParametersMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.DestroyModelMixin, GenericViewSet,
):
    serializer_class = DependencySerializer
    permission_classes = [RolePermission]
    filterset_class = ordered(DependencyFilterSet, "id", "created_at")

    def get_queryset(self):
        return selectors.dependencies_visible(self.request.user)

    def permission_target(self, edge, rule):
        return edge.task.mission

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task, depends_on = serializer.validated_data["task"], serializer.validated_data["depends_on"]
        require("manage", request.user, task.mission)
        edge = services.dependency_add(task=task, depends_on=depends_on, actor=request.user)
        return Response(DependencySerializer(edge, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.dependency_remove(edge=instance, actor=self.request.user)


# --- runs, history, phases (read-only) ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Attempts at executing tasks (without their logs)."),
    retrieve=extend_schema(summary="One attempt, with its log."),
)
class RunViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    permission_classes = [RolePermission]
    filterset_class = ordered(RunFilterSet, "id", "created_at", "attempt", "finished_at")

    def get_queryset(self):
        queryset = selectors.runs_visible(self.request.user)
        return queryset.defer("log") if self.action == "list" else queryset

    def get_serializer_class(self):
        return RunSerializer if self.action == "list" else RunDetailSerializer


@extend_schema_view(
    list=extend_schema(summary="What happened, who did it, and when (append-only)."),
    retrieve=extend_schema(summary="One history entry."),
)
class HistoryViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    serializer_class = HistoryEntrySerializer
    permission_classes = [RolePermission]
    filterset_class = ordered(HistoryFilterSet, "created_at", "id")

    def get_queryset(self):
        return selectors.history_visible(self.request.user)


@extend_schema_view(
    list=extend_schema(summary="Phases of the missions the caller can see, with their status."),
    retrieve=extend_schema(summary="One phase and its exit criteria."),
)
class PhaseViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    serializer_class = PhaseSerializer
    permission_classes = [RolePermission]
    filterset_class = ordered(PhaseFilterSet, "order", "id")

    def get_queryset(self):
        return selectors.phases_visible(self.request.user)

    def permission_target(self, phase, rule):
        return phase.mission

    @extend_schema(summary="Run a phase's exit checks again (Mission Owner); if they pass, the next phase opens.",
                   request=None, responses={200: PhaseSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def recheck(self, request, pk=None):
        phase = self.get_object()
        phase_recheck(phase=phase, actor=request.user)
        return Response(PhaseSerializer(self.get_queryset().get(pk=phase.pk)).data)


# --- questions ----------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Questions agents asked people, in the missions the caller can see."),
    retrieve=extend_schema(summary="One question, its options and its answer."),
)
class QuestionViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    serializer_class = QuestionSerializer
    permission_classes = [RolePermission]
    filterset_class = ordered(QuestionFilterSet, "created_at", "id")
    write_rules = {"answer": "question"}

    def get_queryset(self):
        return selectors.questions_visible(self.request.user)

    @extend_schema(summary="Answer the question: the task runs again with the answer in its context.",
                   request=AnswerSerializer, responses={200: QuestionSerializer})
    @action(detail=True, methods=["post"])
    def answer(self, request, pk=None):
        question = self.get_object()
        serializer = AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.question_answer(question=question, actor=request.user, answer=serializer.validated_data["answer"])
        fresh = self.get_queryset().get(pk=question.pk)
        return Response(QuestionSerializer(fresh, context=self.get_serializer_context()).data)


# --- artifacts ----------------------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="Outputs of the missions the caller can see."),
    retrieve=extend_schema(summary="One artifact's metadata (see download for its content)."),
    create=extend_schema(
        summary="Store an output: a file (multipart, size-limited) or a URL. A same-named one becomes a new version.",
    ),
)
class ArtifactViewSet(
    KnownQueryParametersMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    GenericViewSet,
):
    serializer_class = ArtifactSerializer
    permission_classes = [RolePermission]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_class = ordered(ArtifactFilterSet, "created_at", "name", "version", "id")

    def get_queryset(self):
        return selectors.artifacts_visible(self.request.user)

    def create(self, request, *args, **kwargs):
        # A body over the upload limit was refused unread by the multipart parser (genesis/uploads.py).
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        mission = data["mission"]
        require("work", request.user, mission)
        upload = data.get("file")
        name = data.get("name") or (upload.name if upload is not None else "") or data.get("url", "")
        if not name:
            raise ValidationError({"name": ["Give a name (or upload a file, whose name is used)."]})
        artifact = services.artifact_create(
            mission=mission, task=data.get("task"), run=data.get("run"), kind=data["kind"], name=name,
            file=upload, url=data.get("url", ""), actor=request.user,
            content_type=getattr(upload, "content_type", "") or "",
        )
        return Response(ArtifactSerializer(artifact, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="The artifact's content, as an attachment (a link artifact redirects to its URL).",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The file."),
            302: OpenApiResponse(description="A link artifact: Location is its URL."),
        },
    )
    @action(detail=True, methods=["get"], url_path="download", url_name="download", filterset_class=None)
    def download(self, request, pk=None):
        artifact = self.get_object()
        if not artifact.file:
            return HttpResponseRedirect(artifact.url)
        response = FileResponse(
            artifact.file.open("rb"), as_attachment=True, filename=artifact.name,
            content_type=artifact.content_type or "application/octet-stream",
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response
