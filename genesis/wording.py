"""Words for people in place of the keys the code uses: a check type (``all_tasks_done``), a history event
(``notification.sent``) or a status (``waiting_approval``) is shown on the pages as a short sentence.

Known keys have their own sentence; any other key still reads as words (``docs_index.document_added`` becomes
"Docs index: document added"), so a new event or check is never shown raw. Templates use the ``sentence``
filter (``{% load wording %}``)."""

from __future__ import annotations

import re

KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")

CHECKS = {
    "all_tasks_done": "All tasks in scope are done",
    "artifact_exists": "The expected artifacts are attached",
    "approval_recorded": "A person approved the work",
    "sql_assert": "A query on the data gives the expected answer",
    "table_exists": "The table exists",
    "row_count": "The table holds the expected number of rows",
    "dbt_succeeded": "The dbt build succeeded",
}

STATUSES = {
    "waiting_input": "waiting for an answer",
    "waiting_approval": "waiting for approval",
    "failed_waived": "failed (waived)",
    "step_paused": "paused after a step",
    "checks_failed": "exit checks failed",
}

EVENTS = {
    "mission.created": "Mission created",
    "mission.from_blueprint": "Mission planned from its blueprint",
    "mission.updated": "Mission details changed",
    "mission.active": "Mission started",
    "mission.paused": "Mission paused",
    "mission.step_paused": "Mission paused after a step (step mode)",
    "mission.completed": "Mission completed",
    "mission.closed": "Mission closed",
    "mission.failed": "Mission failed",
    "mission.cancelled": "Mission cancelled",
    "membership.set": "Role given",
    "membership.removed": "Role removed",
    "phase.created": "Phase added",
    "phase.open": "Phase opened",
    "phase.checking": "Phase exit checks running",
    "phase.passed": "Phase passed its exit checks",
    "phase.failed": "Phase failed its exit checks",
    "phase.waived": "Phase failures waived",
    "phase.checks_failed": "Exit checks failed: the Mission Owner decides",
    "task.created": "Task added",
    "task.updated": "Task changed",
    "task.pending": "Task waits on its dependencies",
    "task.ready": "Task ready to run",
    "task.queued": "Task queued",
    "task.running": "Task running",
    "task.waiting_input": "Task asks a question",
    "task.waiting_approval": "Task waits for approval",
    "task.approved": "Task approved",
    "task.rejected": "Task sent back with feedback",
    "task.done": "Task done",
    "task.failed": "Task failed",
    "task.cancelled": "Task cancelled",
    "task.skipped": "Task skipped",
    "task.downstream_reopened": "Later tasks reopened",
    "run.created": "Run started",
    "run.queued": "Run queued",
    "run.running": "Run running",
    "run.succeeded": "Run succeeded",
    "run.failed": "Run failed",
    "run.waiting": "Run waits for a person",
    "run.cancelled": "Run cancelled",
    "run.lost": "Run lost (its worker stopped answering)",
    "run.retry_scheduled": "Retry scheduled",
    "run.claim_refused": "A worker's claim was refused",
    "run.stale_result_refused": "A late result was refused",
    "run.worker_stopped": "Worker stopped",
    "run.db_reconnected": "Worker reconnected to the database to record the run",
    "run.db_rerun": "Attempt run again after the database connection was lost",
    "question.asked": "Question asked",
    "question.open": "Question asked",
    "question.answered": "Question answered",
    "question.cancelled": "Question withdrawn",
    "notification.pending": "Notification waiting to be sent",
    "notification.queued": "Notification queued",
    "notification.sent": "Notification sent",
    "notification.failed": "Notification could not be sent",
    "check.passed": "Check passed",
    "check.failed": "Check failed",
    "check.failed_waived": "Check failed (waived)",
    "check.waived": "Check failure waived",
    "artifact.created": "Artifact attached",
    "note.added": "Note added",
    "dependency.added": "Dependency added",
    "dependency.removed": "Dependency removed",
    "connection.granted": "Connection granted",
    "connection.read_refused": "Reading a connection was refused",
    "environment.created": "Environment added",
    "environment.build_requested": "Environment build requested",
    "mapping_spec.proposed": "Mapping spec proposed",
    "mapping_spec.approved": "Mapping spec approved",
    "mapping_spec.rejected": "Mapping spec sent back",
    "schedule.created": "Refresh scheduled",
    "refresh.started": "Refresh started",
    "refresh.succeeded": "Refresh succeeded",
    "refresh.failed": "Refresh failed",
    "refresh.checked": "Refresh checked",
    "refresh.check_failed": "Refresh checks failed",
    "docs_index.document_added": "Document added to the index",
}


def words(key: str) -> str:
    """A key as plain words: underscores as spaces, a dotted key as "Subject: rest"; first letter capital.
    Text that is not a key (a description someone wrote, with spaces or capitals) is returned as it is."""
    key = str(key or "").strip()
    if not KEY.fullmatch(key):
        return key
    subject, _, rest = key.partition(".")
    text = subject.replace("_", " ")
    if rest:
        text += ": " + rest.replace(".", " ").replace("_", " ")
    return text[:1].upper() + text[1:]


def check_sentence(check_type: str) -> str:
    return CHECKS.get(check_type) or words(check_type)


def event_sentence(event: str) -> str:
    return EVENTS.get(event) or words(event)


def status_words(status: str) -> str:
    """A status in running text, lower case: ``waiting_approval`` is "waiting for approval"."""
    status = str(status or "")
    return STATUSES.get(status) or (status.replace("_", " ") if KEY.fullmatch(status) else status)


def sentence(key: str, kind: str = "") -> str:
    """The words for ``key``: ``kind`` is "check", "event" or "status"; without one, a known key of any kind."""
    if kind == "check":
        return check_sentence(key)
    if kind == "event":
        return event_sentence(key)
    if kind == "status":
        return status_words(key)
    return CHECKS.get(key) or EVENTS.get(key) or words(key)


def percent(value) -> str:
    """A confidence as a whole percentage: 0.9 and 90 both read "90%"; "" when there is none."""
    if value is None or value == "":
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if 0 <= number <= 1:
        number *= 100
    return f"{round(number)}%"
