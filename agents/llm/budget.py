"""Reserve, call, settle: how a language-model budget (a mission's, a person's daily one) holds when two workers or
two requests of the same holder ask at the same instant.

Reading the spent total and then calling lets both pass on the same total. So, before the call, a short
transaction locks the holder's ``LLMBudget`` row (``select_for_update`` on PostgreSQL; on SQLite the transaction
is ``IMMEDIATE``, which takes the database's write lock at its start), reads what is spent (the settled records
plus the calls still in flight) and, when something is left, writes an ``LLMReservation``: one call and an upper
bound of its tokens. It commits before the call, so the call (seconds) holds no lock. The caller then writes the
call's record and deletes the reservation in one transaction (``settled``), so the call is counted exactly once,
at its actual tokens; a call that raised releases its reservation (``released``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from agents.llm.config import LLMSettings
from agents.models import LLMBudget, LLMReservation

CHARS_PER_TOKEN = 3  # a prompt's tokens estimated from its characters, on the high side (English runs near 4)


@dataclass(frozen=True)
class Held:
    """Calls in flight against a budget: how many, and the tokens reserved for them."""

    calls: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class Reservation:
    """What ``reserve`` decided: ``pk`` of the reservation, or None with ``refused`` saying why."""

    pk: int | None
    refused: str = ""


def token_bound(messages: list[dict[str, str]], max_tokens: int) -> int:
    """An upper bound of a call's tokens: the prompt's estimated from its characters, plus the most it may answer."""
    chars = sum(len(m.get("content", "")) for m in messages)
    return math.ceil(chars / CHARS_PER_TOKEN) + max_tokens


def call_lifetime(config: LLMSettings) -> timedelta:
    """The longest one call can take (every attempt timing out, every retry waiting its longest), with a margin:
    a reservation older than this was left by a process that died, and no longer counts."""
    return timedelta(seconds=config.attempts * (config.timeout + config.max_retry_wait) + 60)


def reserve(owner: str, *, tokens: int, lifetime: timedelta, refusal: Callable[[Held], str]) -> Reservation:
    """Reserve one call of up to ``tokens`` against ``owner``'s budget, unless ``refusal`` (given the calls in
    flight, it reads the settled spending and says why not, or "") refuses. Commits before returning: make the call
    after, never inside a transaction of the caller's."""
    with transaction.atomic():
        budget, _ = LLMBudget.objects.select_for_update().get_or_create(owner=owner)
        live = LLMReservation.objects.filter(budget=budget, created_at__gte=timezone.now() - lifetime)
        totals = live.aggregate(calls=Count("id"), tokens=Sum("tokens"))
        reason = refusal(Held(calls=int(totals["calls"] or 0), tokens=int(totals["tokens"] or 0)))
        if reason:
            return Reservation(pk=None, refused=reason)
        LLMReservation.objects.filter(budget=budget, created_at__lt=timezone.now() - lifetime).delete()
        return Reservation(pk=LLMReservation.objects.create(budget=budget, tokens=tokens).pk)


@contextmanager
def settled(reservation: Reservation) -> Iterator[None]:
    """The transaction that writes the call's record: the reservation goes with it, so the budget counts the call
    once (reserved until the commit, recorded after)."""
    with transaction.atomic():
        released(reservation)
        yield


def released(reservation: Reservation) -> None:
    """Give back a reservation whose call was not recorded (it raised): it counts for nothing."""
    if reservation.pk is not None:
        LLMReservation.objects.filter(pk=reservation.pk).delete()
