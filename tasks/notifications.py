"""Escalation: tell a mission's channels (email addresses, a Slack-compatible webhook) and the person concerned.

``notify`` stores one Notification per channel and hands each to a background job after the commit; the job
(``tasks.jobs.notification_send``) delivers with retries and records every attempt. A failing channel is recorded
and never blocks the mission.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import django_q.tasks
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from history.services import history_record
from tasks.choices import NotificationChannel, NotificationStatus
from tasks.models import Notification
from tasks.services import notification_transition

logger = logging.getLogger("genesis.notifications")


def notify(*, mission, event: str, subject: str, body: str, task=None, person=None,
           escalate: bool = True) -> list[Notification]:
    """Queue a message to every escalation channel of the mission, and to ``person``'s email if they have one.
    ``escalate=False``: to ``person`` only (news for them, not something the channels need to act on)."""
    targets: list[tuple[str, str]] = []
    emails = list(mission.escalation_emails or []) if escalate else []
    if person is not None and getattr(person, "email", "") and person.email not in emails:
        emails.append(person.email)
    targets += [(NotificationChannel.EMAIL, address) for address in emails]
    if escalate and mission.escalation_webhook:
        targets.append((NotificationChannel.WEBHOOK, mission.escalation_webhook))
    created = Notification.objects.bulk_create([
        Notification(mission=mission, task=task, event=event, channel=channel, target=target, subject=subject[:300],
                     body=body)
        for channel, target in targets
    ])
    history_record(
        mission=mission, task=task, event="notification.queued", message=subject,
        data={"event": event, "channels": [f"{c}:{t}" for c, t in targets],
              "person": person.get_username() if person is not None else None},
    )
    ids = [n.pk for n in created]
    if ids:
        transaction.on_commit(lambda: _enqueue(ids))
    return created


def _enqueue(ids: list[int]) -> None:
    for pk in ids:
        try:
            django_q.tasks.async_task("tasks.jobs.notification_send", pk, task_name=f"notify-{pk}")
        except Exception:  # the queue being down must not break the caller; the row stays pending
            logger.exception("could not enqueue notification %s", pk)


def deliver(notification: Notification) -> None:
    """Send one notification once; raises on failure."""
    if notification.channel == NotificationChannel.EMAIL:
        send_mail(notification.subject, notification.body, settings.DEFAULT_FROM_EMAIL, [notification.target])
        return
    payload = json.dumps({"text": f"*{notification.subject}*\n{notification.body}"}).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is the mission's configured http(s) webhook
        notification.target, data=payload, method="POST", headers={"Content-Type": "application/json"}
    )
    if not notification.target.startswith(("http://", "https://")):
        raise ValueError("The webhook URL must be http(s).")
    with urllib.request.urlopen(request, timeout=settings.GENESIS_WEBHOOK_TIMEOUT) as response:  # noqa: S310
        if response.status >= 300:
            raise OSError(f"webhook answered HTTP {response.status}")


def send_with_retries(notification: Notification) -> bool:
    """Try up to GENESIS_NOTIFY_ATTEMPTS times with growing pauses; every attempt's result is recorded."""
    attempts = int(settings.GENESIS_NOTIFY_ATTEMPTS)
    pause = float(settings.GENESIS_NOTIFY_BACKOFF_SECONDS)
    for attempt in range(1, attempts + 1):
        try:
            deliver(notification)
        except Exception as error:
            last = attempt == attempts
            notification_transition(
                notification=notification,
                to=NotificationStatus.FAILED if last else NotificationStatus.PENDING,
                error=f"attempt {attempt}/{attempts}: {type(error).__name__}: {error}",
            )
            if last:
                return False
            time.sleep(pause * attempt)
            continue
        notification_transition(notification=notification, to=NotificationStatus.SENT)
        return True
    return False
