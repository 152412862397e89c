"""The records of the data-pipeline agents: mapping specs and their versions, environments, docs indexes."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from agents.models import Agent, Connection
from genesis.uploads import GeneratedName, validate_upload_size
from pipeline.choices import MappingStatus


class MappingSpec(models.Model):
    """The mapping of one target table of a mission from its sources; its content lives in versions."""

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="mapping_specs")
    target_table = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "agents_mappingspec"  # kept from when the model lived in the agents app
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
        db_table = "agents_mappingspecversion"  # kept from when the model lived in the agents app
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
        db_table = "agents_environment"  # kept from when the model lived in the agents app
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
        db_table = "agents_docsindex"  # kept from when the model lived in the agents app
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
        db_table = "agents_indexeddocument"  # kept from when the model lived in the agents app
        ordering = ["index_id", "title"]

    def __str__(self) -> str:
        return self.title


class Passage(models.Model):
    """A paragraph (or a CSV row) of an indexed document: what full-text search finds and agents cite."""

    document = models.ForeignKey(IndexedDocument, on_delete=models.CASCADE, related_name="passages")
    position = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        db_table = "agents_passage"  # kept from when the model lived in the agents app
        ordering = ["document_id", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="passage_position_unique")]

    def __str__(self) -> str:
        return f"{self.document} §{self.position}"
