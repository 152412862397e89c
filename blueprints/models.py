from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from blueprints.choices import CheckScope


class ImmutableRow(models.Model):
    """Base for template rows: once stored they are never changed (a change is a new blueprint version)."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError(
                f"A stored {self._meta.verbose_name} is immutable: load a changed file to make a new version."
            )
        super().save(*args, **kwargs)


class Blueprint(models.Model):
    """A reusable mission template, identified by its slug; its content lives in numbered versions."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def latest_version(self) -> BlueprintVersion | None:
        return self.versions.order_by("-number").first()


class BlueprintVersion(ImmutableRow):
    """One immutable version of a blueprint: its parameters, phases, actions and criteria as loaded."""

    blueprint = models.ForeignKey(Blueprint, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    parameters = models.JSONField(default=list, blank=True, help_text="Declared parameters: name, type, default…")
    objective = models.TextField(blank=True, help_text="The mission objective template.")
    scope = models.TextField(blank=True, help_text="The mission scope template.")
    success_criteria = models.JSONField(default=list, blank=True)
    requires = models.JSONField(default=list, blank=True,
                                help_text="What a launch must bring besides parameters, e.g. spec_file.")
    source_name = models.CharField(max_length=255, blank=True, help_text="The file it was loaded from.")
    source_text = models.TextField(blank=True, help_text="The file as loaded.")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the normalized content.")
    search_text = models.TextField(blank=True, help_text="Words the suggestion matches an objective against.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["blueprint_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["blueprint", "number"], name="blueprint_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.blueprint.slug} v{self.number}"


class PhaseTemplate(ImmutableRow):
    """A phase of a blueprint version: its place in the order and the exit criteria that close it."""

    version = models.ForeignKey(BlueprintVersion, on_delete=models.CASCADE, related_name="phases")
    order = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    exit_criteria = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["version_id", "order"]
        constraints = [models.UniqueConstraint(fields=["version", "order"], name="phase_template_order_unique")]

    def __str__(self) -> str:
        return f"{self.order}. {self.name}"


class ActionTemplate(ImmutableRow):
    """An action of a blueprint phase: becomes one task, with its owner, criteria, config and dependencies."""

    phase = models.ForeignKey(PhaseTemplate, on_delete=models.CASCADE, related_name="actions")
    position = models.PositiveIntegerField()
    key = models.SlugField(max_length=64)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.CharField(max_length=100, help_text="An agent kind, or a role: mission_owner, task_owner.")
    acceptance_criteria = models.JSONField(default=list, blank=True)
    config = models.JSONField(default=dict, blank=True)
    depends_on = models.JSONField(default=list, blank=True, help_text="Keys of the actions it waits for.")
    timeout_seconds = models.PositiveIntegerField(default=3600)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    for_each = models.CharField(max_length=20, blank=True,
                                help_text="'target': one task per target of the mission's spec file.")

    class Meta:
        ordering = ["phase_id", "position"]

    def __str__(self) -> str:
        return f"{self.key}: {self.title}"


class MissionOrigin(models.Model):
    """Which blueprint version a mission was launched from, and with which parameter values."""

    mission = models.OneToOneField("missions.Mission", on_delete=models.CASCADE, related_name="origin")
    blueprint_version = models.ForeignKey(BlueprintVersion, on_delete=models.PROTECT, related_name="origins")
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.mission} from {self.blueprint_version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("A mission's origin is a record: it cannot be changed.")
        super().save(*args, **kwargs)


class CheckEvaluation(models.Model):
    """One evaluation of one check (exit, acceptance or success criterion) with its evidence and any waiver."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="check_evaluations")
    phase = models.ForeignKey(
        "tasks.Phase", null=True, blank=True, on_delete=models.CASCADE, related_name="check_evaluations"
    )
    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="check_evaluations"
    )
    run = models.ForeignKey(
        "tasks.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="check_evaluations"
    )
    scope = models.CharField(max_length=16, choices=CheckScope.choices)
    criterion_index = models.PositiveIntegerField(help_text="Position of the criterion in its list.")
    round = models.PositiveIntegerField(default=1, help_text="Which evaluation of this list of criteria.")
    check_type = models.CharField(max_length=50)
    description = models.CharField(max_length=300, blank=True)
    params = models.JSONField(default=dict, blank=True)
    passed = models.BooleanField()
    message = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    evaluated_at = models.DateTimeField(auto_now_add=True)
    waived_at = models.DateTimeField(null=True, blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    waiver_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        indexes = [
            models.Index(fields=["phase", "round", "criterion_index"], name="check_eval_phase_idx"),
            models.Index(fields=["task", "evaluated_at"], name="check_eval_task_idx"),
            models.Index(fields=["mission", "scope", "evaluated_at"], name="check_eval_mission_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.check_type}: {self.outcome}"

    @property
    def waived(self) -> bool:
        return self.waived_at is not None

    @property
    def outcome(self) -> str:
        if self.passed:
            return "passed"
        return "failed (waived)" if self.waived else "failed"


class LaunchSuggestion(models.Model):
    """One language-model suggestion asked for on the launch page: who asked, the exchange (prompt, response, model,
    tokens, latency, outcome) and the mission launched from it, if any. Asked before any mission exists, so it is
    its own record: it counts against the person's daily budget, and against the mission's once one is launched
    from it. A request refused because the person's daily budget was spent is stored too (``BUDGET_SPENT``, no
    call made, no tokens), so staff see who hit the limit and when."""

    BUDGET_SPENT = "budget"  # the outcome of a request refused before any call: the person's daily budget spent

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="launch_suggestions")
    objective = models.TextField(blank=True)
    outcome = models.CharField(max_length=20, help_text="ok, or why not (timeout, rate_limited, schema, …).")
    model = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    blueprint_version = models.ForeignKey(BlueprintVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="+", help_text="The blueprint suggested, when one checked out.")
    exchange = models.JSONField(default=dict, blank=True, help_text="The prompt, the response and their checks.")
    mission = models.ForeignKey("missions.Mission", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="launch_suggestions", help_text="The mission launched from it.")
    launched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "created_at"], name="launch_suggestion_user_idx")]

    def __str__(self) -> str:
        return f"suggestion for {self.user} at {self.created_at:%Y-%m-%d %H:%M}: {self.outcome}"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
