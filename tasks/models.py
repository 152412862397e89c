from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from genesis.records import ImmutableQuerySet
from genesis.uploads import GeneratedName, validate_upload_size
from tasks.choices import (
    ArtifactKind,
    NotificationChannel,
    NotificationStatus,
    PhaseStatus,
    QuestionStatus,
    RunStatus,
    TaskStatus,
)


def validate_criteria_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str | dict) for item in value):
        raise ValidationError("Acceptance criteria must be a list of statements or check definitions.")


class Phase(models.Model):
    """A stage of one mission (from a blueprint, or added by hand); its exit criteria gate the next stage."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="phases")
    order = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=PhaseStatus.choices, default=PhaseStatus.PENDING)
    exit_criteria = models.JSONField(default=list, blank=True, help_text="Checks that must pass to leave.")

    class Meta:
        ordering = ["mission_id", "order"]
        constraints = [models.UniqueConstraint(fields=["mission", "order"], name="phase_order_unique")]

    def __str__(self) -> str:
        return f"{self.order}. {self.name}"


class Task(models.Model):
    """A small, testable step of a mission with acceptance criteria and exactly one owner (person or agent)."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.PROTECT, related_name="tasks")
    phase = models.ForeignKey(Phase, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks")
    key = models.SlugField(max_length=64, help_text="Short, unique within the mission, e.g. 'validate'.")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    acceptance_criteria = models.JSONField(default=list, blank=True, validators=[validate_criteria_list])
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_tasks"
    )
    owner_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="owned_tasks"
    )
    status = models.CharField(max_length=20, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    config = models.JSONField(default=dict, blank=True, help_text="Parameters handed to the agent.")
    max_attempts = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    timeout_seconds = models.PositiveIntegerField(default=3600, validators=[MinValueValidator(1)])
    position = models.PositiveIntegerField(default=0)
    # Attempts up to this number do not count against ``max_attempts``: a person retried, rejected or answered.
    attempt_base = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    depends_on = models.ManyToManyField(
        "self", through="Dependency", symmetrical=False, related_name="dependents", blank=True
    )

    class Meta:
        ordering = ["mission_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["mission", "key"], name="task_key_unique_in_mission"),
            models.CheckConstraint(
                condition=(Q(owner_user__isnull=False) & Q(owner_agent__isnull=True))
                | (Q(owner_user__isnull=True) & Q(owner_agent__isnull=False)),
                name="task_exactly_one_owner",
                violation_error_message="A task has exactly one owner: a person or an agent, not both.",
            ),
            models.CheckConstraint(condition=Q(max_attempts__gte=1), name="task_max_attempts_positive"),
            models.CheckConstraint(condition=Q(timeout_seconds__gte=1), name="task_timeout_positive"),
        ]
        indexes = [
            # What the dispatcher reads: a mission's tasks by status, and ready tasks everywhere.
            models.Index(fields=["mission", "status"], name="task_mission_status_idx"),
            models.Index(fields=["status", "mission"], name="task_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.title}"

    @property
    def owner(self):
        return self.owner_user or self.owner_agent

    @property
    def owned_by_agent(self) -> bool:
        return self.owner_agent_id is not None

    def clean(self) -> None:
        if (self.owner_user_id is None) == (self.owner_agent_id is None):
            raise ValidationError(
                {"owner_user": "Choose exactly one owner: a person or an agent.",
                 "owner_agent": "Choose exactly one owner: a person or an agent."}
            )
        if self.phase_id and self.mission_id and self.phase.mission_id != self.mission_id:
            raise ValidationError({"phase": "The phase belongs to another mission."})


class Dependency(models.Model):
    """An edge of a mission's task graph: ``task`` cannot start before ``depends_on`` is done."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="dependency_links")
    depends_on = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="dependent_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "dependencies"
        constraints = [
            models.UniqueConstraint(fields=["task", "depends_on"], name="dependency_pair_unique"),
            models.CheckConstraint(
                condition=~Q(task=models.F("depends_on")),
                name="dependency_not_self",
                violation_error_message="A task cannot depend on itself.",
            ),
        ]
        indexes = [models.Index(fields=["depends_on", "task"], name="dependency_reverse_idx")]

    def __str__(self) -> str:
        return f"{self.task.key} after {self.depends_on.key}"

    def clean(self) -> None:
        if self.task_id and self.depends_on_id:
            if self.task_id == self.depends_on_id:
                raise ValidationError({"depends_on": "A task cannot depend on itself."})
            if self.task.mission_id != self.depends_on.mission_id:
                raise ValidationError({"depends_on": "A task can only depend on a task of the same mission."})


class Run(models.Model):
    """One attempt at executing a task, with its lease, log and result."""

    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="runs")
    attempt = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    worker = models.CharField(max_length=200, blank=True, help_text="Identity of the worker holding it.")
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(
        null=True, blank=True,
        help_text="Running: when the worker's lease ends unless a heartbeat renews it. Queued: until when the "
                  "worker that took it in a message of several runs holds it (after that the sweep hands it on).")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # Dispatch bookkeeping: a retry waits until ``available_at`` (backoff); ``enqueued_at`` says when it was last
    # handed to the queue, so the sweep can hand on what was never (or long ago) enqueued.
    available_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task_id", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["task", "attempt"], name="run_attempt_unique"),
            # At most one live run per task: the database itself forbids running a task twice at once.
            models.UniqueConstraint(
                fields=["task"], condition=Q(status__in=["queued", "running"]), name="run_one_active_per_task"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="run_status_lease_idx"),
            models.Index(fields=["status", "enqueued_at"], name="run_status_enqueued_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task.key} attempt {self.attempt}"


class Artifact(models.Model):
    """An output of a mission (SQL, spec, log, report, data or link), optionally of a task and run."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.PROTECT, related_name="artifacts")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.PROTECT, related_name="artifacts")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.PROTECT, related_name="artifacts")
    kind = models.CharField(max_length=16, choices=ArtifactKind.choices)
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    file = models.FileField(
        upload_to=GeneratedName("artifacts"), blank=True, max_length=300, validators=[validate_upload_size]
    )
    url = models.URLField(blank=True, max_length=1000)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    content_type = models.CharField(max_length=100, blank=True)
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["mission_id", "name", "-version"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(file="") & ~Q(url="")) | (~Q(file="") & Q(url="")),
                name="artifact_file_xor_url",
                violation_error_message="An artifact is either a file or a URL, exactly one.",
            ),
            models.UniqueConstraint(fields=["mission", "task", "name", "version"], name="artifact_version_unique"),
        ]
        indexes = [models.Index(fields=["mission", "kind"], name="artifact_mission_kind_idx")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("A saved artifact is immutable: store a new version instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Artifacts are kept: a mission's outputs cannot be deleted.")


class Question(models.Model):
    """A question an agent asked a person during a run; the task waits until it is answered."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.PROTECT, related_name="questions")
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="questions")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.PROTECT, related_name="questions")
    addressed_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="questions_received"
    )
    text = models.TextField()
    options = models.JSONField(default=list, blank=True)
    default = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=QuestionStatus.choices, default=QuestionStatus.OPEN)
    answer = models.TextField(blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["addressed_to", "status"], name="question_inbox_idx"),
            models.Index(fields=["task", "status"], name="question_task_idx"),
        ]

    def __str__(self) -> str:
        return self.text[:80]

    @property
    def allows_free_answer(self) -> bool:
        """Whether an answer other than the offered options is accepted (a mapping question takes any source
        column, a ``sql: ...`` expression, a relationship or ``none``)."""
        return bool((self.context or {}).get("free_answer"))


class Notification(models.Model):
    """One message to one escalation channel of a mission (an email address or the webhook), and its delivery."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.PROTECT, related_name="notifications")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications")
    event = models.CharField(max_length=64)
    channel = models.CharField(max_length=16, choices=NotificationChannel.choices)
    target = models.CharField(max_length=1000, help_text="The email address or webhook URL.")
    subject = models.CharField(max_length=300)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["mission", "created_at"], name="notification_mission_idx")]

    def __str__(self) -> str:
        return f"{self.channel} to {self.target}: {self.subject}"
