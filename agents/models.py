from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from agents.choices import Engine, Purpose
from agents.connectors.duckdb import location_problem
from agents.connectors.platform import refusal_for


def split_password(location: str) -> tuple[str, str]:
    """Take a password out of a DSN, whether in its user part or its query: ``postgres://u:pw@h/db`` and
    ``postgres://u@h/db?password=pw`` both give ``("postgres://u@h/db", "pw")``."""
    parts = urlsplit(location)
    if not parts.scheme:
        return location, ""
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = [value for key, value in query if key.lower() == "password"]
    if parts.password is None and not in_query:
        return location, ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    rest = urlencode([(key, value) for key, value in query if key.lower() != "password"])
    password = parts.password if parts.password is not None else in_query[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, rest, parts.fragment)), password


class Connection(models.Model):
    """A named data connection the agents read from or write to (a source, target or validation database)."""

    name = models.CharField(max_length=100, unique=True)
    engine = models.CharField(max_length=16, choices=Engine.choices)
    location = models.CharField(
        max_length=500,
        help_text="A file path for SQLite/DuckDB, or a DSN without password for PostgreSQL.",
    )
    secret = models.CharField(
        max_length=500, blank=True, help_text="Password or token; write-only, never shown back."
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.SOURCE)
    description = models.TextField(blank=True)
    # The access list: running SQL on a connection is a permission. Agents, checks and previews of a mission run
    # SQL only through connections granted to that mission; a person may grant a connection to a mission they
    # launch only if staff or in one of its groups (``agents.access``).
    missions = models.ManyToManyField(
        "missions.Mission", blank=True, related_name="connections",
        help_text="Missions whose agents, checks and previews may run SQL on this connection.",
    )
    groups = models.ManyToManyField(
        "auth.Group", blank=True, related_name="connections",
        help_text="People in these groups may give this connection to the missions they launch (staff always may).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        location, password = split_password(self.location or "")
        if password:
            # A password typed into the DSN is moved to the write-only secret, never stored in clear view.
            self.location, self.secret = location, password
        if self.engine == Engine.POSTGRESQL and not self.location.startswith(("postgres://", "postgresql://")):
            raise ValidationError({"location": "A PostgreSQL connection needs a DSN like postgres://user@host/db."})
        if self.engine == Engine.DUCKDB:
            problem = location_problem(self.location)
            if problem:
                raise ValidationError({"location": f"A DuckDB connection needs a local file path: {problem}."})
        refusal = refusal_for(self.engine, self.location)
        if refusal:
            raise ValidationError({"location": f"This location is refused: {refusal}, which holds every user's "
                                               "sessions and API tokens and is never a data connection."})

    @property
    def has_secret(self) -> bool:
        return bool(self.secret)


class Agent(models.Model):
    """A data agent that can own tasks; ``kind`` names its implementation in the agent registry."""

    name = models.CharField(max_length=100, unique=True, help_text="e.g. FieldMappingAgent")
    kind = models.CharField(max_length=100, help_text="The key of its implementation in the registry.")
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LLMBudget(models.Model):
    """One holder of a language-model budget (``mission:<id>`` or ``user:<id>``). Its row is what a call locks
    while it reserves its share (``agents.llm.budget``): two workers or two requests of the same holder then check
    the budget one after the other, never both on the same spent total."""

    owner = models.CharField(max_length=40, unique=True)

    def __str__(self) -> str:
        return self.owner


class LLMReservation(models.Model):
    """A call in flight against a budget: counted as spent (one call, ``tokens`` its upper bound) from before the
    call is made until its record is written, in the same transaction as this row is deleted. A row left by a
    process that died mid-call stops counting once older than the longest a call can take."""

    budget = models.ForeignKey(LLMBudget, on_delete=models.CASCADE, related_name="reservations")
    tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.budget}: {self.tokens} tokens reserved at {self.created_at:%Y-%m-%d %H:%M:%S}"
