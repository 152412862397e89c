"""Mapping spec version and environment representations."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Connection
from genesis.api.fields import TEXT_MAX, IdRelatedField, NameRelatedField
from missions.models import Mission
from pipeline.models import Environment, MappingSpecVersion


class MappingSpecVersionSerializer(serializers.ModelSerializer):
    mission = serializers.IntegerField(source="spec.mission_id", read_only=True)
    target_table = serializers.CharField(source="spec.target_table", read_only=True)
    created_by_agent = serializers.SlugRelatedField(slug_field="name", read_only=True,
                                                    help_text="The agent (by name) that proposed this version.")
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              help_text="Who approved or rejected it (by username).")

    class Meta:
        model = MappingSpecVersion
        fields = ["id", "mission", "spec", "target_table", "number", "status", "content", "sql", "dialect", "lineage",
                  "diff", "feedback", "task", "run", "created_by_agent", "decided_by", "decided_at", "created_at"]
        read_only_fields = fields


class MappingApproveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX, default="")


class MappingRejectSerializer(serializers.Serializer):
    feedback = serializers.CharField(max_length=TEXT_MAX, help_text="What is wrong; the mapping re-runs with it.")


@extend_schema_field(serializers.ChoiceField(choices=Environment.Name.choices))
class EnvironmentNameField(serializers.CharField):
    """The environment's name as text: ``environment_set`` refuses any other (400 naming ``name``), so the API
    and the admin give the same answer."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 16)
        super().__init__(**kwargs)


class EnvironmentSerializer(serializers.ModelSerializer):
    mission = IdRelatedField(queryset=Mission.objects.none())
    name = EnvironmentNameField()
    target = NameRelatedField(slug_field="name", queryset=Connection.objects.all(),
                              help_text="The connection (by name) the mission's dbt project builds into here.")
    description = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True, default="")

    class Meta:
        model = Environment
        fields = ["id", "mission", "name", "target", "description", "last_built_at", "last_revision", "created_at"]
        read_only_fields = ["last_built_at", "last_revision", "created_at"]
        validators = []  # posting a name the mission already has changes that environment (environment_set)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        user = request.user if request is not None else None
        if user is not None and user.is_authenticated:
            # Only missions the caller can see: another mission's id is "does not exist".
            self.fields["mission"].queryset = Mission.objects.visible_to(user)


class EnvironmentBuildSerializer(serializers.Serializer):
    """The answer to a build request: the job is queued, not done (see the mission's history for its outcome)."""

    environment = EnvironmentSerializer(read_only=True)
    message = serializers.CharField(read_only=True)
