from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from genesis.uploads import GeneratedName, validate_upload_size
from missions.choices import MissionMode, MissionStatus, Role, SignoffDecision


def _validate_text_list(value, *, what: str) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str | dict) for item in value):
        raise ValidationError(f"{what} must be a list of statements (text) or check definitions.")


def validate_success_criteria(value) -> None:
    _validate_text_list(value, what="Success criteria")


def validate_email_list(value) -> None:
    if not isinstance(value, list):
        raise ValidationError("Escalation emails must be a list of email addresses.")
    for address in value:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"{address!r} is not a valid email address.") from None


def restrict_to_visible(queryset: models.QuerySet, user, mission_path: str) -> models.QuerySet:
    """The one visibility rule, for missions and every row that belongs to one (``mission_path`` leads from the
    row to its mission's id): staff see all, others what belongs to missions they hold a role in. A semi-join on the
    user's memberships: no row repeats, no DISTINCT, so counting and paging stay cheap."""
    if not user.is_authenticated:
        return queryset.none()
    if user.is_staff:
        return queryset
    return queryset.filter(**{f"{mission_path}__in": Membership.objects.filter(user=user).values("mission_id")})


class MissionQuerySet(models.QuerySet):
    def visible_to(self, user) -> MissionQuerySet:
        """Missions the user may read: staff see all, others those they hold a role in (``restrict_to_visible``)."""
        return restrict_to_visible(self, user, "pk")


class Mission(models.Model):
    """An outcome a data team wants, owned by a person and broken into tasks."""

    name = models.CharField(max_length=200)
    objective = models.TextField(help_text="The outcome, in outcome language: what will be true when done.")
    scope = models.TextField(blank=True, help_text="What is in and out of scope: tables, systems, limits.")
    success_criteria = models.JSONField(
        default=list, blank=True, validators=[validate_success_criteria],
        help_text="A list of statements; later each may name a check that must pass.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_missions",
        help_text="The Mission Owner: the person accountable for the outcome.",
    )
    status = models.CharField(max_length=16, choices=MissionStatus.choices, default=MissionStatus.DRAFT)
    mode = models.CharField(max_length=16, choices=MissionMode.choices, default=MissionMode.STEP)
    spec_file = models.FileField(
        upload_to=GeneratedName("specs"), blank=True, validators=[validate_upload_size],
        help_text="The mission's spec (e.g. project.yml), stored under a generated name.",
    )
    source_connection = models.ForeignKey(
        "agents.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    target_connection = models.ForeignKey(
        "agents.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    docs_index = models.CharField(
        max_length=200, blank=True, help_text="Optional reference to a docs index the agents may search."
    )
    escalation_emails = models.JSONField(default=list, blank=True, validators=[validate_email_list])
    escalation_webhook = models.URLField(blank=True, help_text="Slack-compatible webhook URL.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = MissionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"], name="mission_status_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status in {MissionStatus.CLOSED, MissionStatus.CANCELLED}


class Membership(models.Model):
    """A person's role in one mission: Mission Owner, Task Owner or Stakeholder."""

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    signoff_required = models.BooleanField(
        default=False, help_text="A stakeholder whose approval the mission needs before its owner can close it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mission", "user"], name="membership_one_role_per_user"),
        ]
        indexes = [models.Index(fields=["user", "role"], name="membership_user_role_idx")]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} of {self.mission}"


class MissionSignoff(models.Model):
    """A stakeholder's sign-off on a mission's delivered outputs: an approval or a concern, with a note."""

    mission = models.ForeignKey(Mission, on_delete=models.PROTECT, related_name="signoffs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="mission_signoffs")
    decision = models.CharField(max_length=16, choices=SignoffDecision.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["mission", "created_at"], name="signoff_mission_time_idx")]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_decision_display()} on {self.mission}"
