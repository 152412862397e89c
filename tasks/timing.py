"""The engine's timing, derived from the settings (defaults and validation live in ``genesis/settings.py`` only)."""

from __future__ import annotations

from django.conf import settings


def lease_seconds() -> float:
    return float(settings.GENESIS_LEASE_SECONDS)


def heartbeat_seconds() -> float:
    """How often a running agent's lease is renewed and its cancellation checked."""
    return min(float(settings.GENESIS_HEARTBEAT_SECONDS), lease_seconds() / 3)


def chain_seconds() -> float:
    """How long into one delivery a worker may still go on with a run its own recording queued."""
    return max(float(settings.GENESIS_CHAIN_SECONDS), 0.0)


def batch_max() -> int:
    """The most runs one queue message carries (``tasks`` point 6); 1 sends every run on its own."""
    return max(int(settings.GENESIS_BATCH_MAX), 1)


def handoff_seconds() -> float:
    """How long a run of a several-run delivery may work before the delivery's other runs go back to the queue."""
    return max(float(settings.GENESIS_HANDOFF_SECONDS), 0.0)


def hold_seconds() -> float:
    """How long a worker holds the other runs of its delivery: past its chaining window and a lease, so a live
    worker always reaches them (or hands them back) first; after that the sweep takes them as its worker's loss."""
    return chain_seconds() + handoff_seconds() + lease_seconds()


def redispatch_seconds() -> float:
    """How long a run may stay queued after it was enqueued before the sweep takes its message as lost (held by a
    cluster that died or stalled) and sends a new one, once the broker has handed out every message it holds (while
    messages still wait there, the clusters are behind, not gone): two leases unless set, never under one."""
    return max(float(settings.GENESIS_REDISPATCH_SECONDS), lease_seconds())


def cancel_grace_seconds() -> float:
    """How long an agent may go on working after its run was cancelled or timed out before it is stopped hard."""
    return max(float(settings.GENESIS_CANCEL_GRACE_SECONDS), 0.0)


def backoff_seconds(failures: int) -> float:
    """Delay before the next automatic attempt: base · 2^(failures-1), capped."""
    base = float(settings.GENESIS_RETRY_BACKOFF_SECONDS)
    if base <= 0 or failures <= 0:
        return 0.0
    return min(base * 2 ** (failures - 1), float(settings.GENESIS_RETRY_BACKOFF_MAX_SECONDS))
