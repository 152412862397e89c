"""Mission endpoints: CRUD over the missions the caller can see, the workflow verbs, and the members."""

from __future__ import annotations

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from blueprints.api.serializers import MissionLaunchSerializer
from blueprints.api.views import launch_response
from blueprints.models import Blueprint
from genesis.api.caching import CachedListMixin
from genesis.api.fields import NoteSerializer, ReasonSerializer
from genesis.api.filters import KnownQueryParametersMixin
from genesis.api.permissions import RolePermission
from genesis.filters import DateTimeRangeFilter
from missions import services
from missions.api.selectors import missions_for_api
from missions.api.serializers import (
    ApproveAllResultSerializer,
    ApproveAllSerializer,
    MemberRemoveSerializer,
    MembershipSerializer,
    MissionSerializer,
    SignoffSerializer,
)
from missions.filtersets import MissionFilterSet
from missions.models import Membership, MissionSignoff
from missions.permissions import can_create_missions
from missions.selectors import roles_map
from tasks.media import file_response, spec_file_name
from tasks.selectors import missions_with_progress
from workflows import missions as mission_workflows
from workflows import tasks as task_workflows


class MissionAPIFilterSet(MissionFilterSet):
    """The missions page's filters, plus dates and ordering for API clients."""

    # The pages' owner filter looks the username up as a model choice; a text filter refuses NUL bytes first.
    owner = django_filters.CharFilter(field_name="owner__username", max_length=150, label="Owner (username)")
    name = django_filters.CharFilter(field_name="name", max_length=200, label="Name (exact; q searches)")
    created = DateTimeRangeFilter(field_name="created_at")
    launched = DateTimeRangeFilter(field_name="launched_at")
    ordering = django_filters.OrderingFilter(
        fields=(("created_at", "created_at"), ("updated_at", "updated_at"), ("launched_at", "launched_at"),
                ("name", "name"), ("status", "status"), ("id", "id")),
    )

    class Meta(MissionFilterSet.Meta):
        fields = [*MissionFilterSet.Meta.fields, "name", "created", "launched", "ordering"]


def _verb_schema(summary: str, description: str, request=ReasonSerializer):
    return extend_schema(summary=summary, description=description, request=request,
                         responses={200: MissionSerializer})


_OWNER_VERB = ("**Who:** the Mission Owner (or staff). Task Owners and stakeholders get 403; a mission you cannot "
               "see is 404.")


