"""Background jobs run by django-q2 workers: thin functions that take ids and call the engine or a service."""

from __future__ import annotations

from tasks import engine
from tasks.models import Notification


def execute_run(run_id: int) -> str:
    """Run one queued attempt (what ``engine.enqueue_runs`` hands to the queue is ``tasks.engine.execute_run``, or
    ``tasks.engine.execute_runs`` for a message of several runs)."""
    return engine.execute_run(run_id)


def sweep() -> dict[str, int]:
    """The periodic recovery sweep (a django-q2 schedule, and the idle loop of the Genesis brokers)."""
    return engine.sweep()


def notification_send(notification_id: int) -> bool:
    from tasks.notifications import send_with_retries

    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        return False
    return send_with_retries(notification)
