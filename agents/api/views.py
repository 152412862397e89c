"""Connections and agents: shared by every mission, read by anyone signed in, changed by staff."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.viewsets import ModelViewSet

from agents.api.serializers import AgentSerializer, ConnectionSerializer
from agents.filtersets import AgentFilterSet, ConnectionFilterSet
from agents.models import Agent, Connection
from genesis.api.filters import KnownQueryParametersMixin
from genesis.api.permissions import StaffWritesPermission


class _ValidatedModelViewSet(KnownQueryParametersMixin, ModelViewSet):
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
