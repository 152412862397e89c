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


_STAFF_WRITES = "**Who:** staff; anyone else signed in gets 403."


@extend_schema_view(
    list=extend_schema(
        summary="List connections",
        description="The named databases agents read from and build into, by name, with their engine and purpose. "
                    "A secret is never shown (`has_secret` says whether one is stored), and the location (a file on "
                    "the server, or a DSN) only to staff. Filter by `engine`, `purpose` and `name` (contains).\n\n"
                    "**Who:** anyone signed in.\n\n"
                    "**Errors:** 400 names a query parameter that is unknown or malformed.",
    ),
    retrieve=extend_schema(
        summary="Read a connection",
        description="One connection; the location only for staff, the secret never.\n\n"
                    "**Who:** anyone signed in.\n\n**Errors:** 404 when there is no such connection.",
    ),
    create=extend_schema(
        summary="Register a connection",
        description="A new named connection: SQLite by file, PostgreSQL by DSN. A password written inside a DSN is "
                    "moved to the write-only secret. Giving it to missions is done in the admin (its access list) "
                    f"or by launching with it.\n\n{_STAFF_WRITES}\n\n"
                    "**Errors:** 400 names each field at fault (a name in use, a location the engine cannot use, "
                    "the platform's own database).",
    ),
    partial_update=extend_schema(
        summary="Edit a connection",
        description=f"Change a connection's fields; send `secret` to replace it.\n\n{_STAFF_WRITES}\n\n"
                    "**Errors:** 400 names each field at fault; 404 when there is no such connection.",
    ),
    destroy=extend_schema(
        summary="Delete a connection",
        description=f"Remove a connection no mission uses.\n\n{_STAFF_WRITES}\n\n"
                    "**Errors:** 409 (code `conflict`) while a mission or environment still uses it; 404 when there "
                    "is no such connection.",
    ),
)
class ConnectionViewSet(_ValidatedModelViewSet):
    queryset = Connection.objects.all()
    serializer_class = ConnectionSerializer
    filterset_class = ConnectionFilterSet


@extend_schema_view(
    list=extend_schema(
        summary="List agents",
        description="The data agents that can own tasks, by name, with their kind (what they do) and whether they "
                    "are enabled. Filter by `kind`, `enabled` and `name` (contains).\n\n"
                    "**Who:** anyone signed in.\n\n"
                    "**Errors:** 400 names a query parameter that is unknown or malformed.",
    ),
    retrieve=extend_schema(
        summary="Read an agent",
        description="One agent and its configuration.\n\n**Who:** anyone signed in.\n\n"
                    "**Errors:** 404 when there is no such agent.",
    ),
    create=extend_schema(
        summary="Register an agent",
        description="A new named agent of a known kind, with its configuration; tasks name it as `owner_agent`."
                    f"\n\n{_STAFF_WRITES}\n\n"
                    "**Errors:** 400 names each field at fault (a name in use, an unknown kind).",
    ),
    partial_update=extend_schema(
        summary="Edit an agent",
        description=f"Change an agent's description, configuration or whether it is enabled.\n\n{_STAFF_WRITES}"
                    "\n\n**Errors:** 400 names each field at fault; 404 when there is no such agent.",
    ),
    destroy=extend_schema(
        summary="Delete an agent",
        description=f"Remove an agent that owns no task and did nothing recorded.\n\n{_STAFF_WRITES}\n\n"
                    "**Errors:** 409 (code `conflict`) while tasks or history still name it; 404 when there is no "
                    "such agent.",
    ),
)
class AgentViewSet(_ValidatedModelViewSet):
    queryset = Agent.objects.all()
    serializer_class = AgentSerializer
    filterset_class = AgentFilterSet
