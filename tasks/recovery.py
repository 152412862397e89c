"""Recovery: the sweep finds whatever an event missed (a dead worker's runs, a lost message, a missed dispatch)
and puts it right (``tasks`` point 3). It runs every ``GENESIS_SWEEP_SECONDS`` in the broker's idle time and as a
django-q2 schedule (``tasks.jobs.sweep``)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from missions.choices import MissionStatus
from missions.models import Mission
from tasks import services
from tasks.choices import TASK_FINISHED, RunStatus, TaskStatus
from tasks.dispatch import _is_postgres, _retry_or_fail, dispatch_ready
from tasks.models import Run, Task
from tasks.queue import enqueue_runs, messages_waiting
from tasks.timing import lease_seconds, redispatch_seconds

logger = logging.getLogger("genesis.engine")


def sweep() -> dict[str, int]:
    """Mark runs whose lease expired ``lost`` (and retry them), fail runs past their timeout, hand on queued runs
    that are due and were never enqueued, or whose message was lost (``redispatch_seconds``), and dispatch active
    missions' ready tasks."""
    counts = {"lost": 0, "timed_out": 0, "enqueued": 0, "dispatched": 0}
    now = timezone.now()
    expired = list(Run.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now)
                   .values_list("pk", flat=True)[:500])
    for run_id in expired:
        counts["lost"] += _mark_lost(run_id)
    due_now = (
        # Never enqueued: a run its worker kept to claim next (``tasks`` point 4) is left to it for a lease's time.
        Q(enqueued_at__isnull=True, created_at__lt=now - timedelta(seconds=lease_seconds()))
        # Held by a worker's delivery (``tasks`` point 6) that never reached it: that worker is gone.
        | Q(lease_expires_at__lt=now)
        | Q(available_at__isnull=False, enqueued_at__lt=F("available_at"))
    )
    stale = Q(enqueued_at__lt=now - timedelta(seconds=redispatch_seconds()), lease_expires_at__isnull=True)
    if Run.objects.filter(stale, status=RunStatus.QUEUED).exists() and not _messages_waiting():
        # Enqueued two leases ago, never claimed, and the broker has handed out every message it has: this run's
        # message is held by a cluster that died or stalled (an ORM broker would deliver it again only after
        # Q_RETRY, a Redis pop never). A new message is safe: the claim is atomic, so whichever copy a worker takes
        # second is refused (``run.claim_refused``), and a result is recorded only under the lease token it claimed.
        due_now |= stale
    due = list(
        Run.objects.filter(status=RunStatus.QUEUED, task__mission__status=MissionStatus.ACTIVE)
        .filter(Q(available_at__isnull=True) | Q(available_at__lte=now))
        .filter(due_now)
        .values_list("pk", flat=True)[:500]
    )
    if due:
        with transaction.atomic():
            enqueue_runs(due)
        counts["enqueued"] = len(due)
    missions = Mission.objects.filter(status=MissionStatus.ACTIVE).filter(
        Exists(Task.objects.filter(mission=OuterRef("pk"), status__in=[TaskStatus.PENDING, TaskStatus.READY]))
        | ~Exists(Task.objects.filter(mission=OuterRef("pk")).exclude(status__in=TASK_FINISHED))
    ).values_list("pk", flat=True)
    for mission_id in missions:
        counts["dispatched"] += len(dispatch_ready(mission_id=mission_id))
    return counts

def _messages_waiting() -> int:
    """``messages_waiting``, or 1 if the broker cannot say (the rest of the sweep goes on; this part waits)."""
    try:
        return messages_waiting()
    except Exception:
        logger.exception("could not ask the broker how many messages wait")
        return 1

def _mark_lost(run_id: int) -> int:
    with transaction.atomic():
        qs = Run.objects.select_related("task__mission", "task__owner_agent")
        qs = qs.select_for_update(skip_locked=True, of=("self",)) if _is_postgres() else qs.select_for_update()
        run = qs.filter(pk=run_id, status=RunStatus.RUNNING, lease_expires_at__lt=timezone.now()).first()
        if run is None:
            return 0
        worker = run.worker
        lost = services.run_transition(
            run=run, to=RunStatus.LOST, message=f"Lease of {worker} expired without a heartbeat; the worker is "
            "presumed dead or stalled.", data={"worker": worker},
            error=f"Lost: lease of {worker} expired.",
        )
        _retry_or_fail(task=run.task, run=lost, retryable=True, reason=f"worker {worker} was lost")
    return 1
