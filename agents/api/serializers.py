"""Connection and agent representations. A connection's secret is write-only: it is never sent back."""

from __future__ import annotations

from rest_framework import serializers

from agents.models import Agent, Connection, MappingSpecVersion
from genesis.api.fields import TEXT_MAX, ObjectField


class ConnectionSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=500, style={"input_type": "password"},
        help_text="Password or token; stored, never shown back (see has_secret).",
    )
    has_secret = serializers.BooleanField(read_only=True)
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


class MappingSpecVersionSerializer(serializers.ModelSerializer):
    mission = serializers.IntegerField(source="spec.mission_id", read_only=True)
    target_table = serializers.CharField(source="spec.target_table", read_only=True)
    created_by_agent = serializers.SlugRelatedField(slug_field="name", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = MappingSpecVersion
        fields = ["id", "mission", "spec", "target_table", "number", "status", "content", "sql", "dialect", "lineage",
                  "diff", "feedback", "task", "run", "created_by_agent", "decided_by", "decided_at", "created_at"]
        read_only_fields = fields


class MappingApproveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX, default="")


class MappingRejectSerializer(serializers.Serializer):
    feedback = serializers.CharField(max_length=TEXT_MAX, help_text="What is wrong; the mapping re-runs with it.")
