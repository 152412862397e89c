"""Writing history entries: every service that changes something calls ``history_record``."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction

from genesis import fastsql
from history.choices import ActorKind
from history.models import HistoryEntry

if TYPE_CHECKING:
    from agents.models import Agent
    from missions.models import Mission
    from tasks.models import Run, Task

# Who acts: a person, an agent (an ``agents.Agent`` row: history sits below the agent framework, so it knows agents
# by their model, not by import) or the system (None).
Actor: TypeAlias = "User | Agent | None"
# Who looks: the signed-in person of a request, or nobody.
Viewer: TypeAlias = "User | AnonymousUser"

_batch = threading.local()


@contextmanager
def history_batch() -> Iterator[None]:
    """Entries recorded inside the block are inserted together, in order and with one statement, when it ends:
    the engine's hot path writes four or five entries per task, and each INSERT is a round trip. Use it inside a
    transaction (the entries commit with the changes they describe) and only around code that does not read
    history back; if the block raises, its entries are dropped with the transaction. Nested blocks join the
    outermost one. The entries get no ids (``genesis.fastsql.insert``: the ORM's ``bulk_create`` cost more than
    the round trip it saved)."""
    if getattr(_batch, "entries", None) is not None:
        yield
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("history_batch() needs a transaction: its entries must commit with their changes.")
    _batch.entries = []
    try:
        yield
        entries = _batch.entries
    finally:
        _batch.entries = None
    fastsql.insert(entries)


def history_add(entries: Iterable[HistoryEntry]) -> None:
    """Insert unsaved entries (one statement), or add them to the open ``history_batch``."""
    pending = getattr(_batch, "entries", None)
    if pending is not None:
        pending.extend(entries)
    else:
        fastsql.insert(list(entries))


def actor_fields(actor: Actor) -> dict[str, Any]:
    """The history columns that name who acted: a person, an agent, or the system (``None``)."""
    if actor is None or (isinstance(actor, AbstractBaseUser) and not actor.is_authenticated):
        return {"actor_kind": ActorKind.SYSTEM}
    if isinstance(actor, AbstractBaseUser):
        return {"actor_kind": ActorKind.USER, "actor_user": actor}
    agent_model = HistoryEntry._meta.get_field("actor_agent").related_model
    if isinstance(agent_model, type) and isinstance(actor, agent_model):
        return {"actor_kind": ActorKind.AGENT, "actor_agent": actor}
    raise TypeError(f"{actor!r} cannot act in history: a person, an agent or None (the system).")


def history_record(
    *,
    mission: Mission | None = None,
    event: str,
    mission_id: int | None = None,
    actor: Actor = None,
    task: Task | None = None,
    run: Run | None = None,
    from_status: str = "",
    to_status: str = "",
    message: str = "",
    data: dict[str, Any] | None = None,
) -> HistoryEntry:
    """Append one entry. Give ``mission`` (an object) or ``mission_id`` (saves loading the mission)."""
    where: dict[str, Any] = {"mission": mission} if mission is not None else {"mission_id": mission_id}
    entry = HistoryEntry(
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
    pending = getattr(_batch, "entries", None)
    if pending is not None:
        pending.append(entry)  # inserted when the batch ends (no id until then)
    else:
        entry.save()
    return entry
