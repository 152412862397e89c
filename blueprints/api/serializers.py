"""Blueprint representations: the templates, their versions, imports and launches, and check results."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from rest_framework import serializers

from blueprints.models import Blueprint, BlueprintVersion, CheckEvaluation
from genesis.api.fields import TEXT_MAX, FileNameField, NameRelatedField, ObjectField
from genesis.uploads import validate_upload_size
from missions.choices import MissionMode


class BlueprintVersionSummarySerializer(serializers.ModelSerializer):
    source_name = FileNameField(read_only=True, help_text="The name of the file the version was loaded from.")

    class Meta:
        model = BlueprintVersion
        fields = ["number", "name", "source_name", "created_at"]
        read_only_fields = fields


class BlueprintSerializer(serializers.ModelSerializer):
    latest_version = serializers.IntegerField(source="latest_number", read_only=True, allow_null=True)
    version_count = serializers.IntegerField(read_only=True)
    mission_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Blueprint
        fields = ["id", "slug", "name", "description", "tags", "latest_version", "version_count", "mission_count",
                  "created_at", "updated_at"]
        read_only_fields = fields


class BlueprintDetailSerializer(BlueprintSerializer):
    versions = BlueprintVersionSummarySerializer(many=True, read_only=True)
    parameters = serializers.SerializerMethodField(help_text="The latest version's declared parameters.")

    class Meta(BlueprintSerializer.Meta):
        fields = [*BlueprintSerializer.Meta.fields, "versions", "parameters"]
        read_only_fields = fields

    def get_parameters(self, obj) -> list[dict]:
        versions = list(obj.versions.all())
        return versions[0].parameters if versions else []


class BlueprintImportSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, validators=[validate_upload_size], help_text=(
        f"The blueprint YAML file (multipart); at most GENESIS_MAX_UPLOAD_BYTES ({settings.GENESIS_MAX_UPLOAD_BYTES:,} "
        f"bytes here) and GENESIS_YAML_MAX_BYTES ({settings.GENESIS_YAML_MAX_BYTES:,})."))
    text = serializers.CharField(required=False, max_length=1_000_000, help_text="Or the YAML as text.")
    filename = serializers.CharField(required=False, max_length=255, default="upload.yaml")

    def validate(self, data):
        if ("file" in data) == ("text" in data):
            raise serializers.ValidationError({"file": ["Give the blueprint as a file or as text, exactly one."]})
        return data


class BlueprintImportResultSerializer(serializers.Serializer):
    blueprint = serializers.IntegerField(source="blueprint_id")
    slug = serializers.CharField(source="blueprint.slug")
    number = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when the same content was already stored.")


class BlueprintLaunchSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1, help_text="Defaults to the latest version.")
    name = serializers.CharField(max_length=200)
    objective = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True, default="",
                                      help_text="Defaults to the blueprint's objective, with the parameters put in.")
    owner = NameRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                             required=False, help_text="The Mission Owner (by username); defaults to the caller.")
    mode = serializers.ChoiceField(choices=MissionMode.choices, default=MissionMode.STEP)
    params = ObjectField(required=False, default=dict, help_text="Parameter values by name.")
    start = serializers.BooleanField(default=False, help_text="Also launch the mission (dispatch its ready tasks).")
    spec_file = serializers.FileField(required=False, help_text=(
        "The mission's spec file (YAML, multipart), validated before anything is written; at most "
        f"GENESIS_MAX_UPLOAD_BYTES ({settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes here). Required by a blueprint that "
        "declares requires: [spec_file], e.g. build-marts."))
    spec = serializers.CharField(required=False, max_length=1_000_000, trim_whitespace=False,
                                 help_text="Or the spec file as text (JSON bodies).")
    from_mission = serializers.CharField(required=False, max_length=200, help_text=(
        "A mission (id or exact name) whose approved mapping specs the new mission's mapping tasks verify against "
        "the current source instead of mapping again."))
    suggestion = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1, help_text=(
        "The id of the language model's launch suggestion this launch follows (POST /api/v1/blueprints/suggest/): "
        "the mission takes its exchange and its tokens. Only the person who asked may give it, and only once."))

    def validate(self, data):
        if "spec_file" in data and "spec" in data:
            raise serializers.ValidationError({"spec_file": ["Give the spec file as a file or as text, not both."]})
        return data

    def spec_upload(self):
        """The spec file as an uploaded file (the text one wrapped as a file), or None."""
        data = self.validated_data
        if data.get("spec_file") is not None:
            return data["spec_file"]
        if data.get("spec"):
            return ContentFile(data["spec"].encode("utf-8"), name="spec.yml")
        return None


class _TextOnlyField(serializers.CharField):
    """Text as sent: DRF would read a number as its digits, and a model asked about "0" costs tokens for nothing."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class BlueprintSuggestRequestSerializer(serializers.Serializer):
    objective = _TextOnlyField(max_length=TEXT_MAX, help_text=(
        "What the mission should achieve, in your words (an outcome, e.g. \"two years of weather observations "
        "loaded daily from BRONZE\")."))


