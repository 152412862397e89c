"""Reads of mapping specs and environments shared by agents, pages and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from missions.models import Mission
from missions.permissions import can_act_on_task
from missions.selectors import roles_map
from pipeline.choices import MappingStatus
from pipeline.models import Environment, MappingSpec, MappingSpecVersion, Passage
from pipeline.rule_words import rule_sentence
from pipeline.specdiff import DIFF_FIELDS, as_text, column_changes, resolved_expression, source_names, table_aliases
from tasks.choices import QuestionStatus
from tasks.models import Question, Task

if TYPE_CHECKING:
    from history.services import Viewer
    from missions.models import Mission


def mapping_specs_of(*, mission: Mission) -> QuerySet[MappingSpec]:
    return MappingSpec.objects.filter(mission=mission).prefetch_related("versions").order_by("target_table")


def mapping_spec_latest(*, mission: Mission, target_table: str) -> MappingSpecVersion | None:
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, spec__target_table=target_table).order_by("-number").first())


def mapping_spec_approved(*, mission: Mission, target_table: str) -> MappingSpecVersion | None:
    """The approved version later steps (dbt building, validation) must use, or None."""
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, spec__target_table=target_table, status=MappingStatus.APPROVED)
            .order_by("-number").first())


def mapping_specs_approved(*, mission: Mission) -> dict[str, MappingSpecVersion]:
    versions = (MappingSpecVersion.objects.select_related("spec")
                .filter(spec__mission=mission, status=MappingStatus.APPROVED).order_by("spec__target_table"))
    return {v.spec.target_table: v for v in versions}


def mapping_specs_waiting(*, mission: Mission) -> QuerySet[MappingSpecVersion]:
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, status=MappingStatus.PROPOSED).order_by("spec__target_table"))


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z0-9]+", text.replace("_", " ")) if w]


def docs_search(*, index_name: str, query: str, phrase: bool = True, limit: int = 5) -> list[dict[str, Any]]:
    """Passages of the named docs index matching ``query`` by the database's full-text search (SQLite FTS5,
    PostgreSQL tsvector), best first: ``{"passage", "document", "title", "position", "text", "rank"}``.
    With ``phrase`` the words must appear together, in order; otherwise any of them matches."""
    words = _words(query)
    if not words:
        return []
    if connection.vendor == "postgresql":
        text = " ".join(words) if phrase else " | ".join(words)
        func = "phraseto_tsquery" if phrase else "to_tsquery"
        sql = (f"SELECT p.id, ts_rank(to_tsvector('english', p.text), {func}('english', %s)) AS rank "  # noqa: S608
               "FROM agents_passage p JOIN agents_indexeddocument d ON d.id = p.document_id "
               "JOIN agents_docsindex i ON i.id = d.index_id "
               f"WHERE i.name = %s AND to_tsvector('english', p.text) @@ {func}('english', %s) "
               "ORDER BY rank DESC, p.id LIMIT %s")
        params: list[str | int] = [text, index_name, text, limit]
    else:
        match = '"' + " ".join(words) + '"' if phrase else " OR ".join(f'"{w}"' for w in words)
        sql = ("SELECT p.id, -bm25(agents_passage_fts) AS rank FROM agents_passage_fts "
               "JOIN agents_passage p ON p.id = agents_passage_fts.rowid "
               "JOIN agents_indexeddocument d ON d.id = p.document_id JOIN agents_docsindex i ON i.id = d.index_id "
               "WHERE agents_passage_fts MATCH %s AND i.name = %s ORDER BY rank DESC, p.id LIMIT %s")
        params = [match, index_name, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ranked = cursor.fetchall()
    passages = Passage.objects.select_related("document").in_bulk([pk for pk, _ in ranked])
    return [{"passage": pk, "document": passages[pk].document_id, "title": passages[pk].document.title,
             "position": passages[pk].position, "text": passages[pk].text, "rank": round(float(rank), 4)}
            for pk, rank in ranked if pk in passages]


def mapping_lineage(*, mission: Mission) -> list[MappingSpecVersion]:
    """For each target of the mission, the version whose lineage the pages show (the latest approved, else the
    latest proposed), with ``rows``: each target column, the bronze ``TABLE.COLUMN``s it traces back to, its
    transformation, and its rule in words (``rule_text``). One query."""
    chosen: dict[int, MappingSpecVersion] = {}
    versions = (MappingSpecVersion.objects.select_related("spec", "decided_by")
                .filter(spec__mission=mission).order_by("spec__target_table", "-number"))
    for version in versions:
        best = chosen.get(version.spec_id)
        if best is None or (version.status == MappingStatus.APPROVED and best.status != MappingStatus.APPROVED):
            chosen[version.spec_id] = version
    result = sorted(chosen.values(), key=lambda v: v.spec.target_table)
    for version in result:
        columns = {c.get("name"): c for c in (version.content or {}).get("columns", []) if isinstance(c, dict)}
        names = list(version.lineage or {}) + [n for n in columns if n not in (version.lineage or {})]
        version.rows = []  # type: ignore[attr-defined]  # shown by the page
        for name in names:
            column = columns.get(name, {})
            sources = (version.lineage or {}).get(name) or [
                f"{s.get('table')}.{s.get('column')}" for s in column.get("sources", []) if isinstance(s, dict)]
            version.rows.append({  # type: ignore[attr-defined]
                "column": name, "sources": sources, "expression": column.get("expression", ""),
                "transformation": column.get("transformation", ""), "confidence": column.get("confidence"),
                "rule": column.get("rule", ""), "rule_text": rule_sentence(column.get("rule")),
            })
    return result


# dev, test, stage, prod: the order a project is promoted in (not alphabetical).
_STAGE_ORDER = Case(*[When(name=name, then=Value(i)) for i, name in enumerate(Environment.Name.values)],
                    output_field=IntegerField())


def environments() -> QuerySet[Environment]:
    """Every environment with its mission and target connection, per mission in stage order (one query)."""
    return Environment.objects.select_related("mission", "target").order_by("mission_id", _STAGE_ORDER)


def environments_of(*, mission: Mission) -> QuerySet[Environment]:
    """The mission's environments with their target connections, dev → prod (one query)."""
    return Environment.objects.select_related("target").filter(mission=mission).order_by(_STAGE_ORDER)


