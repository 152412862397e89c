"""Blueprint endpoints: list and read templates, import YAML, export a version, launch a mission from one;
and the exit-check results of phases, with the Mission Owner's waiver."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.viewsets import ReadOnlyModelViewSet

from agents import llm
from blueprints import services
from blueprints.api.serializers import (
    BlueprintDetailSerializer,
    BlueprintImportResultSerializer,
    BlueprintImportSerializer,
    BlueprintLaunchSerializer,
    BlueprintSerializer,
    BlueprintSuggestionSerializer,
    BlueprintSuggestRequestSerializer,
    CheckEvaluationSerializer,
    WaiveSerializer,
)
from blueprints.assist import suggest_launch
from blueprints.choices import CheckScope
from blueprints.models import BlueprintVersion, CheckEvaluation
from blueprints.permissions import can_import_blueprints
from blueprints.selectors import blueprint_latest_versions, blueprint_list, blueprints_suggested_for
from genesis.api.filters import KnownQueryParametersMixin
from genesis.api.parsers import FormParser, JSONParser, MultiPartParser
from genesis.api.permissions import RolePermission
from genesis.filters import IdFilter, StrictBooleanFilter
from missions.api.serializers import MissionSerializer
from missions.models import restrict_to_visible
from missions.permissions import can_create_missions
from missions.selectors import roles_map
from tasks.selectors import missions_with_progress
from workflows import checks as check_workflows
from workflows import missions as mission_workflows


class BlueprintFilterSet(django_filters.FilterSet):
    slug = django_filters.CharFilter(max_length=100, label="Slug (exact)")
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=200,
                                  label="Search in the name")


# A blueprint is addressed by id or by slug: the path parameter is text.
BLUEPRINT_ID = OpenApiParameter(
    "id", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=r"^[a-z0-9][a-z0-9_-]*$",
    description="The blueprint's id (all digits) or its slug, e.g. `build-marts`.",
)


@extend_schema_view(
    list=extend_schema(
        summary="List blueprints",
        description="Reusable mission templates (phases, actions with owners, acceptance and exit criteria), by "
                    "slug, with their latest version and how many missions use them. Find one by `slug`; `q` "
                    "searches the name.\n\n"
                    "**Who:** anyone signed in.\n\n"
                    "**Errors:** 400 names a query parameter that is unknown or malformed.",
    ),
    retrieve=extend_schema(
        summary="Read a blueprint",
        description="One blueprint, addressed by id or slug: its versions (newest first, each with the name of the "
                    "file it was loaded from) and the parameters its latest version asks for at launch.\n\n"
                    "**Who:** anyone signed in.\n\n"
                    "**Errors:** 404 when no blueprint has this id or slug.",
        parameters=[BLUEPRINT_ID]),
    export=extend_schema(parameters=[BLUEPRINT_ID]),
    launch=extend_schema(parameters=[BLUEPRINT_ID]),
)
class BlueprintViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    permission_classes = [RolePermission]
    filterset_class = BlueprintFilterSet
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    write_rules = {"launch": "authenticated", "suggest": "authenticated"}
    query_parameters = {"export": ("version",)}

    def get_queryset(self):
        queryset = blueprint_list()
        if self.action == "retrieve":
            versions = BlueprintVersion.objects.defer("source_text", "search_text").order_by("-number")
            queryset = queryset.prefetch_related(Prefetch("versions", queryset=versions))
        return queryset

    def get_serializer_class(self):
        return BlueprintDetailSerializer if self.action == "retrieve" else BlueprintSerializer

    def get_object(self):
        """A blueprint by id or by slug (``/blueprints/build-marts/``): all digits is an id."""
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        lookup = {"pk": int(value)} if value.isascii() and value.isdigit() and len(value) <= 18 else {"slug": value}
        blueprint = get_object_or_404(self.filter_queryset(self.get_queryset()), **lookup)
        self.check_object_permissions(self.request, blueprint)
        return blueprint

    def permission_target(self, obj, rule):
        return obj

    def _version(self, blueprint, number):
        versions = blueprint.versions.order_by("-number")
        version = versions.filter(number=number).first() if number else versions.first()
        if version is None:
            raise NotFound(f"Blueprint {blueprint.slug} has no version {number}.")
        return version

    @extend_schema(
        summary="Import a blueprint",
        description="Load a blueprint file (YAML), as a multipart `file` or as `text`. A new slug makes a new "
                    "blueprint; changed content of a known slug makes its next version; the same content again "
                    "stores nothing (`created` is false).\n\n"
                    "**Who:** staff, or people with the permission to add blueprint versions; others get 403.\n\n"
                    "**Errors:** 400 lists every problem of a refused file under `file` (with where in the file), "
                    "and nothing is stored; a file over the size or YAML limits is refused naming the limit.",
        request={"multipart/form-data": BlueprintImportSerializer, "application/json": BlueprintImportSerializer},
        responses={201: BlueprintImportResultSerializer},
    )
    @action(detail=False, methods=["post"], url_path="import", url_name="import", filterset_class=None)
    def import_file(self, request):
        if not can_import_blueprints(request.user):
            raise PermissionDenied("Only staff or holders of the 'add blueprint version' permission may import "
                                   "blueprints.")
        serializer = BlueprintImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data.get("file")
        if upload is not None:
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                return Response({"code": "invalid", "detail": "The file is not UTF-8 text.",
                                 "errors": {"file": ["The file is not UTF-8 text."]}}, status=400)
            filename = upload.name
        else:
            text, filename = data["text"], data["filename"]
        version = services.blueprint_import(text=text, filename=filename, actor=request.user)
        return Response(BlueprintImportResultSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Export a blueprint",
        description="A blueprint version as a YAML file (the latest unless `version` says which); importing it "
                    "again gives the same version.\n\n"
                    "**Who:** anyone signed in.\n\n"
                    "**Errors:** 400 when `version` is not a whole number; 404 when there is no such blueprint or "
                    "version.",
        parameters=[OpenApiParameter("version", OpenApiTypes.INT, description="Defaults to the latest.")],
        responses={(200, "application/yaml"): OpenApiResponse(OpenApiTypes.STR, description="The YAML file.")},
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def export(self, request, pk=None):
        raw = request.query_params.get("version")
        number = None
        if raw is not None:
            if not raw.isdigit() or not 1 <= int(raw) <= 2**31:
                return Response({"code": "invalid", "detail": "version must be a whole number from 1.",
                                 "errors": {"version": ["Must be a whole number from 1."]}}, status=400)
            number = int(raw)
        version = self._version(self.get_object(), number)
        response = HttpResponse(services.blueprint_export(blueprint_version=version), content_type="application/yaml")
        response["Content-Disposition"] = f'attachment; filename="{version.blueprint.slug}-v{version.number}.yaml"'
        return response

    @extend_schema(
        summary="Suggest a blueprint and parameters",
        description="From a free-text `objective`, the configured language model suggests a blueprint (its latest "
                    "version), a mission name and parameter values; only a listed blueprint and parameters it "
                    "declares, with values of their type, are kept (`dropped` lists the rest). Nothing is launched: "
                    "launch with POST /api/v1/blueprints/{id}/launch/ (or POST /api/v1/missions/ with `blueprint`) "
                    "giving `suggestion` (the id answered here), and the mission takes the exchange and its tokens. "
                    "Each request is stored for you (staff see them in the admin) and counts against your budget "
                    "over the last 24 hours (GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY, "
                    "GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY).\n\n"
                    "The answer is 200 in every case, with `rule_based` (the blueprints the objective's words point "
                    "to) and, when the model gave no usable suggestion, `suggestion` null and `outcome` and `detail` "
                    "saying why: `off` when no model is configured (nothing asked, nothing stored), `budget` when "
                    "your daily budget is spent (nothing asked; the refusal is stored), or the fault.\n\n"
                    "**Who:** as for launching: staff, or people with the permission to add missions; others get "
                    "403.\n\n"
                    "**Errors:** 400 when `objective` is missing, blank or too long.",
        request=BlueprintSuggestRequestSerializer, responses={200: BlueprintSuggestionSerializer},
    )
    @action(detail=False, methods=["post"], filterset_class=None)
    def suggest(self, request):
        if not can_create_missions(request.user):
            raise PermissionDenied("You may not launch missions: it needs staff or the 'add mission' permission.")
        serializer = BlueprintSuggestRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        objective = serializer.validated_data["objective"]
        model_on = llm.settings().enabled
        asked = suggest_launch(objective, list(blueprint_latest_versions()), user=request.user) if model_on else None
        proposed = asked if asked is not None and asked.version is not None else None
        if asked is None:
            outcome = "off"
            detail = ("No language model is configured (GENESIS_LLM_BASE_URL and GENESIS_LLM_MODEL): see the "
                      "rule-based suggestions.")
        else:
            outcome, detail = asked.outcome, asked.detail
        answer = {
            "model": model_on, "outcome": outcome, "detail": detail,
            "suggestion": proposed.record.pk if proposed is not None and proposed.record is not None else None,
            "blueprint": proposed.version.blueprint.slug if proposed is not None and proposed.version else None,
            "version": proposed.version.number if proposed is not None and proposed.version else None,
            "name": proposed.name if proposed is not None else "",
            "params": proposed.params if proposed is not None else {},
            "dropped": proposed.dropped if proposed is not None else [],
            "reasoning": proposed.reasoning if proposed is not None else "",
            "rule_based": blueprints_suggested_for(objective),
        }
        return Response(BlueprintSuggestionSerializer(answer).data)

    @extend_schema(
        summary="Launch a mission from a blueprint",
        description="Create a mission from a blueprint version in one step: its phases, its tasks with their owners "
                    "and acceptance criteria, and their dependencies. The mission is a draft, or launched at once "
                    "with `start: true`. `params` fill the blueprint's parameters (connections by name); you become "
                    "the Mission Owner unless `owner` names someone else. `spec_file` (multipart) or `spec` (text) "
                    "attaches the mission's spec file, validated before anything is written; its connections fill "
                    "the source and target connection parameters left empty. `from_mission` reuses another "
                    "mission's approved mapping specs. `suggestion` is the id of the language model's suggestion "
                    "this launch follows (POST /api/v1/blueprints/suggest/): the mission takes its exchange and "
                    "tokens.\n\n"
                    "**Who:** staff, or people with the permission to add missions; naming another owner needs "
                    "staff.\n\n"
                    "**Errors:** 400 names each field or parameter at fault (`params.<name>`: a missing or unknown "
                    "parameter, a connection you may not give; `spec_file`: a spec file that is invalid, with each "
                    "path at fault, too large, or missing when the blueprint requires one; `suggestion`: a suggestion "
                    "you did not ask for, one already launched from, or a refused one, and nothing is created); 403 "
                    "when you may not "
                    "launch missions; 404 when there is no such blueprint or version.",
        request=BlueprintLaunchSerializer, responses={201: MissionSerializer},
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def launch(self, request, pk=None):
        blueprint = self.get_object()
        serializer = BlueprintLaunchSerializer(data=request.data)
        return launch_response(self, request, blueprint, serializer)


def launch_response(view, request, blueprint, serializer) -> Response:
    """Launch a mission from a blueprint with a parsed launch body (this endpoint's, or the missions endpoint's
    with ``blueprint``) through the one launch verb, and answer with the mission."""
    if not can_create_missions(request.user):
        raise PermissionDenied("You may not launch missions: it needs staff or the 'add mission' permission.")
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    owner = data.get("owner") or request.user
    if owner.pk != request.user.pk and not request.user.is_staff:
        raise PermissionDenied("Only staff may launch a mission owned by someone else.")
    versions = blueprint.versions.order_by("-number")
    number = data.get("version")
    version = versions.filter(number=number).first() if number else versions.first()
    if version is None:
        raise NotFound(f"Blueprint {blueprint.slug} has no version {number}.")
    # Defaults and context (e.g. the only source connection, the spec file's connections) are the verb's.
    mission = mission_workflows.mission_create_from_blueprint(
        version=version, name=data["name"], objective=data["objective"], owner=owner, mode=data["mode"],
        params=data["params"], actor=request.user, start=data["start"], spec_file=serializer.spec_upload(),
        from_mission=data.get("from_mission"), suggestion=data.get("suggestion"),
    )
    mission.refresh_from_db()
    missions_with_progress([mission])
    context = {**view.get_serializer_context(), "roles": roles_map(request.user, [mission])}
    return Response(MissionSerializer(mission, context=context).data, status=status.HTTP_201_CREATED)


class CheckEvaluationFilterSet(django_filters.FilterSet):
    mission = IdFilter(field_name="mission_id")
    phase = IdFilter(field_name="phase_id")
    task = IdFilter(field_name="task_id")
    scope = django_filters.ChoiceFilter(choices=CheckScope.choices)
    passed = StrictBooleanFilter()
    ordering = django_filters.OrderingFilter(fields=[("evaluated_at", "evaluated_at"), ("id", "id")])

    class Meta:
        model = CheckEvaluation
        fields = ["mission", "phase", "task", "scope", "passed", "ordering"]


@extend_schema_view(
    list=extend_schema(
        summary="List check results",
        description="Results of your missions' checks (a phase's exit criteria, a task's acceptance criteria, the "
                    "mission's success criteria), newest first, with their evidence and any waiver. Filter by "
                    "`mission`, `phase`, `task`, `scope` and `passed`.\n\n"
                    "**Who:** anyone signed in; you see your missions' results.\n\n"
                    "**Errors:** 400 names a query parameter that is unknown or malformed.",
    ),
    retrieve=extend_schema(
        summary="Read a check result",
        description="One check result: what was checked, whether it passed, its evidence, and who waived it and "
                    "why.\n\n"
                    "**Who:** anyone with a role in the mission, and staff.\n\n"
                    "**Errors:** 404 when there is no such result or it belongs to a mission you hold no role in.",
    ),
)
class CheckEvaluationViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    serializer_class = CheckEvaluationSerializer
    permission_classes = [RolePermission]
    filterset_class = CheckEvaluationFilterSet

    def get_queryset(self):
        queryset = CheckEvaluation.objects.select_related("waived_by")
        return restrict_to_visible(queryset, self.request.user, "mission")

    def permission_target(self, evaluation, rule):
        return evaluation.mission

    @extend_schema(
        summary="Waive a failed check",
        description="Accept a failed exit check of a phase, with a `reason` that is recorded; when every failure of "
                    "the phase is waived (or passes) the next phase opens.\n\n"
                    "**Who:** the Mission Owner, and staff; others with a role get 403.\n\n"
                    "**Errors:** 400 when the reason is missing, the check passed, it is not an exit check, it was "
                    "waived already, or the phase's checks ran again since (waive the latest result).",
        request=WaiveSerializer, responses={200: CheckEvaluationSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def waive(self, request, pk=None):
        evaluation = self.get_object()
        serializer = WaiveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check_workflows.check_waive(result=evaluation, actor=request.user, reason=serializer.validated_data["reason"])
        fresh = self.get_queryset().get(pk=evaluation.pk)
        return Response(CheckEvaluationSerializer(fresh, context=self.get_serializer_context()).data)
