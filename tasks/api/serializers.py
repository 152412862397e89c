"""Task, dependency, run, artifact, history, phase and question representations for the API."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from agents.models import Agent
from genesis.api.fields import TEXT_MAX, CriteriaField, IdRelatedField, NameRelatedField, ObjectField
from history.choices import ActorKind
from history.models import HistoryEntry
from missions.models import Mission
from tasks.api import selectors
from tasks.choices import ArtifactKind
from tasks.models import Artifact, Dependency, Phase, Question, Run, Task, validate_criteria_list


def _user(request):
    return request.user if request is not None else None


class TaskSerializer(serializers.ModelSerializer):
    mission = IdRelatedField(queryset=Mission.objects.none())
    phase = IdRelatedField(queryset=Phase.objects.none(), required=False, allow_null=True)
    description = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    acceptance_criteria = CriteriaField(required=False, validators=[validate_criteria_list])
    config = ObjectField(required=False)
    owner_user = NameRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), required=False, allow_null=True,
        help_text="The person (by username) who owns the task: exactly one of owner_user and owner_agent.",
    )
    owner_agent = NameRelatedField(
        slug_field="name", queryset=Agent.objects.all(), required=False, allow_null=True,
        help_text="The agent (by name) that owns the task.",
    )
    depends_on = serializers.SerializerMethodField(help_text="Ids of the tasks this one waits for.")

    class Meta:
        model = Task
        fields = [
            "id", "mission", "phase", "key", "title", "description", "acceptance_criteria", "owner_user",
            "owner_agent", "status", "config", "max_attempts", "timeout_seconds", "position", "depends_on",
            "created_at", "updated_at",
        ]
        read_only_fields = ["status", "created_at", "updated_at"]
        extra_kwargs = {"max_attempts": {"min_value": 1, "max_value": 100},
                        "timeout_seconds": {"min_value": 1, "max_value": 7 * 24 * 3600},
                        "position": {"max_value": 2_000_000_000}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        user = _user(self.context.get("request"))
        if user is not None and user.is_authenticated:
            # Only missions and phases the caller can see: another mission's id is "does not exist". Found by source:
            # the todos alias calls the mission field "project".
            by_source = {field.source: field for field in self.fields.values()}
            by_source["mission"].queryset = Mission.objects.visible_to(user)
            by_source["phase"].queryset = selectors.phases_visible(user)

    def get_depends_on(self, obj) -> list[int]:
        return [edge.depends_on_id for edge in obj.dependency_links.all()]


class TodoSerializer(TaskSerializer):
    """A task as the ``todos`` alias shows it: what the tasks call its mission is its project, in and out."""

    mission = None
    project = IdRelatedField(source="mission", queryset=Mission.objects.none(),
                             help_text="The id of the project (a mission) the todo belongs to.")
    depends_on = serializers.SerializerMethodField(help_text="Ids of the todos this one waits for.")

    class Meta(TaskSerializer.Meta):
        fields = ["project" if name == "mission" else name for name in TaskSerializer.Meta.fields]


class DependencySerializer(serializers.ModelSerializer):
    task = IdRelatedField(queryset=Task.objects.none(), help_text="The task that waits.")
    depends_on = IdRelatedField(queryset=Task.objects.none(), help_text="Its prerequisite.")
    task_key = serializers.CharField(source="task.key", read_only=True)
    depends_on_key = serializers.CharField(source="depends_on.key", read_only=True)
    mission = serializers.IntegerField(source="task.mission_id", read_only=True)

    class Meta:
        model = Dependency
        fields = ["id", "mission", "task", "task_key", "depends_on", "depends_on_key", "created_at"]
        read_only_fields = ["created_at"]
        validators = []  # the service names duplicates and cycles itself

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        user = _user(self.context.get("request"))
        if user is not None and user.is_authenticated:
            visible = Task.objects.filter(mission__in=Mission.objects.visible_to(user))
            self.fields["task"].queryset = visible
            self.fields["depends_on"].queryset = visible


class RunSerializer(serializers.ModelSerializer):
    mission = serializers.IntegerField(source="task.mission_id", read_only=True)
    task_key = serializers.CharField(source="task.key", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id", "mission", "task", "task_key", "attempt", "status", "worker", "lease_expires_at", "heartbeat_at",
            "created_at", "started_at", "finished_at", "error", "result",
        ]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "log"]
        read_only_fields = fields


def _actor_kind(user_id, agent_id) -> str:
    return ActorKind.USER if user_id else ActorKind.AGENT if agent_id else ActorKind.SYSTEM


def _actor_label(user, agent) -> str | None:
    if user is not None:
        return user.get_username()
    if agent is not None:
        return agent.name
    return None


class ArtifactSerializer(serializers.ModelSerializer):
    mission = IdRelatedField(queryset=Mission.objects.none())
    task = IdRelatedField(queryset=Task.objects.none(), required=False, allow_null=True)
    run = IdRelatedField(queryset=Run.objects.none(), required=False, allow_null=True)
    kind = serializers.ChoiceField(choices=ArtifactKind.choices)
    name = serializers.CharField(max_length=200, required=False, help_text="Defaults to the uploaded file's name.")
    file = serializers.FileField(
        write_only=True, required=False, allow_empty_file=True, max_length=300,
        help_text=f"The file (multipart); at most GENESIS_MAX_UPLOAD_BYTES ({settings.GENESIS_MAX_UPLOAD_BYTES:,} "
        "bytes here). Give a file or a url, exactly one.",
    )
    url = serializers.URLField(required=False, allow_blank=True, max_length=1000)
    created_by = serializers.SerializerMethodField(
        help_text="Who stored it: a person's username or an agent's name (see created_by_kind); null for the system.")
    created_by_kind = serializers.SerializerMethodField(help_text="user, agent or system.")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = [
            "id", "mission", "task", "run", "kind", "name", "version", "file", "url", "sha256", "size",
            "content_type", "created_by", "created_by_kind", "created_at", "download_url",
        ]
        read_only_fields = ["version", "sha256", "size", "content_type", "created_at"]
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        user = _user(self.context.get("request"))
        if user is not None and user.is_authenticated:
            self.fields["mission"].queryset = Mission.objects.visible_to(user)
            self.fields["task"].queryset = Task.objects.filter(mission__in=Mission.objects.visible_to(user))
            self.fields["run"].queryset = Run.objects.filter(task__mission__in=Mission.objects.visible_to(user))

    def get_created_by(self, obj) -> str | None:
        return _actor_label(obj.created_by_user, obj.created_by_agent)

    def get_created_by_kind(self, obj) -> str:
        return _actor_kind(obj.created_by_user_id, obj.created_by_agent_id)

    @extend_schema_field(OpenApiTypes.URI)
    def get_download_url(self, obj):
        if not obj.file:
            return None
        return reverse("artifact-download", kwargs={"pk": obj.pk}, request=self.context.get("request"))


class HistoryEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField(
        help_text="Who did it: a person's username or an agent's name (see actor_kind); null for the system.")
    task_key = serializers.SerializerMethodField()

    class Meta:
        model = HistoryEntry
        fields = [
            "id", "mission", "task", "task_key", "run", "actor_kind", "actor", "event", "from_status", "to_status",
            "message", "data", "created_at",
        ]
        read_only_fields = fields

    def get_actor(self, obj) -> str | None:
        return _actor_label(obj.actor_user, obj.actor_agent)

    def get_task_key(self, obj) -> str | None:
        return obj.task.key if obj.task_id else None


class PhaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Phase
        fields = ["id", "mission", "order", "name", "description", "status", "exit_criteria"]
        read_only_fields = fields


class QuestionSerializer(serializers.ModelSerializer):
    addressed_to = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                                help_text="The person asked (by username).")
    answered_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                               help_text="Who answered (by username).")
    task_key = serializers.CharField(source="task.key", read_only=True)

    class Meta:
        model = Question
        fields = [
            "id", "mission", "task", "task_key", "run", "addressed_to", "text", "options", "default", "context",
            "status", "answer", "answered_by", "answered_at", "created_at",
        ]
        read_only_fields = fields


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "object", "properties": {"sql": {"type": "string"}},
                                                     "required": ["sql"], "additionalProperties": False}]})
class AnswerField(serializers.Field):
    """An answer as text, or ``{"sql": "..."}`` for a SQL expression over source columns (carried as ``sql: ...``)."""

    default_error_messages = {"invalid": 'An answer is text or {{"sql": "..."}}.'}

    def to_internal_value(self, data):
        if isinstance(data, dict) and set(data) == {"sql"} and isinstance(data["sql"], str) and data["sql"].strip():
            data = f"sql: {data['sql'].strip()}"
        if not isinstance(data, str) or not data.strip():
            self.fail("invalid")
        if len(data) > TEXT_MAX:
            raise serializers.ValidationError(f"Ensure this field has no more than {TEXT_MAX} characters.")
        return data

    def to_representation(self, value):
        return value


class AnswerSerializer(serializers.Serializer):
    answer = AnswerField(help_text='Text (an option, TABLE.COLUMN, "TABLE_A.col = TABLE_B.col", none) or '
                                   '{"sql": "SUM(Fine.AmountCents) / 100.0"}.')


class ApproveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX, default="")


class RejectSerializer(serializers.Serializer):
    feedback = serializers.CharField(max_length=TEXT_MAX, help_text="What is wrong; the next attempt sees it.")


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
