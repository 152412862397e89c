"""Writing history entries: every service that changes something calls ``history_record``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from agents.models import Agent
from tasks.choices import ActorKind
from tasks.models import HistoryEntry

Actor = AbstractBaseUser | Agent | None


def actor_fields(actor: Actor) -> dict[str, Any]:
    """The history columns that name who acted: a person, an agent, or the system (``None``)."""
    if actor is None or (isinstance(actor, AbstractBaseUser) and not actor.is_authenticated):
        return {"actor_kind": ActorKind.SYSTEM}
    if isinstance(actor, Agent):
        return {"actor_kind": ActorKind.AGENT, "actor_agent": actor}
    return {"actor_kind": ActorKind.USER, "actor_user": actor}


def history_record(
    *,
    mission=None,
    event: str,
    mission_id: int | None = None,
    actor: Actor = None,
    task=None,
    run=None,
    from_status: str = "",
    to_status: str = "",
    message: str = "",
    data: dict[str, Any] | None = None,
) -> HistoryEntry:
    """Append one entry. Give ``mission`` (an object) or ``mission_id`` (saves loading the mission)."""
    where = {"mission": mission} if mission is not None else {"mission_id": mission_id}
    return HistoryEntry.objects.create(
        **where,
        task=task,
        run=run,
        event=event,
        from_status=from_status,
        to_status=to_status,
        message=message,
        data=data or {},
        **actor_fields(actor),
    )