# --- approval cards: what a reviewer decides on, without leaving the page ------------------------------------------


@dataclass
class SpecRow:
    """One target column of a proposed mapping spec as the card's table shows it."""

    column: str
    target_type: str
    sources: list[str]
    expression: str  # shown when the column is more than a copy of one source column
    rule: str
    confidence: int | None  # percent
    evidence: str
    decided_by: str
    citations: list[str]
    questions: list[Question] = field(default_factory=list)
    asked: bool = False  # the column a question shown with the table asks about


@dataclass
class DiffColumn:
    """A target column added, removed or changed since the previous version, with ``(field, old, new)`` texts."""

    column: str
    kind: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class ApprovalCard:
    """A task waiting for a person's approval, with the mapping spec version it proposes (if it proposes one): the
    spec as rows, the diff from the version before it, the dry run's figures, the open questions about it, and
    whether the person looking may decide."""

    task: Task
    can_decide: bool
    version: MappingSpecVersion | None = None
    previous_number: int | None = None
    previous_feedback: str = ""  # why the version before was rejected, if it was
    rows: list[SpecRow] = field(default_factory=list)
    diff: list[DiffColumn] = field(default_factory=list)
    first_version: bool = False
    dry_run: dict[str, Any] | None = None
    questions: list[Question] = field(default_factory=list)  # about the target but no column of the table
    # A person's review task proposes no spec itself: the newest version of each of its mission's specs.
    mission_specs: list[MappingSpecVersion] = field(default_factory=list)

    @property
    def pk(self) -> int:
        return self.task.pk

    @property
    def open_questions(self) -> list[Question]:
        return [q for row in self.rows for q in row.questions] + self.questions


def _spec_rows(content: dict[str, Any]) -> list[SpecRow]:
    rows = []
    for column in content.get("columns", []):
        if not isinstance(column, dict):
            continue
        sources = source_names(column.get("sources"))
        expression = str(column.get("expression") or "")
        plain = column.get("kind", "direct") == "direct" and len(sources) == 1
        confidence = column.get("confidence")
        rows.append(SpecRow(
            column=str(column.get("name") or ""), target_type=str(column.get("target_type") or ""), sources=sources,
            expression="" if plain else resolved_expression(expression, table_aliases(content), content.get("dialect")),
            rule=str(column.get("transformation") or "") or as_text(column.get("rule")),
            confidence=round(float(confidence) * 100) if isinstance(confidence, int | float) else None,
            evidence=str(column.get("reasoning") or ""), decided_by=str(column.get("decided_by") or "agent"),
            citations=[f"“{c.get('title')}” §{c.get('position')}" for c in column.get("citations") or []
                       if isinstance(c, dict)],
        ))
    return rows


