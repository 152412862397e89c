"""Mission API representations: what a client sends to create or edit a mission, and what it reads back."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from agents.models import Connection
from genesis.api.fields import TEXT_MAX, CriteriaField, EmailListField, NameRelatedField
from missions.choices import Role, SignoffDecision
from missions.models import Membership, Mission, MissionSignoff, validate_email_list, validate_success_criteria


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.IntegerField()


class MissionSerializer(serializers.ModelSerializer):
    owner = NameRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), required=False,
        help_text="The Mission Owner (by username); defaults to the caller.",
    )
    objective = serializers.CharField(max_length=TEXT_MAX)
    scope = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    success_criteria = CriteriaField(required=False, validators=[validate_success_criteria])
    escalation_emails = EmailListField(required=False, validators=[validate_email_list])
    source_connection = NameRelatedField(
        slug_field="name", queryset=Connection.objects.all(), required=False, allow_null=True,
        help_text="The connection (by name) the mission's sources are read from.",
    )
    target_connection = NameRelatedField(
        slug_field="name", queryset=Connection.objects.all(), required=False, allow_null=True,
        help_text="The connection (by name) the mission's targets are built into.",
    )
    spec_file = serializers.SerializerMethodField(
        help_text="Where to download the spec file (GET /api/v1/missions/{id}/spec-file/, for those who may read the "
                  "mission), or null when there is none.")
    progress = serializers.SerializerMethodField()
    my_role = serializers.SerializerMethodField(help_text="The caller's role in this mission, if any.")

    class Meta:
        model = Mission
        fields = [
            "id", "name", "objective", "scope", "success_criteria", "owner", "status", "mode", "spec_file",
            "source_connection", "target_connection", "docs_index", "escalation_emails", "escalation_webhook",
            "created_at", "updated_at", "launched_at", "completed_at", "closed_at", "progress", "my_role",
        ]
        read_only_fields = ["status", "created_at", "updated_at", "launched_at", "completed_at", "closed_at"]

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_spec_file(self, obj) -> str | None:
        if not obj.spec_file:
            return None
        return reverse("mission-spec-file", kwargs={"pk": obj.pk}, request=self.context.get("request"))

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, obj):
        progress = getattr(obj, "progress", None)
        if progress is None:
            return None
        return {"done": progress.done, "total": progress.total, "percent": progress.percent}

    def get_my_role(self, obj) -> str | None:
        roles = self.context.get("roles")
        if roles is None:
            return None
        return roles.get(obj.pk)


class MembershipSerializer(serializers.ModelSerializer):
    user = NameRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                            help_text="The person (by username).")
    role = serializers.ChoiceField(choices=Role.choices)
    signoff_required = serializers.BooleanField(
        required=False, default=False,
        help_text="A stakeholder whose approval is required before the Mission Owner can close the mission.",
    )

    class Meta:
        model = Membership
        fields = ["user", "role", "signoff_required", "created_at"]
        read_only_fields = ["created_at"]


class SignoffSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                        help_text="The stakeholder (by username).")
    decision = serializers.ChoiceField(choices=SignoffDecision.choices,
                                       help_text="`approve` the delivered outputs, or raise a `concern`.")
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="",
                                 help_text="What the stakeholder says; required with a concern.")

    class Meta:
        model = MissionSignoff
        fields = ["id", "user", "decision", "note", "created_at"]
        read_only_fields = ["id", "user", "created_at"]


class MemberRemoveSerializer(serializers.Serializer):
    user = NameRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                            help_text="The person (by username).")


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 1, "description": "A task's id."},
                                {"type": "string", "maxLength": 64, "description": "A task's key in the mission."}]})
class TaskRefField(serializers.Field):
    """A task named by its id (a JSON number) or by its key in the mission (a JSON string)."""

    default_error_messages = {
        "invalid": "Name a task by its id (a number) or its key (a string).",
        "blank": "A task key cannot be blank.",
        "too_long": "A task key has at most 64 characters.",
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        if isinstance(data, int):
            if data < 1:
                self.fail("invalid")
            return data
        key = data.strip()
        if not key:
            self.fail("blank")
        if len(key) > 64:
            self.fail("too_long")
        if "\x00" in key:
            self.fail("invalid")
        return key

    def to_representation(self, value):
        return value


class ApproveAllSerializer(serializers.Serializer):
    tasks = serializers.ListField(
        child=TaskRefField(), required=False, allow_empty=False, max_length=500,
        help_text="The tasks to approve, by id or key, in the order they are reported. Leave it out to approve every "
                  "task of the mission waiting for approval that you may approve.")
    note = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX, default="",
                                 help_text="Recorded with each approval.")


class ApprovalOutcomeSerializer(serializers.Serializer):
    task = serializers.IntegerField(allow_null=True, help_text="The task's id; null when no task answers to it.")
    key = serializers.CharField(help_text="The task's key (or `#id` as asked, when no task answers to the id).")
    result = serializers.ChoiceField(choices=["approved", "refused"])
    reason = serializers.CharField(allow_blank=True, help_text="Why it was refused; empty when approved.")
    code = serializers.CharField(allow_blank=True, help_text="The refusal's code (`invalid_transition`, `forbidden`, "
                                                             "`not_found`); empty when approved.")


class ApproveAllResultSerializer(serializers.Serializer):
    approved = serializers.IntegerField(help_text="How many tasks were approved.")
    refused = serializers.IntegerField(help_text="How many were not.")
    results = ApprovalOutcomeSerializer(many=True, help_text="One entry per task, in the order asked.")
