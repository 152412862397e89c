"""Statuses of tasks, runs and phases, artifact kinds, actor kinds, and the transition tables."""

from django.db import models


class TaskStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    READY = "ready", "Ready"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING_INPUT = "waiting_input", "Waiting for input"
    WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    WAITING = "waiting", "Waiting"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost"
    # A waiting run ends when a person decides: its proposal rejected, or its question answered (a new attempt
    # then carries the feedback or the answer).
    REJECTED = "rejected", "Rejected"
    ANSWERED = "answered", "Answered"


class QuestionStatus(models.TextChoices):
    OPEN = "open", "Open"
    ANSWERED = "answered", "Answered"
    CANCELLED = "cancelled", "Cancelled"


class NotificationChannel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class PhaseStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    OPEN = "open", "Open"
    CHECKING = "checking", "Checking"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    WAIVED = "waived", "Waived"


class ArtifactKind(models.TextChoices):
    SPEC = "spec", "Spec"
    SQL = "sql", "SQL"
    DOC = "doc", "Document"
    LOG = "log", "Log"
    REPORT = "report", "Report"
    DATA = "data", "Data"
    LINK = "link", "Link"


T = TaskStatus
TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    T.PENDING: frozenset({T.READY, T.CANCELLED, T.SKIPPED}),
    T.READY: frozenset({T.QUEUED, T.RUNNING, T.WAITING_APPROVAL, T.PENDING, T.CANCELLED, T.SKIPPED}),
    T.QUEUED: frozenset({T.RUNNING, T.READY, T.PENDING, T.FAILED, T.CANCELLED}),
    T.RUNNING: frozenset(
        {T.DONE, T.FAILED, T.WAITING_INPUT, T.WAITING_APPROVAL, T.QUEUED, T.READY, T.CANCELLED}
    ),
    T.WAITING_INPUT: frozenset({T.QUEUED, T.READY, T.RUNNING, T.FAILED, T.CANCELLED}),
    T.WAITING_APPROVAL: frozenset({T.DONE, T.READY, T.QUEUED, T.FAILED, T.CANCELLED}),
    # Finished work re-opens when a person rejects it or something upstream of it.
    T.DONE: frozenset({T.PENDING, T.READY, T.QUEUED}),
    T.FAILED: frozenset({T.READY, T.QUEUED, T.PENDING, T.CANCELLED, T.SKIPPED}),
    T.CANCELLED: frozenset({T.PENDING, T.READY}),
    T.SKIPPED: frozenset({T.PENDING, T.READY}),
}
TASK_FINISHED = frozenset({T.DONE, T.SKIPPED})
TASK_ACTIVE = frozenset({T.QUEUED, T.RUNNING})
del T

R = RunStatus
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    R.QUEUED: frozenset({R.RUNNING, R.CANCELLED, R.LOST, R.FAILED}),
    R.RUNNING: frozenset({R.SUCCEEDED, R.FAILED, R.WAITING, R.CANCELLED, R.LOST}),
    R.WAITING: frozenset({R.SUCCEEDED, R.FAILED, R.CANCELLED, R.REJECTED, R.ANSWERED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
    R.CANCELLED: frozenset(),
    R.LOST: frozenset(),
    R.REJECTED: frozenset(),
    R.ANSWERED: frozenset(),
}
RUN_ACTIVE = frozenset({R.QUEUED, R.RUNNING})
del R

P = PhaseStatus
PHASE_TRANSITIONS: dict[str, frozenset[str]] = {
    P.PENDING: frozenset({P.OPEN}),
    P.OPEN: frozenset({P.CHECKING, P.PASSED, P.PENDING}),
    P.CHECKING: frozenset({P.PASSED, P.FAILED, P.OPEN}),
    P.FAILED: frozenset({P.CHECKING, P.WAIVED, P.OPEN}),
    P.PASSED: frozenset({P.OPEN, P.CHECKING}),
    P.WAIVED: frozenset({P.OPEN, P.CHECKING}),
}
del P
