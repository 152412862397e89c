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
from tasks.api.selectors import restrict_to_visible


@extend_schema_view(
    list=extend_schema(summary="Versions of the missions' mapping specs (one spec per target table)."),
    retrieve=extend_schema(summary="One mapping spec version: column mappings, SQL, lineage and diff."),
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

    @extend_schema(summary="Approve this version (Mission Owner); later steps use it.",
                   request=MappingApproveSerializer, responses={200: MappingSpecVersionSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def approve(self, request, pk=None):
        return self._decide(request, services.mapping_spec_approve, MappingApproveSerializer, "note")

    @extend_schema(summary="Reject this version with feedback (Mission Owner); the mapping re-runs with it.",
                   request=MappingRejectSerializer, responses={200: MappingSpecVersionSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def reject(self, request, pk=None):
        return self._decide(request, services.mapping_spec_reject, MappingRejectSerializer, "feedback")


@extend_schema_view(
    list=extend_schema(summary="Environments (dev, test, stage, prod) of the missions the caller can see: the target "
                               "connection each builds the mission's dbt project into, and what was last built there."),
    retrieve=extend_schema(summary="One environment: its target connection, last build time and dbt revision."),
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
        summary="Define the mission's environment (Mission Owner): its name and the connection it builds into. "
                "Posting a name the mission already has changes that environment (200) instead of adding one (201).",
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
        summary="Build the mission's approved dbt project in this environment's target, as a background job "
                "(Mission Owner or Task Owner; prod: Mission Owner). The request is recorded in the mission's "
                "history; the build's outcome follows there (refresh.succeeded or refresh.failed).",
        request=None, responses={202: EnvironmentBuildSerializer},
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def build(self, request, pk=None):
        environment = self.get_object()
        dbt_services.environment_build_request(environment=environment, actor=request.user)
        body = {"environment": environment,
                "message": f"Build of the dbt project in {environment.name} ({environment.target.name}) requested; "
                           "it runs in the background and its outcome is recorded in the mission's history."}
        return Response(EnvironmentBuildSerializer(body, context=self.get_serializer_context()).data,
                        status=status.HTTP_202_ACCEPTED)
