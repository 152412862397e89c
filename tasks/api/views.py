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
from workflows import checks as check_workflows
from workflows import tasks as task_workflows


def ordered(filterset: type, *fields: str) -> type:
    """The shared FilterSet plus an ``ordering`` parameter that refuses unknown fields (400, not ignored)."""
    attrs = {
        "ordering": django_filters.OrderingFilter(fields=[(f, f) for f in fields]),
        "Meta": type("Meta", (filterset.Meta,), {"fields": [*filterset.Meta.fields, "ordering"]}),
    }
    return type(f"{filterset.__name__}WithOrdering", (filterset,), attrs)


# --- tasks -------------------------------------------------------------------------------------------------------


_READERS = "**Who:** anyone with a role in the mission, and staff."
_NOT_FOUND = "**Errors:** 404 when there is no such object or it belongs to a mission you hold no role in."
_LIST_ERRORS = "**Errors:** 400 names a query parameter that is unknown or malformed."
_TASK_VERB = ("**Who:** the task's own owner (a person) or the Mission Owner, and staff. Stakeholders get 403; a task "
              "of a mission you cannot see is 404.")


@extend_schema_view(
    list=extend_schema(
        summary="List tasks",
        description="The tasks of your missions (staff: every mission), in their mission's order. Find one by "
                    "`mission` and `key`; filter by `status`, `owner` (a username), `agent` (an agent's name), "
                    "`phase`, `q` (words in the key or title) and dates.\n\n"
                    "**Who:** anyone signed in; you see the tasks of the missions you hold a role in.\n\n"
                    f"{_LIST_ERRORS}",
    ),
    retrieve=extend_schema(
        summary="Read a task",
        description="One task: its definition, owner (a person or an agent), status and the ids of the tasks it "
                    f"waits for (`depends_on`).\n\n{_READERS}\n\n{_NOT_FOUND}",
    ),
    create=extend_schema(
        summary="Add a task",
        description="Add a task to a mission, owned by exactly one person (`owner_user`, a username) or agent "
                    "(`owner_agent`, its name). Its key is unique within the mission. It starts `pending`; make it "
                    "wait for others with `POST /api/v1/dependencies/`.\n\n"
                    "**Who:** the Mission Owner, and staff.\n\n"
                    "**Errors:** 400 names each field at fault (a key the mission already has, two owners or none, "
                    "a mission you cannot see); 403 when you are not the Mission Owner.",
    ),
    partial_update=extend_schema(
        summary="Edit a task",
        description="Change a task's definition (title, description, acceptance criteria, owner, configuration, "
                    "limits, position). Its status changes only through the verbs (approve, reject, retry, cancel) "
                    "and a task stays in its mission.\n\n"
                    "**Who:** the Mission Owner, and staff.\n\n"
                    "**Errors:** 400 names each field at fault; 403 when you are not the Mission Owner.",
    ),
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

    @extend_schema(
        summary="Approve a task's work",
        description="Accept the work of a task `waiting_approval` (a person's task, or an agent's proposal): the task "
                    "is `done`, an optional `note` is recorded, and the tasks waiting for it may start.\n\n"
                    f"{_TASK_VERB}\n\n"
                    "**Errors:** 409 when the task is not waiting for approval (the answer says its status).",
        request=ApproveSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._verb(request, task_workflows.task_approve, ApproveSerializer, note="note")

    @extend_schema(
        summary="Reject a task's work",
        description="Send back the work of a task waiting for approval or done, with `feedback` saying what is "
                    "wrong: the task runs again with the feedback in its context, and finished work that depended "
                    f"on it re-opens.\n\n{_TASK_VERB}\n\n"
                    "**Errors:** 400 when `feedback` is missing or blank; 409 when the task is neither waiting for "
                    "approval nor done.",
        request=RejectSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._verb(request, task_workflows.task_reject, RejectSerializer, feedback="feedback")

    @extend_schema(
        summary="Retry a task",
        description="Run a `failed` or `cancelled` task again, as a new attempt.\n\n"
                    f"{_TASK_VERB}\n\n"
                    "**Errors:** 409 when the task is neither failed nor cancelled.",
        request=None)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._verb(request, task_workflows.task_retry)

    @extend_schema(
        summary="Cancel a task",
        description="Cancel a task that is not finished: a running attempt is told to stop. An optional `reason` is "
                    f"recorded; retry brings the task back.\n\n{_TASK_VERB}\n\n"
                    "**Errors:** 409 when the task is already finished.",
        request=CancelSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._verb(request, task_workflows.task_cancel, CancelSerializer, reason="reason")


class TodoViewSet(TaskViewSet):
    """Tasks as ``todos``, for tools that call a task a todo and a mission a project: the same tasks and verbs,
    with ``project`` where the tasks say ``mission`` (in bodies, responses, filters and errors)."""

    serializer_class = TodoSerializer
    filterset_class = ordered(TodoFilterSet, "position", "created_at", "updated_at", "key", "status", "id")
    nouns = {"task": "todo", "mission": "project"}


# --- dependencies ------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List dependencies",
        description="The edges of your missions' task graphs: `task` waits for `depends_on` (ids, with their keys). "
                    "Filter by `mission`, `task` or `depends_on`.\n\n"
                    f"**Who:** anyone signed in; you see your missions' edges.\n\n{_LIST_ERRORS}",
    ),
    retrieve=extend_schema(
        summary="Read a dependency",
        description=f"One edge of a task graph.\n\n{_READERS}\n\n{_NOT_FOUND}",
    ),
    create=extend_schema(
        summary="Make a task wait for another",
        description="`task` waits until `depends_on` is done; both belong to the same mission.\n\n"
                    "**Who:** the Mission Owner, and staff.\n\n"
                    "**Errors:** 400 when the edge would close a cycle (code `cycle`, with its `path` of task keys) "
                    "or the tasks are in different missions; 409 when the edge exists already; 403 when you are "
                    "not the Mission Owner.",
    ),
    destroy=extend_schema(
        summary="Remove a dependency",
        description="`task` no longer waits for `depends_on`; it may become ready at once.\n\n"
                    f"**Who:** the Mission Owner, and staff.\n\n{_NOT_FOUND} 403 when you are not the Mission "
                    "Owner.",
    ),
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
    list=extend_schema(
        summary="List runs",
        description="Attempts at your missions' tasks: status, worker, lease, times, error and result (the log is "
                    "in the single run). Filter by `mission`, `task`, `status` and creation date.\n\n"
                    f"**Who:** anyone signed in; you see your missions' runs.\n\n{_LIST_ERRORS}",
    ),
    retrieve=extend_schema(
        summary="Read a run",
        description=f"One attempt at a task, with its log.\n\n{_READERS}\n\n{_NOT_FOUND}",
    ),
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
    list=extend_schema(
        summary="List history",
        description="What happened in your missions, who did it (a person's username or an agent's name, with "
                    "`actor_kind`) and when, oldest first; entries are never changed or removed. Filter by "
                    "`mission`, `task`, `run`, `event` (a prefix such as `task.`), `actor`, `actor_kind` and "
                    f"date.\n\n**Who:** anyone signed in; you see your missions' history.\n\n{_LIST_ERRORS}",
    ),
    retrieve=extend_schema(
        summary="Read a history entry",
        description=f"One recorded change.\n\n{_READERS}\n\n{_NOT_FOUND}",
    ),
)
class HistoryViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    serializer_class = HistoryEntrySerializer
    permission_classes = [RolePermission]
    filterset_class = ordered(HistoryFilterSet, "created_at", "id")

    def get_queryset(self):
        return selectors.history_visible(self.request.user)


@extend_schema_view(
    list=extend_schema(
        summary="List phases",
        description="The stages of your missions in order, with their status and exit criteria. Filter by "
                    f"`mission` and `status`.\n\n**Who:** anyone signed in; you see your missions' phases.\n\n"
                    f"{_LIST_ERRORS}",
    ),
    retrieve=extend_schema(
        summary="Read a phase",
        description="One phase: its status and the exit criteria that must pass before the next phase opens (their "
                    f"results are under check-results).\n\n{_READERS}\n\n{_NOT_FOUND}",
    ),
)
class PhaseViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    serializer_class = PhaseSerializer
    permission_classes = [RolePermission]
    filterset_class = ordered(PhaseFilterSet, "order", "id")

    def get_queryset(self):
        return selectors.phases_visible(self.request.user)

    def permission_target(self, phase, rule):
        return phase.mission

    @extend_schema(
        summary="Re-check a phase",
        description="Run the phase's exit checks again, for example after fixing the data: when they pass (or every "
                    "failure is waived) the phase is done and the next one opens. The results are under "
                    "check-results.\n\n"
                    "**Who:** the Mission Owner, and staff. Others with a role get 403.\n\n"
                    "**Errors:** 409 when the phase's status does not allow it, e.g. a phase not reached yet "
                    "(`pending`): the answer names the status and the allowed moves.",
        request=None, responses={200: PhaseSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def recheck(self, request, pk=None):
        phase = self.get_object()
        check_workflows.phase_recheck(phase=phase, actor=request.user)
        return Response(PhaseSerializer(self.get_queryset().get(pk=phase.pk)).data)


# --- questions ----------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List questions",
        description="Questions agents asked people in your missions, open or answered. Filter by `mission`, `task`, "
                    "`status`, `addressed_to` (a username) and date.\n\n"
                    f"**Who:** anyone signed in; you see your missions' questions.\n\n{_LIST_ERRORS}",
    ),
    retrieve=extend_schema(
        summary="Read a question",
        description="One question: its text, the options offered, its default, the context the agent gave, and the "
                    f"answer once given.\n\n{_READERS}\n\n{_NOT_FOUND}",
    ),
)
class QuestionViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    serializer_class = QuestionSerializer
    permission_classes = [RolePermission]
    filterset_class = ordered(QuestionFilterSet, "created_at", "id")
    write_rules = {"answer": "question"}

    def get_queryset(self):
        return selectors.questions_visible(self.request.user)

    @extend_schema(
        summary="Answer a question",
        description="Answer an open question: the task that asked runs again with the answer in its context. When "
                    "the question offers options, the answer is one of them, unless the question takes other "
                    "answers (a mapping question: any TABLE.COLUMN, {\"sql\": \"...\"}, TABLE_A.col = TABLE_B.col, "
                    "or none).\n\n"
                    "**Who:** the person asked, the task's owner or the Mission Owner, and staff; others get 403.\n\n"
                    "**Errors:** 400 when the answer is empty or not one of the options; 409 when the question is "
                    "already answered or cancelled.",
        request=AnswerSerializer, responses={200: QuestionSerializer})
    @action(detail=True, methods=["post"])
    def answer(self, request, pk=None):
        question = self.get_object()
        serializer = AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task_workflows.question_answer(question=question, actor=request.user,
                                       answer=serializer.validated_data["answer"])
        fresh = self.get_queryset().get(pk=question.pk)
        return Response(QuestionSerializer(fresh, context=self.get_serializer_context()).data)


# --- artifacts ----------------------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(
        summary="List artifacts",
        description="The outputs of your missions (SQL, specs, docs, logs, reports, data, links), newest version "
                    "first per name, with who stored them and where to download them. Filter by `mission`, `task`, "
                    "`run`, `kind`, `name` (contains) and date.\n\n"
                    f"**Who:** anyone signed in; you see your missions' artifacts.\n\n{_LIST_ERRORS}",
    ),
    retrieve=extend_schema(
        summary="Read an artifact",
        description="One artifact's description: kind, name, version, size, sha256, content type, who stored it "
                    f"and its `download_url`.\n\n{_READERS}\n\n{_NOT_FOUND}",
    ),
    create=extend_schema(
        summary="Store an artifact",
        description="Store an output of a mission, optionally of one of its tasks: a file (multipart, within the "
                    "upload size limit) or a URL, exactly one. An artifact of the same name and task becomes a new "
                    "version; stored versions never change.\n\n"
                    "**Who:** the Mission Owner and Task Owners, and staff; stakeholders get 403.\n\n"
                    "**Errors:** 400 names each field at fault (a file over the size limit, both a file and a URL, a "
                    "task of another mission); 409 when the mission is completed, closed or cancelled (code "
                    "`mission_finished`, naming its status).",
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
        summary="Download an artifact",
        description="The artifact's content as an attachment, under its name; a link artifact answers 302 to its "
                    f"URL.\n\n{_READERS}\n\n{_NOT_FOUND}",
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
