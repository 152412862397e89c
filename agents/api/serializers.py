"""Connection and agent representations. A connection's secret is write-only: it is never sent back."""

from __future__ import annotations

from rest_framework import serializers

from agents.models import Agent, Connection
from genesis.api.fields import TEXT_MAX, ObjectField, StaffOnlyCharField


class ConnectionSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=500, style={"input_type": "password"},
        help_text="Password or token; stored, never shown back (see has_secret).",
    )
    has_secret = serializers.BooleanField(read_only=True)
    location = StaffOnlyCharField(
        max_length=500,
        help_text="Where the database is: a SQLite file on the server or a PostgreSQL DSN without its password. Staff "
                  "only: everyone else reads null.",
    )
    description = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)

    class Meta:
        model = Connection
        fields = ["id", "name", "engine", "location", "secret", "has_secret", "purpose", "description",
                  "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class AgentSerializer(serializers.ModelSerializer):
    config = ObjectField(required=False)
    description = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)

    class Meta:
        model = Agent
        fields = ["id", "name", "kind", "description", "enabled", "config", "created_at"]
        read_only_fields = ["created_at"]