def _diff_columns(old: dict[str, Any] | None, new: dict[str, Any]) -> tuple[bool, list[DiffColumn]]:
    changes = column_changes(old, new)
    if changes["first_version"]:
        return True, []
    diff = [DiffColumn(column=name, kind="added") for name in changes["added"]]
    diff += [DiffColumn(column=name, kind="removed") for name in changes["removed"]]
    for name, fields in changes["changed"].items():
        diff.append(DiffColumn(column=name, kind="changed", changes=[
            (DIFF_FIELDS[f], as_text(old_value), as_text(new_value)) for f, (old_value, new_value) in fields.items()]))
    return False, diff


def _dry_run(content: dict[str, Any]) -> dict[str, Any] | None:
    dry = content.get("dry_run")
    if not isinstance(dry, dict) or "rows" not in dry:
        return None
    return {"rows": dry.get("rows"), "scope": dry.get("scope") or "all rows",
            "duplicate_grain_rows": dry.get("duplicate_grain_rows"), "elapsed_ms": dry.get("elapsed_ms"),
            "columns": dry.get("columns") or [], "sample": (dry.get("sample") or [])[:5]}


def _versions_for_cards(tasks: list[Task]) -> tuple[dict[int, MappingSpecVersion], dict[tuple[int, int], Any]]:
    """The newest spec version each task proposed (one query) and the version before each (one query)."""
    latest: dict[int, MappingSpecVersion] = {}
    for version in (MappingSpecVersion.objects.select_related("spec").filter(task__in=tasks)
                    .order_by("task_id", "-number")):
        if version.task_id is not None:
            latest.setdefault(version.task_id, version)
    if not latest:
        return latest, {}
    wanted = Q(pk__in=[])
    for version in latest.values():
        wanted |= Q(spec_id=version.spec_id, number=version.number - 1)
    previous = {(v.spec_id, v.number): v for v in MappingSpecVersion.objects.filter(wanted).only(
        "id", "spec_id", "number", "content", "feedback")}
    return latest, previous


def _specs_of_missions(mission_ids: set[int]) -> dict[int, list[MappingSpecVersion]]:
    """The newest version of each mapping spec of these missions, with its dry run (one query)."""
    specs: dict[int, list[MappingSpecVersion]] = {}
    if not mission_ids:
        return specs
    seen: set[int] = set()
    for version in (MappingSpecVersion.objects.select_related("spec").filter(spec__mission_id__in=mission_ids)
                    .order_by("spec__mission_id", "spec__target_table", "-number")):
        if version.spec_id not in seen:
            seen.add(version.spec_id)
            version.dry_run = _dry_run(version.content or {})  # type: ignore[attr-defined]  # shown by the page
            specs.setdefault(version.spec.mission_id, []).append(version)
    return specs


def _place_questions(card: ApprovalCard, questions: list[Question]) -> None:
    """Each open question about the card's target on its column's row, or on the card when it names no column
    of the table (or was asked by the card's task)."""
    by_column = {row.column.upper(): row for row in card.rows}
    target = card.version.spec.target_table.upper() if card.version else None
    for question in questions:
        if question.mission_id != card.task.mission_id:
            continue
        table, _, column = str((question.context or {}).get("column") or "").upper().partition(".")
        column = column.split(".")[0]
        if target and table == target and column in by_column:
            by_column[column].questions.append(question)
        elif (target and table == target) or question.task_id == card.task.pk:
            card.questions.append(question)


