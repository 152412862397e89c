"""Mapping spec versions and environments: read within the missions the caller can see, changed by the
mission's roles."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet, ReadOnlyModelViewSet

from genesis.api.filters import KnownQueryParametersMixin
from genesis.api.permissions import RolePermission, require
from missions.models import restrict_to_visible
from pipeline import selectors, services
from pipeline.api.serializers import (
    EnvironmentBuildSerializer,
    EnvironmentSerializer,
    MappingApproveSerializer,
    MappingRejectSerializer,
    MappingSpecVersionSerializer,
)
from pipeline.dbt import services as dbt_services
from pipeline.filtersets import EnvironmentFilterSet, MappingSpecVersionFilterSet
from pipeline.models import Environment, MappingSpecVersion
from workflows.environments import environment_build


@extend_schema_view(
    list=extend_schema(
        summary="List mapping specs",
        description="The versions of your missions' mapping specs (one spec per target table): proposed by the "
                    "mapping agent, then approved, rejected or superseded. Filter by `mission`, `target_table` and "
                    "`status`.\n\n"
                    "**Who:** anyone signed in; you see your missions' specs.\n\n"
                    "**Errors:** 400 names a query parameter that is unknown or malformed.",
    ),
    retrieve=extend_schema(
        summary="Read a mapping spec version",
        description="One version: its column mappings, SQL, lineage, the diff from the version before, and the "
                    "feedback it was rejected with.\n\n"
                    "**Who:** anyone with a role in the mission, and staff.\n\n"
                    "**Errors:** 404 when there is no such version or it belongs to a mission you hold no role in.",
    ),
)
class MappingSpecVersionViewSet(KnownQueryParametersMixin, ReadOnlyModelViewSet):
    serializer_class = MappingSpecVersionSerializer
    permission_classes = [RolePermission]
    filterset_class = MappingSpecVersionFilterSet

    def get_queryset(self):
        queryset = MappingSpecVersion.objects.select_related("spec", "created_by_agent", "decided_by")
        return restrict_to_visible(queryset, self.request.user, "spec__mission")

    def permission_target(self, version, rule):
        return version.spec.mission

    def _decide(self, request, function, body, field):
        version = self.get_object()
        serializer = body(data=request.data)
        serializer.is_valid(raise_exception=True)
        function(version=version, actor=request.user, **{field: serializer.validated_data[field]})
        fresh = self.get_queryset().get(pk=version.pk)
        return Response(MappingSpecVersionSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Approve a mapping spec version",
        description="Accept this version: the later steps (the dbt build, checks) use it, and an earlier approved "
                    "version of the same spec is superseded. An optional `note` is recorded.\n\n"
                    "**Who:** the Mission Owner, and staff; others with a role get 403.\n\n"
                    "**Errors:** 409 when the version's status does not allow it (the answer names it).",
        request=MappingApproveSerializer, responses={200: MappingSpecVersionSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def approve(self, request, pk=None):
        return self._decide(request, services.mapping_spec_approve, MappingApproveSerializer, "note")

    @extend_schema(
        summary="Reject a mapping spec version",
        description="Refuse this version with `feedback` saying what is wrong: the mapping agent runs again with "
                    "it and proposes a new version.\n\n"
                    "**Who:** the Mission Owner, and staff; others with a role get 403.\n\n"
                    "**Errors:** 400 when the feedback is missing or blank; 409 when the version's status does not "
                    "allow it.",
        request=MappingRejectSerializer, responses={200: MappingSpecVersionSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def reject(self, request, pk=None):
        return self._decide(request, services.mapping_spec_reject, MappingRejectSerializer, "feedback")


@extend_schema_view(
    list=extend_schema(
        summary="List environments",
        description="Your missions' environments (dev, test, stage, prod): the target connection (by name) each "
                    "builds the mission's dbt project into, and when and which revision was last built there. Filter "
                    "by `mission`, `name` and `target`.\n\n"
                    "**Who:** anyone signed in; you see your missions' environments.\n\n"
                    "**Errors:** 400 names a query parameter that is unknown or malformed.",
    ),
    retrieve=extend_schema(
        summary="Read an environment",
        description="One environment: its target connection, last build time and dbt revision.\n\n"
                    "**Who:** anyone with a role in the mission, and staff.\n\n"
                    "**Errors:** 404 when there is no such environment or it belongs to a mission you hold no role "
                    "in.",
    ),
)
class EnvironmentViewSet(
    KnownQueryParametersMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    GenericViewSet,
):
    serializer_class = EnvironmentSerializer
    permission_classes = [RolePermission]
    filterset_class = EnvironmentFilterSet
    http_method_names = ["get", "post", "head", "options"]
    # Stakeholders never build; which of the Mission Owner and Task Owners may build in prod the service decides.
    write_rules = {"build": "work"}

    def get_queryset(self):
        return restrict_to_visible(selectors.environments(), self.request.user, "mission")

    def permission_target(self, environment, rule):
        return environment.mission

    @extend_schema(
        summary="Define an environment",
        description="Give a mission an environment (`dev`, `test`, `stage` or `prod`) and the connection (by name) "
                    "it builds into: 201 for a new one; posting a name the mission already has changes that "
                    "environment and answers 200. The connection is given to the mission if you may give it.\n\n"
                    "**Who:** the Mission Owner, and staff; others with a role get 403.\n\n"
                    "**Errors:** 400 names each field at fault (another environment name, an unknown connection or "
                    "one you may not give, a mission you cannot see).",
        request=EnvironmentSerializer, responses={201: EnvironmentSerializer, 200: EnvironmentSerializer},
    )
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        mission = data["mission"]
        require("manage", request.user, mission)
        existed = Environment.objects.filter(mission=mission, name=data["name"]).exists()
        environment = dbt_services.environment_set(mission=mission, name=data["name"], target=data["target"],
                                                   description=data["description"], actor=request.user)
        fresh = self.get_queryset().get(pk=environment.pk)
        return Response(EnvironmentSerializer(fresh, context=self.get_serializer_context()).data,
                        status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    @extend_schema(
        summary="Build into an environment",
        description="Build the mission's approved dbt project into this environment's target, as a background job: "
                    "the answer (202) means queued, not done. The request is recorded in the mission's history, and "
                    "the outcome follows there (`refresh.succeeded` or `refresh.failed`).\n\n"
                    "**Who:** the Mission Owner or a Task Owner, and staff; in `prod`, the Mission Owner only. "
                    "Stakeholders get 403.\n\n"
                    "**Errors:** 403 as above; 404 when there is no such environment or you hold no role in its "
                    "mission.",
        request=None, responses={202: EnvironmentBuildSerializer},
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def build(self, request, pk=None):
        environment = self.get_object()
        environment_build(environment=environment, actor=request.user)
        body = {"environment": environment,
                "message": f"Build of the dbt project in {environment.name} ({environment.target.name}) requested; "
                           "it runs in the background and its outcome is recorded in the mission's history."}
        return Response(EnvironmentBuildSerializer(body, context=self.get_serializer_context()).data,
                        status=status.HTTP_202_ACCEPTED)
