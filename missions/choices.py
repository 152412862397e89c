"""Mission statuses, modes and roles, and the one table of allowed mission transitions."""

from django.db import models


class MissionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CLOSED = "closed", "Closed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class MissionMode(models.TextChoices):
    STEP = "step", "Step by step"
    CONTINUOUS = "continuous", "Continuous"


class Role(models.TextChoices):
    MISSION_OWNER = "mission_owner", "Mission Owner"
    TASK_OWNER = "task_owner", "Task Owner"
    STAKEHOLDER = "stakeholder", "Stakeholder"


class SignoffDecision(models.TextChoices):
    APPROVE = "approve", "Approved"
    CONCERN = "concern", "Raised a concern"


S = MissionStatus
MISSION_TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.ACTIVE, S.CANCELLED}),
    S.ACTIVE: frozenset({S.PAUSED, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.PAUSED: frozenset({S.ACTIVE, S.FAILED, S.CANCELLED}),
    # A completed mission re-opens when a person rejects finished work; the owner's sign-off closes it.
    S.COMPLETED: frozenset({S.CLOSED, S.ACTIVE}),
    S.FAILED: frozenset({S.ACTIVE, S.CANCELLED, S.CLOSED}),
    S.CANCELLED: frozenset(),
    S.CLOSED: frozenset(),
}
# A stakeholder signs off on delivered outputs: once the mission has completed (or failed), before it is closed.
SIGNOFF_STATUSES = frozenset({S.COMPLETED, S.FAILED})
del S