def approval_cards(tasks: list[Task], *, user: Any) -> list[ApprovalCard]:
    """The cards of tasks waiting for approval, as ``user`` sees them. Whatever the number of tasks, four queries:
    the person's roles in the tasks' missions, the newest spec version each task proposed, the versions before
    those, and the open questions of the missions; a fifth when a person's task (a review) is among them, for the
    newest version of each spec of its mission."""
    if not tasks:
        return []
    missions = {task.mission_id: task.mission for task in tasks}
    roles = roles_map(user, list(missions.values())) if user.is_authenticated else {}
    for task in tasks:  # the role read once per mission, for the one permission rule
        task.mission.__dict__.setdefault("_role_cache", {}).setdefault(user.pk, roles.get(task.mission_id))
    latest, previous = _versions_for_cards(tasks)
    questions = list(Question.objects.filter(mission_id__in=list(missions), status=QuestionStatus.OPEN)
                     .select_related("task", "addressed_to").order_by("created_at", "id"))
    for question in questions:
        question.task.mission = missions[question.mission_id]
        question.can_answer = bool(user.is_authenticated and (  # type: ignore[attr-defined]  # shown by the page
            question.addressed_to_id == user.pk or can_act_on_task(user, question.task)))
    specs_of = _specs_of_missions({t.mission_id for t in tasks if t.pk not in latest and t.owner_user_id})

    cards = []
    for task in tasks:
        card = ApprovalCard(task=task, can_decide=bool(user.is_authenticated and can_act_on_task(user, task)))
        version = latest.get(task.pk)
        if version is not None:
            content = version.content or {}
            before = previous.get((version.spec_id, version.number - 1))
            card.version, card.previous_number = version, before.number if before else None
            card.previous_feedback = before.feedback if before else ""
            card.rows = _spec_rows(content)
            card.first_version, card.diff = _diff_columns(before.content if before else None, content)
            card.dry_run = _dry_run(content)
        elif task.owner_user_id:
            card.mission_specs = specs_of.get(task.mission_id, [])
        _place_questions(card, questions)
        cards.append(card)
    return cards


@dataclass
class QuestionTable:
    """The mapping spec a mapping question is about, shown with it as an approval card shows a proposal: the columns
    the agent had mapped when it asked (``draft``), or else the target's newest version; the row asked about is
    marked ``asked``."""

    target: str
    rows: list[SpecRow]
    version: MappingSpecVersion | None = None  # None: the columns mapped so far, no version proposed yet


def _asked_about(question: Question) -> tuple[str, str]:
    """``(TARGET, COLUMN)`` a mapping question names in its context (``CLAIM_SUMMARY.CLAIM_ID.type`` →
    ``("CLAIM_SUMMARY", "CLAIM_ID")``); a relationship question (``CHILD->PARENT``) names no column."""
    key = str((question.context or {}).get("column") or "")
    if "->" in key:
        return "", ""
    table, _, column = key.upper().partition(".")
    return table, column.split(".")[0]


def question_tables(questions: list[Question]) -> None:
    """Give each open question from a mapping agent its ``spec_table`` (a ``QuestionTable``, or None): the columns
    mapped when it asked, with the asked row marked; a question without them shows the target's newest version.
    One query, for the versions, only when some question needs one."""
    wanted: dict[tuple[int, str], list[Question]] = {}
    for question in questions:
        question.spec_table = None  # type: ignore[attr-defined]  # shown by the page
        draft = (question.context or {}).get("draft")
        target, column = _asked_about(question)
        if isinstance(draft, dict) and isinstance(draft.get("columns"), list):
            question.spec_table = _marked(QuestionTable(  # type: ignore[attr-defined]
                target=str(draft.get("target") or target), rows=_spec_rows(draft)), column)
        elif target:
            wanted.setdefault((question.mission_id, target), []).append(question)
    if not wanted:
        return
    condition = Q(pk__in=[])
    for mission_id, target in wanted:
        condition |= Q(spec__mission_id=mission_id, spec__target_table__iexact=target)
    seen: set[tuple[int, str]] = set()
    for version in (MappingSpecVersion.objects.select_related("spec").filter(condition)
                    .order_by("spec__mission_id", "spec__target_table", "-number")):
        key = (version.spec.mission_id, version.spec.target_table.upper())
        if key in seen or key not in wanted:
            continue
        seen.add(key)
        for question in wanted[key]:
            rows = _spec_rows(version.content or {})
            question.spec_table = _marked(  # type: ignore[attr-defined]
                QuestionTable(target=version.spec.target_table, rows=rows, version=version), _asked_about(question)[1])


def _marked(table: QuestionTable, column: str) -> QuestionTable:
    for row in table.rows:
        row.asked = bool(column) and row.column.upper() == column
    return table


def missions_with_approved_mappings(*, user: Viewer) -> list[tuple[int, str]]:
    """(id, name) of the missions the user may read that have an approved mapping spec, newest first: those a new
    mission may reuse the mappings of (``from_mission``). One query."""
    return list(
        Mission.objects.visible_to(user).filter(mapping_specs__versions__status=MappingStatus.APPROVED)
        .order_by("-pk").values_list("pk", "name").distinct()[:200]
    )
