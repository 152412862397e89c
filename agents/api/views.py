"""Connections and agents: shared by every mission, read by anyone signed in, changed by staff."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.viewsets import ModelViewSet, ReadOnlyModelViewSet

from agents import services
from agents.api.serializers import (
    AgentSerializer,
    ConnectionSerializer,
    MappingApproveSerializer,
    MappingRejectSerializer,
    MappingSpecVersionSerializer,
)
from agents.filtersets import AgentFilterSet, ConnectionFilterSet, MappingSpecVersionFilterSet
from agents.models import Agent, Connection, MappingSpecVersion
from genesis.api.permissions import RolePermission, StaffWritesPermission
from tasks.api.selectors import restrict_to_visible


class _ValidatedModelViewSet(ModelViewSet):
    """Writes go through the model's own validation (``full_clean``), so the API and the admin agree."""

    permission_classes = [StaffWritesPermission]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer):
        instance = self.queryset.model(**serializer.validated_data)
        instance.full_clean()
        instance.save()
        serializer.instance = instance

    def perform_update(self, serializer):
        instance = serializer.instance
        for field, value in serializer.validated_data.items():
            setattr(instance, field, value)
        instance.full_clean()
        instance.save()


@extend_schema_view(
    list=extend_schema(summary="Data connections (secrets never shown)."),
    create=extend_schema(summary="Register a connection (staff). A password inside a DSN is moved to the secret."),
)
class ConnectionViewSet(_ValidatedModelViewSet):
    queryset = Connection.objects.all()
    serializer_class = ConnectionSerializer
    filterset_class = ConnectionFilterSet


@extend_schema_view(
    list=extend_schema(summary="Data agents that can own tasks."),
    create=extend_schema(summary="Register an agent (staff)."),
)
class AgentViewSet(_ValidatedModelViewSet):
    queryset = Agent.objects.all()
    serializer_class = AgentSerializer
    filterset_class = AgentFilterSet


@extend_schema_view(
    list=extend_schema(summary="Versions of the missions' mapping specs (one spec per target table)."),
    retrieve=extend_schema(summary="One mapping spec version: column mappings, SQL, lineage and diff."),
)
class MappingSpecVersionViewSet(ReadOnlyModelViewSet):
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
