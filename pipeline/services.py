"""Services of the data pipeline: mapping spec versions (propose, approve, reject) and docs indexes.

Every change writes a history entry in the same transaction; nothing else sets a version's status.
"""

from __future__ import annotations

import csv
import io
import re
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents.models import Agent
from genesis.exceptions import DomainError, InvalidTransition
from genesis.uploads import display_name, sha256_of, validate_upload_size
from history.services import Actor, history_record
from pipeline.choices import MAPPING_TRANSITIONS, MappingStatus
from pipeline.models import DocsIndex, IndexedDocument, MappingSpec, MappingSpecVersion, Passage
from pipeline.specdiff import changed_fields, table_aliases
from tasks.choices import TaskStatus
from tasks.models import Task

if TYPE_CHECKING:
    from missions.models import Mission
    from pipeline.models import IndexedDocument
    from tasks.models import Run, Task

_DIFF_FIELDS = ("sources", "expression", "transformation", "target_type", "join_path", "constraints")


def mapping_spec_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Per target column: added, removed, or changed (with each changed field's old and new value)."""
    if old is None:
        return {"first_version": True, "added": [c["name"] for c in new.get("columns", [])], "removed": [],
                "changed": {}, "sql_changed": True}
    before = {c["name"]: c for c in old.get("columns", [])}
    after = {c["name"]: c for c in new.get("columns", [])}
    old_aliases, new_aliases = table_aliases(old), table_aliases(new)
    dialect = new.get("dialect") or old.get("dialect")
    changed = {}
    for name in before.keys() & after.keys():
        # An expression whose aliases moved (a join added before its table) but reads the same columns is unchanged.
        real = changed_fields(before[name], after[name], old_aliases=old_aliases, new_aliases=new_aliases,
                              dialect=dialect)
        fields = {f: {"from": before[name].get(f), "to": after[name].get(f)} for f in _DIFF_FIELDS if f in real}
        if fields:
            changed[name] = fields
    return {
        "first_version": False,
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": dict(sorted(changed.items())),
        "sql_changed": old.get("sql") != new.get("sql"),
    }


def _move(version: MappingSpecVersion, *, to: str, actor: Actor, message: str, data: dict[str, Any] | None = None,
          feedback: str = "") -> MappingSpecVersion:
    locked = MappingSpecVersion.objects.select_for_update().select_related("spec__mission").get(pk=version.pk)
    current = locked.status
    if to not in MAPPING_TRANSITIONS[current]:
        raise InvalidTransition(entity="Mapping spec", label=f"{locked.spec.target_table} v{locked.number}",
                                from_status=current, to_status=to, allowed=sorted(MAPPING_TRANSITIONS[current]))
    locked.status = to
    fields = ["status"]
    if to in {MappingStatus.APPROVED, MappingStatus.REJECTED}:
        locked.decided_at = timezone.now()
        locked.decided_by = actor if actor is not None and not isinstance(actor, Agent) else None
        fields += ["decided_at", "decided_by"]
    if feedback:
        locked.feedback = feedback
        fields.append("feedback")
    locked.save(update_fields=fields)
    history_record(
        mission=locked.spec.mission, task=locked.task, event=f"mapping_spec.{to}", actor=actor,
        from_status=current, to_status=to, message=message,
        data={"mapping_spec": locked.spec_id, "version": locked.number, "target": locked.spec.target_table,
              **(data or {})},
    )
    version.status, version.decided_at, version.feedback = locked.status, locked.decided_at, locked.feedback
    return version


@transaction.atomic
def mapping_spec_propose(
    *, mission: Mission, target_table: str, content: dict[str, Any], sql: str, dialect: str,
    lineage: dict[str, Any] | None = None, task: Task | None = None, run: Run | None = None, actor: Actor = None,
) -> MappingSpecVersion:
    """Store a new proposed version of the target's mapping spec with its diff against the latest version; an
    earlier version still waiting for review is superseded."""
    if not content.get("columns"):
        raise DomainError("A mapping spec needs at least one column.", field="content.columns")
    spec, _ = MappingSpec.objects.get_or_create(mission=mission, target_table=target_table)
    MappingSpec.objects.select_for_update().filter(pk=spec.pk).first()
    previous = spec.versions.order_by("-number").first()
    number = (spec.versions.aggregate(m=Max("number"))["m"] or 0) + 1
    for open_version in spec.versions.filter(status=MappingStatus.PROPOSED):
        _move(open_version, to=MappingStatus.SUPERSEDED, actor=actor,
              message=f"{target_table} v{open_version.number} superseded by v{number}.")
    diff = mapping_spec_diff(previous.content if previous else None, content)
    version = MappingSpecVersion.objects.create(
        spec=spec, number=number, content=content, sql=sql, dialect=dialect, lineage=lineage or {}, diff=diff,
        task=task, run=run, created_by_agent=actor if isinstance(actor, Agent) else None,
    )
    changed = len(diff["changed"]) + len(diff["added"]) + len(diff["removed"])
    history_record(
        mission=mission, task=task, run=run, event="mapping_spec.proposed", actor=actor,
        to_status=MappingStatus.PROPOSED,
        message=f"{target_table} mapping spec v{number} proposed"
                + ("." if diff["first_version"] or previous is None
                   else f" ({changed} column(s) changed since v{previous.number})."),
        data={"mapping_spec": spec.pk, "version": number, "target": target_table, "diff": diff},
    )
    return version


@transaction.atomic
def mapping_spec_approve(*, version: MappingSpecVersion, actor: Actor, note: str = "") -> MappingSpecVersion:
    """The owner accepts this version; it becomes the one later steps use (an earlier approval is superseded)."""
    earlier = MappingSpecVersion.objects.filter(spec=version.spec_id, status=MappingStatus.APPROVED).exclude(
        pk=version.pk)
    for old in earlier:
        _move(old, to=MappingStatus.SUPERSEDED, actor=actor,
              message=f"{old.spec.target_table} v{old.number} replaced by approved v{version.number}.")
    return _move(version, to=MappingStatus.APPROVED, actor=actor,
                 message=note or f"{version.spec.target_table} mapping spec v{version.number} approved.")


@transaction.atomic
def mapping_spec_reject(*, version: MappingSpecVersion, actor: Actor, feedback: str) -> MappingSpecVersion:
    """The owner refuses this version with written feedback; the mapping re-runs with it."""
    if not feedback or not feedback.strip():
        raise DomainError("Rejecting a mapping spec needs feedback saying what is wrong.", field="feedback")
    return _move(version, to=MappingStatus.REJECTED, actor=actor, feedback=feedback.strip(),
                 message=f"{version.spec.target_table} mapping spec v{version.number} rejected: {feedback.strip()}",
                 data={"feedback": feedback.strip()})


@transaction.atomic
def mapping_spec_approve_with_task(*, task: Task, actor: Actor = None) -> MappingSpecVersion | None:
    """A person approved ``task``: the spec version it proposed becomes the approved one, if it is still proposed
    and still its spec's newest. Returns the version approved, or None."""
    version = (MappingSpecVersion.objects.select_related("spec").filter(task=task, status=MappingStatus.PROPOSED)
               .order_by("-number").first())
    if version is None or version.spec.versions.filter(number__gt=version.number).exists():
        return None
    return mapping_spec_approve(version=version, actor=actor,
                                note=f"{version.spec.target_table} mapping spec v{version.number} approved with its "
                                     f"task {task.key}.")


def mapping_specs_sync_approvals(*, mission: Mission, actor: Actor = None) -> list[MappingSpecVersion]:
    """Approve each proposed version whose mapping task is done but was approved before task approval approved
    its spec (``mapping_spec_approve_with_task``, called as it happens). Safe to call again; returns the versions
    it approved."""
    done = Task.objects.filter(pk__in=MappingSpecVersion.objects.filter(
        spec__mission=mission, status=MappingStatus.PROPOSED, task__status=TaskStatus.DONE).values("task_id")
    ).order_by("pk")
    return [version for task in done if (version := mapping_spec_approve_with_task(task=task, actor=actor))]


def _passages(text: str, *, csv_rows: bool) -> list[str]:
    """Split a document: a CSV into one passage per row (``header: value; ...``), prose into paragraphs
    (long ones cut at sentence ends near 1,200 characters)."""
    if csv_rows:
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return []
        header, body = rows[0], rows[1:]
        return ["; ".join(f"{h.strip()}: {v.strip()}" for h, v in zip(header, row, strict=False) if v.strip())
                for row in body if any(v.strip() for v in row)]
    passages = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        while len(paragraph) > 1200:
            cut = paragraph.rfind(". ", 0, 1200)
            cut = cut + 1 if cut > 200 else 1200
            passages.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if paragraph:
            passages.append(paragraph)
    return passages


@transaction.atomic
def docs_index_add_document(*, index_name: str, title: str, content: bytes | str, content_type: str = "",
                            filename: str = "", mission: Mission | None = None, actor: Actor = None,
                            ) -> IndexedDocument:
    """Store a document in the named docs index (created if new) and index its passages for full-text search.
    Text, Markdown and CSV are understood; anything else is refused."""
    raw = content.encode() if isinstance(content, str) else content
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DomainError(f"{title}: only UTF-8 text, Markdown or CSV documents can be indexed.",
                          field="content") from None
    is_csv = content_type == "text/csv" or filename.lower().endswith(".csv")
    passages = _passages(text, csv_rows=is_csv)
    if not passages:
        raise DomainError(f"{title}: the document has no text to index.", field="content")
    file = ContentFile(raw, name=display_name(filename or title))
    try:
        validate_upload_size(file)
    except Exception as error:  # a ValidationError with the limit in its message
        raise DomainError(" ".join(getattr(error, "messages", [str(error)])), field="content") from None
    index, _ = DocsIndex.objects.get_or_create(name=index_name)
    document = IndexedDocument(index=index, title=title[:200], sha256=sha256_of(file),
                               content_type=content_type or ("text/csv" if is_csv else "text/plain"))
    document.file.save(file.name, file, save=False)
    document.save()
    Passage.objects.bulk_create([Passage(document=document, position=i, text=p) for i, p in enumerate(passages, 1)])
    if mission is not None:
        history_record(mission=mission, event="docs_index.document_added", actor=actor,
                       message=f"“{title}” added to the docs index {index_name} ({len(passages)} passages).",
                       data={"index": index_name, "document": document.pk, "passages": len(passages)})
    return document