@extend_schema_view(
    list=extend_schema(
        summary="List missions",
        description="The missions you hold a role in (staff: every mission), newest first unless `ordering` says "
                    "otherwise, each with its progress (tasks done of all) and your role in it (`my_role`). Filter "
                    "by `status`, exact `name`, `q` (words in the name or objective), `mode`, `owner` (a username) "
                    "and creation or launch dates.\n\n"
                    "**Who:** anyone signed in; you see only your missions.\n\n"
                    "**Errors:** 400 names a query parameter that is unknown or malformed.",
    ),
    retrieve=extend_schema(
        summary="Read a mission",
        description="One mission: its objective, scope, success criteria, owner, status, connections, spec file "
                    "download URL, progress and your role in it.\n\n"
                    "**Who:** anyone with a role in the mission, and staff.\n\n"
                    "**Errors:** 404 when there is no such mission or you hold no role in it.",
    ),
    create=extend_schema(
        summary="Create a mission",
        description="A new mission in `draft`. You become its Mission Owner, or the person named in `owner`. The "
                    "connections it names are given to the mission if you may give them (they are listed with "
                    "their groups in the admin). Add tasks, then launch it.\n\n"
                    "With `blueprint` (a slug or id), the body is the blueprint's launch instead (`params`, "
                    "`spec_file` or `spec`, `from_mission`, `start`, `suggestion`, as POST "
                    "/api/v1/blueprints/{id}/launch/, where `suggestion` is the id of a language-model suggestion "
                    "from POST /api/v1/blueprints/suggest/ that only its asker may launch from, once): the "
                    "mission comes "
                    "with the blueprint's tasks and the spec file, validated before anything is written.\n\n"
                    "**Who:** staff, or people with the permission to add missions; naming someone else as owner "
                    "needs staff.\n\n"
                    "**Errors:** 400 names each field at fault (an unknown username or connection name, a "
                    "connection you may not give); 403 when you may not create missions.",
    ),
    partial_update=extend_schema(
        summary="Edit a mission",
        description="Change a mission's name, objective, scope, success criteria, mode, connections, escalation "
                    "contacts or owner. Its status changes only through the verbs (launch, pause, resume, cancel, "
                    "close); the change is recorded in the mission's history.\n\n"
                    f"{_OWNER_VERB}\n\n"
                    "**Errors:** 400 names each field at fault.",
    ),
)
class MissionViewSet(
    KnownQueryParametersMixin, CachedListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
    mixins.CreateModelMixin, mixins.UpdateModelMixin, GenericViewSet,
):
    serializer_class = MissionSerializer
    permission_classes = [RolePermission]
    filterset_class = MissionAPIFilterSet
    http_method_names = ["get", "post", "patch", "head", "options"]
    write_rules = {"members": "manage", "remove_member": "manage", "signoff": "signoff", "approve_all": "work"}

    def get_queryset(self):
        return missions_for_api(self.request.user)

    def _render(self, missions, *, many: bool, status_code=status.HTTP_200_OK):
        items = missions if many else [missions]
        missions_with_progress(items)
        context = {**self.get_serializer_context(), "roles": roles_map(self.request.user, items)}
        return MissionSerializer(missions, many=many, context=context)

    def list(self, request, *args, **kwargs):
        def build():
            page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
            return self.get_paginated_response(self._render(page, many=True).data)

        return self.cached_list(request, build)

    def retrieve(self, request, *args, **kwargs):
        return Response(self._render(self.get_object(), many=False).data)

    def create(self, request, *args, **kwargs):
        if isinstance(request.data, dict) and "blueprint" in request.data:
            return self._create_from_blueprint(request)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if not can_create_missions(request.user):
            raise PermissionDenied("You may not create missions: it needs staff or the 'add mission' permission.")
        owner = data.pop("owner", None) or request.user
        if owner.pk != request.user.pk and not request.user.is_staff:
            raise PermissionDenied("Only staff may create a mission owned by someone else.")
        mission = services.mission_create(owner=owner, actor=request.user, **data)
        return Response(self._render(mission, many=False).data, status=status.HTTP_201_CREATED)

    def _create_from_blueprint(self, request):
        """The body names a blueprint: the mission is that blueprint's launch (its tasks, spec file and all)."""
        serializer = MissionLaunchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        value = serializer.validated_data["blueprint"]
        lookup = {"pk": int(value)} if value.isascii() and value.isdigit() and len(value) <= 18 else {"slug": value}
        blueprint = Blueprint.objects.filter(**lookup).first()
        if blueprint is None:
            raise ValidationError({"blueprint": [f"No blueprint {value!r} is loaded."]})
        return launch_response(self, request, blueprint, serializer)

    def partial_update(self, request, *args, **kwargs):
        mission = self.get_object()
        serializer = self.get_serializer(mission, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        mission = services.mission_update(mission=mission, actor=request.user, **serializer.validated_data)
        return Response(self._render(mission, many=False).data)

    # --- workflow verbs (Mission Owner) -------------------------------------------------------------------

    def _verb(self, request, function, body=None, **arguments_from):
        """Check the role (get_object), parse the optional body, call the service, render the mission.
        ``arguments_from`` maps a service keyword to the body field that fills it."""
        mission = self.get_object()
        arguments = {}
        if body is not None:
            serializer = body(data=request.data)
            serializer.is_valid(raise_exception=True)
            arguments = {kw: serializer.validated_data[field] for kw, field in arguments_from.items()}
        mission = function(mission=mission, actor=request.user, **arguments)
        return Response(self._render(mission, many=False).data)

    @_verb_schema("Launch a mission",
                  "Start a `draft` mission: it becomes `active` and every task whose prerequisites are done is handed "
                  f"to a worker (agents) or waits for its person.\n\n{_OWNER_VERB}\n\n"
                  "**Errors:** 409 when the mission is not a draft (the answer names its status and the allowed "
                  "moves).", request=None)
    @action(detail=True, methods=["post"])
    def launch(self, request, pk=None):
        return self._verb(request, mission_workflows.mission_launch)

    @_verb_schema("Pause a mission",
                  "Pause an `active` mission: no new task starts; running work finishes. An optional `reason` is "
                  f"recorded.\n\n{_OWNER_VERB}\n\n"
                  "**Errors:** 409 when the mission is not active.")
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._verb(request, mission_workflows.mission_pause, ReasonSerializer, reason="reason")

    @_verb_schema("Resume a mission",
                  "Resume a `paused` mission: it is `active` again and its ready tasks start (in step mode, also "
                  f"after a phase boundary).\n\n{_OWNER_VERB}\n\n"
                  "**Errors:** 409 when the mission is not paused.", request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._verb(request, mission_workflows.mission_resume)

    @_verb_schema("Cancel a mission",
                  "Cancel a draft, active, paused or failed mission: its unfinished tasks are cancelled and running "
                  f"work is told to stop. This cannot be undone.\n\n{_OWNER_VERB}\n\n"
                  "**Errors:** 409 when the mission is already completed, closed or cancelled.")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._verb(request, mission_workflows.mission_cancel, ReasonSerializer, reason="reason")

    @_verb_schema("Close a mission",
                  "Sign off a `completed` (or `failed`) mission: it becomes `closed`, its record final. An optional "
                  f"`note` (the owner's sign-off note) is recorded in the history.\n\n{_OWNER_VERB}\n\n"
                  "**Errors:** 409 when the mission is not completed or failed, or (`signoff_missing`) while a "
                  "stakeholder whose sign-off is required has not approved since the mission completed: the "
                  "message names them.", request=NoteSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._verb(request, mission_workflows.mission_close, NoteSerializer, note="note")

    @extend_schema(
        methods=["GET"], summary="List a mission's sign-offs",
        description="Every stakeholder sign-off given on the mission, newest first.\n\n"
                    "**Who:** anyone with a role in the mission, and staff.\n\n"
                    "**Errors:** 404 when there is no such mission or you hold no role in it.",
        request=None, responses={200: SignoffSerializer(many=True)},
    )
    @extend_schema(
        methods=["POST"], summary="Sign off on a mission's outputs",
        description="A stakeholder approves the delivered outputs (`approve`) or raises a `concern` (a `note` is "
                    "then required), recorded in the history and shown to the Mission Owner. Possible once the "
                    "mission is `completed` (or `failed`) and until it is closed.\n\n"
                    "**Who:** the mission's stakeholders, their one write; anyone else gets 403.\n\n"
                    "**Errors:** 400 names the field at fault (`decision`, `note`); 409 when the mission is not "
                    "completed or failed.",
        request=SignoffSerializer, responses={201: SignoffSerializer},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def signoff(self, request, pk=None):
        mission = self.get_object()
        if request.method == "GET":
            signoffs = MissionSignoff.objects.filter(mission=mission).select_related("user")
            return Response(SignoffSerializer(signoffs, many=True).data)
        serializer = SignoffSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        signoff = mission_workflows.mission_signoff(mission=mission, actor=request.user, **serializer.validated_data)
        return Response(SignoffSerializer(signoff).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Approve several tasks at once",
        description="Approve the mission's tasks named in `tasks` (ids or keys), or, without `tasks`, every task of "
                    "the mission waiting for approval that you may approve: what the pages' \"Approve all shown\" "
                    "does. Each task is approved on its own (as POST /api/v1/tasks/{id}/approve/, with the optional "
                    "`note`), so one that cannot be approved neither stops nor undoes the others; the answer says, "
                    "task by task in the order asked, `approved` or `refused` with the reason.\n\n"
                    "**Who:** the Mission Owner (every task), a Task Owner (their own tasks; an agent's task is "
                    "refused for them, task by task), and staff. Stakeholders get 403; a mission you cannot see is "
                    "404.\n\n"
                    "**Errors:** 400 names the field at fault (`tasks`: not a list, more than 500, an item that is "
                    "neither an id nor a key). A task not waiting for approval, not yours to approve, or not in the "
                    "mission is not an error of the request: it is `refused` in the results (`invalid_transition`, "
                    "`forbidden`, `not_found`).",
        request=ApproveAllSerializer, responses={200: ApproveAllResultSerializer},
    )
    @action(detail=True, methods=["post"], url_path="approve-all", url_name="approve-all", filterset_class=None,
            pagination_class=None)
    def approve_all(self, request, pk=None):
        mission = self.get_object()
        serializer = ApproveAllSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcomes = task_workflows.tasks_approve_all(
            tasks=mission.tasks.all(), actor=request.user, refs=serializer.validated_data.get("tasks"),
            note=serializer.validated_data["note"])
        results = [{"task": o.task.pk if o.task is not None else None, "key": o.ref,
                    "result": "approved" if o.approved else "refused", "reason": o.reason, "code": o.code}
                   for o in outcomes]
        approved = sum(1 for o in outcomes if o.approved)
        return Response(ApproveAllResultSerializer(
            {"approved": approved, "refused": len(outcomes) - approved, "results": results}).data)

    # --- the spec file ------------------------------------------------------------------------------------

    @extend_schema(
        summary="Download a mission's spec file",
        description="The mission's spec file (sources, targets, mappings and checks) as an attachment; the mission's "
                    "`spec_file` field links here.\n\n"
                    "**Who:** anyone with a role in the mission, and staff.\n\n"
                    "**Errors:** 404 when there is no such mission, you hold no role in it, or it has no spec file.",
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The file.")},
    )
    @action(detail=True, methods=["get"], url_path="spec-file", url_name="spec-file", filterset_class=None,
            pagination_class=None)
    def spec_file(self, request, pk=None):
        mission = self.get_object()
        if not mission.spec_file:
            raise NotFound("This mission has no spec file.")
        return file_response(mission.spec_file, filename=spec_file_name(mission))

    # --- members ------------------------------------------------------------------------------------------

    @extend_schema(
        methods=["GET"], summary="List a mission's members",
        description="Who holds which role in the mission (`mission_owner`, `task_owner`, `stakeholder`), by "
                    "username.\n\n"
                    "**Who:** anyone with a role in the mission, and staff.\n\n"
                    "**Errors:** 404 when there is no such mission or you hold no role in it.",
        request=None, responses={200: MembershipSerializer(many=True)},
    )
    @extend_schema(
        methods=["POST"], summary="Give a person a role",
        description="Give a person (by username) a role in the mission, or change the role they hold. The Mission "
                    "Owner keeps `mission_owner`: change the mission's owner to hand it over.\n\n"
                    f"{_OWNER_VERB}\n\n"
                    "**Errors:** 400 for an unknown username or role, or a role the owner cannot take.",
        request=MembershipSerializer, responses={200: MembershipSerializer},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def members(self, request, pk=None):
        mission = self.get_object()
        if request.method == "GET":
            members = Membership.objects.filter(mission=mission).select_related("user").order_by("user__username")
            return Response(MembershipSerializer(members, many=True).data)
        serializer = MembershipSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_set(mission=mission, actor=request.user, **serializer.validated_data)
        return Response(MembershipSerializer(membership).data)

    @extend_schema(
        summary="Take a person's role away",
        description="The person (by username) no longer holds a role in the mission and no longer sees it.\n\n"
                    f"{_OWNER_VERB}\n\n"
                    "**Errors:** 400 for an unknown username, or for the Mission Owner (change the owner first).",
        request=MemberRemoveSerializer, responses={204: OpenApiResponse(description="Removed.")},
    )
    @action(detail=True, methods=["post"], url_path="members/remove", filterset_class=None)
    def remove_member(self, request, pk=None):
        mission = self.get_object()
        serializer = MemberRemoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.membership_remove(mission=mission, user=serializer.validated_data["user"], actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