class RuleBasedSuggestionSerializer(serializers.Serializer):
    """A blueprint the objective's words point to (no model involved), as the launch page ranks them."""

    blueprint = serializers.CharField(source="blueprint.slug", help_text="The blueprint's slug.")
    version = serializers.IntegerField(source="version.number", help_text="Its latest version.")
    name = serializers.CharField(source="version.name")
    score = serializers.FloatField(help_text="How well the objective's words match (higher fits better).")
    matched = serializers.ListField(child=serializers.CharField(), help_text="The objective's words that matched.")


class BlueprintSuggestionSerializer(serializers.Serializer):
    """What came of asking for a launch suggestion: the model's checked suggestion, or why there is none, and the
    rule-based suggestions from the objective's words in every case."""

    model = serializers.BooleanField(help_text="Whether a language model is configured on this platform.")
    outcome = serializers.CharField(help_text=(
        "ok; off (no model configured, nothing asked); budget (your daily budget is spent, nothing asked); "
        "not_listed (the model named no listed blueprint); or the fault (timeout, rate_limited, server_error, "
        "malformed, schema, ...)."))
    detail = serializers.CharField(allow_blank=True, help_text="Why there is no suggestion, in words.")
    suggestion = serializers.IntegerField(allow_null=True, help_text=(
        "The stored suggestion's id, to give as `suggestion` when you launch from it; null when nothing was "
        "suggested."))
    blueprint = serializers.CharField(allow_null=True, help_text="The suggested blueprint's slug.")
    version = serializers.IntegerField(allow_null=True, help_text="Its latest version (what a launch uses).")
    name = serializers.CharField(allow_blank=True, help_text="A suggested mission name.")
    params = ObjectField(help_text="Suggested parameter values, each checked against the blueprint's declaration.")
    dropped = serializers.ListField(child=serializers.CharField(), help_text=(
        "Parameters the model gave that the blueprint does not declare or whose value did not fit: left out."))
    reasoning = serializers.CharField(allow_blank=True, help_text="The model's reasoning, as it gave it.")
    rule_based = RuleBasedSuggestionSerializer(many=True, help_text=(
        "Blueprints the objective's words point to, best first (no model involved)."))


class MissionLaunchSerializer(BlueprintLaunchSerializer):
    """POST /api/v1/missions/ with a blueprint: the blueprint's launch, addressed by slug or id."""

    blueprint = serializers.CharField(max_length=100, help_text="The blueprint (slug or id) to launch the mission "
                                                                "from.")


class CheckEvaluationSerializer(serializers.ModelSerializer):
    waived_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                             help_text="Who waived the failure (by username).")
    waived = serializers.SerializerMethodField()

    class Meta:
        model = CheckEvaluation
        fields = ["id", "mission", "phase", "task", "run", "scope", "criterion_index", "round", "check_type",
                  "description", "params", "passed", "message", "evidence", "evaluated_at", "waived", "waived_at",
                  "waived_by", "waiver_reason"]
        read_only_fields = fields

    def get_waived(self, obj) -> bool:
        return obj.waived_at is not None


class WaiveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why the failed check is accepted.")
