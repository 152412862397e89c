"""Background jobs run by django-q2 workers: thin functions that take ids and call the engine or a service. The
queue messages name these paths (``tasks.queue``), so they stay put when the engine's modules move."""

from __future__ import annotations

from tasks import explain, recovery, runtime
from tasks.models import Notification
from tasks.notifications import send_with_retries


def execute_run(run_id: int) -> str:
    """Run one queued attempt (``tasks.runtime.execute_runs``)."""
    return runtime.execute_run(run_id)


def execute_runs(run_ids: list[int]) -> str:
    """Run the attempts of a queue message that carries several (``tasks`` point 6)."""
    return runtime.execute_runs(run_ids)


def run_explain(run_id: int) -> str:
    """Explain a failed attempt in plain language, when a language model is configured (``tasks.explain``)."""
    return explain.run_explain(run_id)


def sweep() -> dict[str, int]:
    """The periodic recovery sweep (a django-q2 schedule, and the idle loop of the Genesis brokers)."""
    return recovery.sweep()


def notification_send(notification_id: int) -> bool:
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        return False
    return send_with_retries(notification)
