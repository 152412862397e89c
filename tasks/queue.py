"""The queue seam: handing queued runs to django-q2 (``tasks`` point 1 and 6). The transports themselves are
django-q2's brokers and ``tasks.broker``; the worker entry points the messages name are in ``tasks.jobs``."""

from __future__ import annotations

import django_q.brokers
import django_q.tasks
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.conf import Conf

from tasks.choices import RunStatus
from tasks.models import Run
from tasks.timing import batch_max


def _broker_is_transactional() -> bool:
    """The ORM brokers store the queue row in the same database: it can commit with the run (an outbox)."""
    return not Conf.SYNC and bool(Conf.ORM) and "redis" not in settings.Q_CLUSTER

_brokers: dict[str, object] = {}

def messages_waiting() -> int:
    """How many messages the broker holds that no cluster has taken yet (an ORM broker's unlocked rows, a Redis
    list's length); 0 in sync mode. One broker (one Redis connection) per process and configuration."""
    if Conf.SYNC:
        return 0
    key = repr((Conf.BROKER_CLASS, Conf.REDIS, Conf.ORM, Conf.CLUSTER_NAME))  # Conf.REDIS may be a dict
    if key not in _brokers:
        _brokers[key] = django_q.brokers.get_broker()
    return int(_brokers[key].queue_size())

def enqueue_runs(run_ids: list[int], *, stamped: bool = False) -> None:
    """Hand queued runs to django-q2. With an ORM broker the queue rows commit in the caller's transaction, so a
    run is never created without its queue entry; otherwise (Redis, sync mode) they are sent after the commit.
    ``stamped``: the runs were created with their ``enqueued_at`` already set."""
    if not run_ids:
        return
    ids = list(run_ids)
    if not stamped:  # and no longer held by a worker's delivery (``tasks`` point 6)
        Run.objects.filter(pk__in=ids, status=RunStatus.QUEUED).update(enqueued_at=timezone.now(),
                                                                         lease_expires_at=None)
    if _broker_is_transactional():
        _send(ids)
    else:
        transaction.on_commit(lambda: _send(ids))

def _batch_size(count: int) -> int:
    """Runs per queue message for ``count`` runs sent together: up to ``batch_max()``, and never so many that this
    cluster's workers would not each get two messages at least (cluster-wide there are more workers, not fewer)."""
    workers = max(int(settings.Q_CLUSTER.get("workers", 1)), 1)
    return max(1, min(batch_max(), count // (2 * workers)))

def _send(run_ids: list[int]) -> None:
    size = _batch_size(len(run_ids))
    for at in range(0, len(run_ids), size):
        ids = run_ids[at:at + size]
        if len(ids) == 1:
            django_q.tasks.async_task("tasks.jobs.execute_run", ids[0], task_name=f"run-{ids[0]}", save=False)
        else:
            django_q.tasks.async_task("tasks.jobs.execute_runs", ids, task_name=f"runs-{ids[0]}-{ids[-1]}", save=False)
