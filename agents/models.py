from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from agents.choices import Engine, MappingStatus, Purpose
from genesis.uploads import GeneratedName, validate_upload_size


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
        from agents.connectors.platform import refusal_for

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


class MappingSpec(models.Model):
    """The mapping of one target table of a mission from its sources; its content lives in versions."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="mapping_specs")
    target_table = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mission_id", "target_table"]
        constraints = [
            models.UniqueConstraint(fields=["mission", "target_table"], name="mapping_spec_one_per_target"),
        ]

    def __str__(self) -> str:
        return f"{self.target_table} mapping"


class MappingSpecVersion(models.Model):
    """One proposed version of a mapping spec: per-column mappings, the target's SQL, lineage and a diff."""

    spec = models.ForeignKey(MappingSpec, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=MappingStatus.choices, default=MappingStatus.PROPOSED)
    content = models.JSONField(help_text="The spec as documented in docs/spec-file.md (mapping spec JSON).")
    sql = models.TextField(help_text="The whole target as one SELECT in the source's dialect.")
    dialect = models.CharField(max_length=32)
    lineage = models.JSONField(default=dict, blank=True, help_text="Target column -> source TABLE.COLUMN list.")
    diff = models.JSONField(default=dict, blank=True, help_text="Changes against the previous version.")
    feedback = models.TextField(blank=True, help_text="The reviewer's feedback when rejected.")
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey("tasks.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by_agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["spec_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["spec", "number"], name="mapping_spec_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.spec.target_table} v{self.number} ({self.status})"


class Environment(models.Model):
    """A deployment stage of a mission (dev, test, stage or prod): the target connection its models build into."""

    class Name(models.TextChoices):
        DEV = "dev", "Development"
        TEST = "test", "Test"
        STAGE = "stage", "Stage"
        PROD = "prod", "Production"

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=16, choices=Name.choices)
    target = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="environments",
                               help_text="Where the mission's dbt project builds its targets in this environment.")
    description = models.TextField(blank=True)
    last_built_at = models.DateTimeField(null=True, blank=True)
    last_revision = models.CharField(max_length=64, blank=True, help_text="dbt project revision last built here.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mission_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mission", "name"], name="environment_one_per_name"),
        ]

    def __str__(self) -> str:
        return f"{self.mission} · {self.name}"


class DocsIndex(models.Model):
    """A named collection of documents (e.g. legacy ETL mapping exports) that agents search by full text."""

    name = models.CharField(max_length=200, unique=True, help_text="What a mission's docs_index field names.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "docs indexes"

    def __str__(self) -> str:
        return self.name


class IndexedDocument(models.Model):
    """One document of a docs index, kept as uploaded and split into passages for search."""

    index = models.ForeignKey(DocsIndex, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=200)
    file = models.FileField(upload_to=GeneratedName("docs"), max_length=300, validators=[validate_upload_size])
    content_type = models.CharField(max_length=100, blank=True)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["index_id", "title"]

    def __str__(self) -> str:
        return self.title


class Passage(models.Model):
    """A paragraph (or a CSV row) of an indexed document: what full-text search finds and agents cite."""

    document = models.ForeignKey(IndexedDocument, on_delete=models.CASCADE, related_name="passages")
    position = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        ordering = ["document_id", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="passage_position_unique")]

    def __str__(self) -> str:
        return f"{self.document} §{self.position}"
