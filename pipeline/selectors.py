"""Reads of mapping specs and environments shared by agents, pages and the API."""

from __future__ import annotations

from django.db.models import Case, IntegerField, QuerySet, Value, When

from pipeline.choices import MappingStatus
from pipeline.models import Environment, MappingSpec, MappingSpecVersion


def mapping_specs_of(*, mission) -> QuerySet[MappingSpec]:
    return MappingSpec.objects.filter(mission=mission).prefetch_related("versions").order_by("target_table")


def mapping_spec_latest(*, mission, target_table: str) -> MappingSpecVersion | None:
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, spec__target_table=target_table).order_by("-number").first())


def mapping_spec_approved(*, mission, target_table: str) -> MappingSpecVersion | None:
    """The approved version later steps (dbt building, validation) must use, or None."""
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, spec__target_table=target_table, status=MappingStatus.APPROVED)
            .order_by("-number").first())


def mapping_specs_approved(*, mission) -> dict[str, MappingSpecVersion]:
    versions = (MappingSpecVersion.objects.select_related("spec")
                .filter(spec__mission=mission, status=MappingStatus.APPROVED).order_by("spec__target_table"))
    return {v.spec.target_table: v for v in versions}


def mapping_specs_waiting(*, mission) -> QuerySet[MappingSpecVersion]:
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, status=MappingStatus.PROPOSED).order_by("spec__target_table"))


def _words(text: str) -> list[str]:
    import re

    return [w for w in re.findall(r"[A-Za-z0-9]+", text.replace("_", " ")) if w]


def docs_search(*, index_name: str, query: str, phrase: bool = True, limit: int = 5) -> list[dict]:
    """Passages of the named docs index matching ``query`` by the database's full-text search (SQLite FTS5,
    PostgreSQL tsvector), best first: ``{"passage", "document", "title", "position", "text", "rank"}``.
    With ``phrase`` the words must appear together, in order; otherwise any of them matches."""
    from django.db import connection

    from pipeline.models import Passage

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
        params = [text, index_name, text, limit]
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


def mapping_lineage(*, mission) -> list[MappingSpecVersion]:
    """For each target of the mission, the version whose lineage the pages show (the latest approved, else the
    latest proposed), with ``rows``: each target column, the bronze ``TABLE.COLUMN``s it traces back to, and its
    transformation. One query."""
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
        version.rows = []
        for name in names:
            column = columns.get(name, {})
            sources = (version.lineage or {}).get(name) or [
                f"{s.get('table')}.{s.get('column')}" for s in column.get("sources", []) if isinstance(s, dict)]
            version.rows.append({
                "column": name, "sources": sources, "expression": column.get("expression", ""),
                "transformation": column.get("transformation", ""), "confidence": column.get("confidence"),
                "rule": column.get("rule", ""),
            })
    return result


# dev, test, stage, prod: the order a project is promoted in (not alphabetical).
_STAGE_ORDER = Case(*[When(name=name, then=Value(i)) for i, name in enumerate(Environment.Name.values)],
                    output_field=IntegerField())


def environments() -> QuerySet[Environment]:
    """Every environment with its mission and target connection, per mission in stage order (one query)."""
    return Environment.objects.select_related("mission", "target").order_by("mission_id", _STAGE_ORDER)


def environments_of(*, mission) -> QuerySet[Environment]:
    """The mission's environments with their target connections, dev → prod (one query)."""
    return Environment.objects.select_related("target").filter(mission=mission).order_by(_STAGE_ORDER)


def missions_with_approved_mappings(*, user) -> list[tuple[int, str]]:
    """(id, name) of the missions the user may read that have an approved mapping spec, newest first: those a new
    mission may reuse the mappings of (``from_mission``). One query."""
    from missions.models import Mission

    return list(
        Mission.objects.visible_to(user).filter(mapping_specs__versions__status=MappingStatus.APPROVED)
        .order_by("-pk").values_list("pk", "name").distinct()[:200]
    )
