"""Define a target's mapping spec: map every target column onto the source, ask where unsure, propose a
versioned spec (JSON, SQL, lineage, diff) for the Mission Owner's approval."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from agents.base import AgentContext, BaseAgent, Failed, NeedsApproval, NeedsInput, Outcome
from agents.connectors import Adapter, ConnectorError
from agents.registry import register
from genesis.documents import loads_json
from genesis.exceptions import DomainError
from genesis.wording import percent
from pipeline import assist
from pipeline.choices import MappingStatus
from pipeline.dbt.build import read_partition
from pipeline.dbt.spec import target_from_dict
from pipeline.dbt.sqlgen import model_sql, render_month
from pipeline.expressions import ExpressionError
from pipeline.implementations.common import (
    artifact_id,
    beat,
    mission_spec,
    open_source,
    say,
    stop_requested,
    write,
)
from pipeline.implementations.profiling import PROFILE_ARTIFACT
from pipeline.implementations.reuse import verify_reused
from pipeline.mapping import Ambiguity, Catalog, MappingProblem, TargetMapper, column_lineage
from pipeline.models import DocsIndex
from pipeline.profiler import profile_source
from pipeline.selectors import docs_search, mapping_spec_latest
from pipeline.services import mapping_spec_approve_with_task, mapping_spec_propose, mapping_spec_reject
from pipeline.specfile import relationships, target_spec

_SENTENCE = re.compile(r"(?<=[.;!?\n])\s+")
_QUOTED = re.compile(r"`[^`]*`")
_FEEDBACK_SQL = re.compile(r"`([^`]+)`|\bsql:\s*(.+)$", re.I | re.S)
_QUESTION_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z0-9_.]+?):")
# The dry run's names for the model and its totals (beside the model's own columns, which are the target's).
_MODEL, _ROWS, _DUPLICATES = "genesis_dry_run", "genesis_dry_run_rows", "genesis_dry_run_duplicate_keys"


def _stored_profile(context: AgentContext, adapter: Adapter, tables: list[str]) -> dict[str, Any] | None:
    """The mission's latest source profile if it covers this connection and these tables."""
    content = context.read_artifact(PROFILE_ARTIFACT) if context.read_artifact else None
    if content is None:
        return None
    try:
        profile = loads_json(content)
    except ValueError:
        return None
    have = {t.upper() for t in profile.get("tables", {})}
    if profile.get("connection") != adapter.connection.name or not {t.upper() for t in tables} <= have:
        return None
    return profile


def answers_by_key(context: AgentContext, target: str) -> dict[str, str]:
    """Answers to this agent's earlier questions about ``target``, keyed by the column (or column.part)."""
    result: dict[str, str] = {}
    for item in context.answers:
        answer = str(item.get("answer") or item.get("text") or "").strip()
        ctx = item.get("context") or {}
        column = ctx.get("column") if isinstance(ctx, dict) else None
        if column and "->" in column and "." not in column:
            key = column  # a relationship between source tables holds for every target
        elif column and "." in column and column.split(".", 1)[0].upper() == target.upper():
            key = column.split(".", 1)[1]
        else:
            match = _QUESTION_KEY.match(str(item.get("question") or ""))
            if not match or match[1].upper() != target.upper():
                continue
            key = match[2]
        if answer:
            result[key.upper()] = answer
    return result


def feedback_overrides(context: AgentContext, target: dict[str, Any], catalog: Catalog
                       ) -> tuple[dict[str, str], list[str], list[str]]:
    """Read the reviewer's feedback: a sentence naming one target column and one source column maps that
    column there. Returns (overrides, columns the feedback questions without naming a source, unread texts)."""
    names = [c["name"] for c in target["columns"]]
    overrides: dict[str, str] = {}
    unclear_columns: list[str] = []
    unread: list[str] = []
    for item in context.feedback:
        text = str(item.get("text") or item.get("feedback") or "").strip()
        if not text:
            continue
        understood = False
        for sentence in _sentences(text):
            prose = re.sub(r"`[^`]*`|\bsql:.*$", " ", sentence, flags=re.I | re.S)
            mentioned = [n for n in names if re.search(rf"\b{re.escape(n)}\b", prose, re.I)]
            rest = sentence
            for n in mentioned:
                rest = re.sub(rf"\b{re.escape(n)}\b", " ", rest, flags=re.I)
            written = _FEEDBACK_SQL.search(sentence)
            if len(mentioned) == 1 and written is not None:
                # "TOTAL_FINES should be `SUM(Fine.AmountCents) / 100.0`" (or "... sql: ..."): that expression.
                overrides[mentioned[0].upper()] = f"sql: {(written[1] or written[2]).strip()}"
                understood = True
                continue
            ref = catalog.find(rest)
            if len(mentioned) == 1 and ref is not None:
                overrides[mentioned[0].upper()] = str(ref)
                understood = True
            elif mentioned:
                unclear_columns += [m for m in mentioned if m not in unclear_columns]
                understood = True
        if not understood:
            unread.append(text)
    return overrides, unclear_columns, unread


def _sentences(text: str) -> list[str]:
    """The sentences of a review text; a `quoted expression` is never split, whatever punctuation it holds."""
    quoted: list[str] = []

    def hide(match: re.Match) -> str:
        quoted.append(match[0])
        return f"\x00{len(quoted) - 1}\x00"

    masked = _QUOTED.sub(hide, text)
    return [re.sub(r"\x00(\d+)\x00", lambda m: quoted[int(m[1])], part) for part in _SENTENCE.split(masked)]


def docs_hints(context: AgentContext, target: dict[str, Any], catalog: Catalog) -> tuple[str, dict[str, list]]:
    """Search the mission's docs index (task config ``docs_index``, else the mission's) for each copied target
    column; the source columns a matching passage names become cited candidates."""
    name = context.config.get("docs_index") or getattr(context.mission, "docs_index", "") or ""
    if not name:
        return "", {}
    if not DocsIndex.objects.filter(name=name).exists():
        say(context, f"the docs index {name!r} does not exist; mapping without it")
        return name, {}
    hints: dict[str, list] = {}
    for column in target["columns"]:
        if column.get("rule"):
            continue
        for hit in docs_search(index_name=name, query=column["name"], phrase=True, limit=5):
            citation = {"index": name, "title": hit["title"], "position": hit["position"], "passage": hit["passage"],
                        "text": hit["text"][:500]}
            for ref in catalog.refs_in(hit["text"], skip=column["name"]):
                hints.setdefault(column["name"].upper(), []).append((ref, citation))
    return name, hints


def spec_markdown(content: dict[str, Any], version: int) -> str:
    lines = [f"# {content['target']} mapping spec v{version}", "", content.get("description", ""), "",
             f"Grain: one row per {content['grain']['entity']} ({content['grain']['entity_table']}."
             f"{content['grain']['entity_key']})"
             + (f" and month of {content['grain']['period']}" if content["grain"]["period"] else "") + ".", "",
             "| column | type | source | transformation | confidence |", "|---|---|---|---|---:|"]
    for col in content["columns"]:
        sources = ", ".join(f"{s['table']}.{s['column']}" for s in col["sources"]) or "-"
        lines.append(f"| {col['name']} | {col['target_type']} | {sources} | {col['transformation']} | "
                     f"{percent(col['confidence'])} |")
    lines += ["", "## Reasoning", ""]
    lines += [f"- **{c['name']}**: {c['reasoning'] or '-'}" for c in content["columns"]]
    cited = [(c["name"], cit) for c in content["columns"] for cit in c.get("citations", [])]
    if cited:
        lines += ["", "## Passages cited", ""]
        lines += [f"- {name}: “{cit['title']}” §{cit['position']}: {cit['text']}" for name, cit in cited]
    dry = content.get("dry_run", {})
    lines += ["", "## Dry run", "", f"Over {dry.get('scope', 'all rows')}: {dry.get('rows', '?')} rows; "
              f"{dry.get('duplicate_grain_rows', '?')} duplicate grain keys.",
              "", "## SQL", "", "```sql", content["sql"], "```", ""]
    return "\n".join(lines)


@register
class FieldMappingAgent(BaseAgent):
    kind = "field_mapping"
    description = ("Maps each column of a target table onto the profiled source (name, description, type, "
                   "profile and business rules), asks where unsure, and proposes a versioned mapping spec with "
                   "its SQL and column lineage for approval.")

    def run(self, context: AgentContext) -> Outcome:
        target_name = context.config.get("target") or context.config.get("target_table")
        if target_name and context.config.get("from_mission"):
            # Launched from another mission's approved mappings: verify that spec rather than map again.
            return verify_reused(context, target_name=target_name, dry_run=self._dry_run, refusal=_refusal)
        return self._map(context)

    def _map(self, context: AgentContext) -> Outcome:
        target_name = context.config.get("target") or context.config.get("target_table")
        if not target_name:
            return Failed(error="The task config names no target (config.target, e.g. CLAIM_SUMMARY).",
                          retryable=False)
        try:
            spec = mission_spec(context)
            target = target_spec(spec, target_name)
            adapter = open_source(context, spec)
        except DomainError as error:
            return Failed(error=error.message, retryable=False)
        target_name = target["name"]
        try:
            profile = _stored_profile(context, adapter, sorted(adapter.allowed_tables or []))
            if profile is None:
                say(context, "no stored profile of this source; profiling it now")
                profile = profile_source(adapter, cancelled=lambda: stop_requested(context),
                                         relationships=relationships(spec))
            beat(context)
            catalog = Catalog(profile, spec["sources"].get("tables"))

            # A review that came back: the proposed version is rejected with its feedback, and the feedback
            # steers this run (a named source for a named column, or a question when it names no source).
            latest = mapping_spec_latest(mission=context.mission, target_table=target_name)
            if context.feedback and latest is not None and latest.status == MappingStatus.PROPOSED:
                last = context.feedback[-1]
                users = get_user_model()
                reviewer = users.objects.filter(**{users.USERNAME_FIELD: last.get("by") or ""}).first()
                mapping_spec_reject(version=latest, actor=reviewer,
                                    feedback=str(last.get("text") or last.get("feedback") or last))
            from_feedback, unclear, unread = feedback_overrides(context, target, catalog)
            overrides = {k.upper(): v for k, v in (context.config.get("overrides") or {}).items()}
            answers = answers_by_key(context, target_name)
            for column in unclear:
                if column.upper() not in answers and column.upper() not in from_feedback:
                    return NeedsInput(
                        question=f"{target_name}.{column}: the review's feedback questions this column but names "
                                 f"no source column. Which source column should {column} use?",
                        options=[str(r) for r in catalog.words][:12] + ["none"],
                        context={"column": f"{target_name}.{column}", "reason": "feedback"},
                    )
            if unread and "FEEDBACK" not in answers:
                return NeedsInput(
                    question=f"{target_name}.FEEDBACK: I could not tell which column this feedback is about: "
                             f"“{unread[-1]}”. Please answer as COLUMN = TABLE.SOURCE_COLUMN.",
                    options=[], context={"column": f"{target_name}.FEEDBACK", "reason": "feedback"},
                )
            if "FEEDBACK" in answers:
                extra, _, _ = feedback_overrides(
                    AgentContext(mission=context.mission, task=context.task, run=context.run, agent=context.agent,
                                 config={}, connections={}, feedback=[{"text": answers["FEEDBACK"]}]),
                    target, catalog)
                from_feedback.update(extra)

            index_name, hints = docs_hints(context, target, catalog)
            mapper = TargetMapper(target=target, catalog=catalog, dialect=adapter.dialect, answers=answers,
                                  overrides=overrides, feedback=from_feedback, hints=hints)
            content, stop = self._plan(context, adapter, mapper, profile, target_name, catalog)
            if stop is not None:
                return stop
        except ConnectorError as error:
            return Failed(error=f"{target_name}: {error.message}", retryable=False)
        except InterruptedError:
            return Failed(error="Cancelled while profiling.", retryable=False)
        finally:
            adapter.close()

        lineage = column_lineage(content["sql"], dialect=content["dialect"], profile=profile,
                                 columns=[c["name"] for c in content["columns"]])
        for column in content["columns"]:
            column["lineage"] = lineage.get(column["name"], [])
        content["source"] = {"connection": profile["connection"], "dialect": profile["dialect"],
                             "tables": sorted(profile["tables"])}
        content["docs_index"] = index_name or None
        content["feedback_applied"] = [str(f.get("text") or f.get("feedback") or "") for f in context.feedback]
        version = mapping_spec_propose(
            mission=context.mission, target_table=target_name, content=content, sql=content["sql"],
            dialect=content["dialect"], lineage=lineage, task=context.task, run=context.run, actor=context.agent,
        )
        spec_artifact = write(context, name=f"{target_name}.mapping_spec.json", kind="spec", content=content,
                              content_type="application/json")
        write(context, name=f"{target_name}.sql", kind="sql", content=content["sql"] + "\n",
              content_type="application/sql")
        write(context, name=f"{target_name}.mapping_spec.md", kind="report",
              content=spec_markdown(content, version.number), content_type="text/markdown")
        low = [c["name"] for c in content["columns"] if c["confidence"] < 0.7]
        changed = version.diff.get("changed", {})
        summary = (f"{target_name} mapping spec v{version.number}: {len(content['columns'])} columns mapped, "
                   f"dry run over {content['dry_run']['scope']}: {content['dry_run']['rows']} rows, "
                   f"{content['dry_run']['duplicate_grain_rows']} "
                   f"duplicate grain keys."
                   + (f" Lowest confidence: {', '.join(low)}." if low else "")
                   + (f" Changed since the last version: {', '.join(changed)}." if changed else ""))
        say(context, summary)
        return NeedsApproval(summary=summary, outputs={
            "mapping_spec_id": version.spec_id, "version": version.number, "target": target_name,
            "rows": content["dry_run"]["rows"], "spec_artifact": artifact_id(spec_artifact),
        })

    def _plan(self, context: AgentContext, adapter: Adapter, mapper: TargetMapper, profile: dict[str, Any],
              target_name: str, catalog: Catalog, *, suggest: bool = True) -> tuple[dict[str, Any], Outcome | None]:
        """Map the target and dry-run its SQL: the content, or the outcome that stops here (a question, a refusal).
        ``suggest``: a question may carry a language model's proposal, proven first (``pipeline.assist``)."""
        try:
            content = mapper.plan()
        except Ambiguity as question:
            say(context, f"asking: {question.question}")
            key = question.column if "->" in question.column else f"{target_name}.{question.column}"
            ask_context: dict[str, Any] = {"column": key, "reason": question.reason, "free_answer": True,
                                           "draft": mapper.draft()}
            text, default = question.question, question.default
            suggestion = (self._suggest(context, adapter, mapper, profile, target_name, catalog, question)
                          if suggest else None)
            if suggestion is not None:
                default = suggestion.answer
                text += (f"\nSuggested answer (a language model's proposal; {suggestion.checked}): "
                         f"{suggestion.answer}" + (f"\nIts reasoning: {suggestion.reasoning}" if suggestion.reasoning
                                                   else ""))
                ask_context["suggested"] = {"answer": suggestion.answer, "by": "language model",
                                            "checked": suggestion.checked}
            return {}, NeedsInput(question=text, options=question.options, default=default, context=ask_context)
        except MappingProblem as problem:
            return {}, Failed(error=f"{target_name}: {problem}", retryable=False)
        except ExpressionError as error:
            return {}, _expression_refused(target_name, error.path, error.message, catalog)
        try:
            content["dry_run"] = self._dry_run(adapter, content, profile)
        except ConnectorError as error:
            origin = _failing_column(adapter, mapper, content)
            if origin is None:
                raise
            return {}, _expression_refused(target_name, origin, f"{origin}: the dry run failed: {error.message}",
                                           catalog)
        refusal = _refusal(adapter, content, target_name)
        if refusal is not None:
            say(context, f"refused: {getattr(refusal, 'question', None) or refusal.error}")
        return content, refusal

    def _suggest(self, context: AgentContext, adapter: Adapter, mapper: TargetMapper, profile: dict[str, Any],
                 target_name: str, catalog: Catalog, question: Ambiguity) -> assist.Suggestion | None:
        """Ask the language model (if one is configured) and prove its proposal as a person's answer is proven: the
        target mapped again with it, dry-run, checked for multiplied rows, and the measures it decides reconciled
        (target total against the measured table's own total). None unless it passes."""
        asked = assist.ask(context, target=mapper.target, key=question.column, question=question.question,
                           profile=profile)
        if asked is None:
            return None
        assistant, exchange = asked
        suggestion = None
        if exchange.ok:
            answer = assist.answer_text(exchange.data, question.column)
            trial = TargetMapper(target=mapper.target, catalog=catalog, dialect=mapper.dialect,
                                 answers={**mapper.answers, question.column.upper(): answer},
                                 overrides=mapper.overrides, feedback=mapper.feedback, hints=mapper.hints)
            content, stop = self._plan(context, adapter, trial, profile, target_name, catalog, suggest=False)
            same = isinstance(stop, NeedsInput) and str((stop.context or {}).get("column", "")).upper().endswith(
                question.column.upper())
            totals, unreconciled = (assist.reconciled(adapter, content, question.column) if stop is None
                                    else ([], ""))
            failed = [t for t in totals if not t.passed]
            if not failed and (stop is None or (isinstance(stop, NeedsInput) and not same)):
                rows = (content.get("dry_run") or {}).get("rows") if content else None
                checked = ("checked: it parses, uses allowed columns"
                           + (f", the dry run gives {rows} rows, none multiplied" if rows is not None
                              else "; the rest of the target still has open questions")
                           + "".join(f", {t.column} reconciles (target total {t.target_total:,.6g} = source total "
                                     f"{t.source_total:,.6g})" for t in totals)
                           + (f"; {unreconciled}" if unreconciled else ""))
                suggestion = assist.Suggestion(answer=answer, reasoning=str(exchange.data.get("reasoning") or ""),
                                               checked=checked)
                exchange.validation = {"passed": True, "answer": answer, "checked": checked,
                                       "reconciliation": [asdict(t) for t in totals]}
            else:
                why = (getattr(stop, "question", None) or getattr(stop, "error", None) or
                       "; ".join(f"reconciliation of {t.column} failed: {t.detail}" for t in failed) or "refused")
                exchange.validation = {"passed": False, "answer": answer, "refused": str(why)[:1000],
                                       "reconciliation": [asdict(t) for t in totals]}
                say(context, f"the language model's proposal for {question.column} was refused: {str(why)[:200]}")
        assistant.attach(exchange, f"llm-proposal-{target_name}-{question.column}.json".replace("->", "-to-"))
        return suggestion

    def approved(self, *, task, run, actor) -> None:
        """The owner approved the proposal: the spec version this task proposed becomes the approved one, in the
        same transaction (the build reads approved versions only)."""
        mapping_spec_approve_with_task(task=task, actor=actor)

    def _dry_run(self, adapter: Adapter, content: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
        """Run the target's SQL on the source: its rows, a sample, and the grain keys held by more than one row.
        Over all rows, or over the latest month when the month-partitioned table is larger than
        GENESIS_DRY_RUN_FULL_ROWS (the backfill checks every month later)."""
        sql, scope = content["sql"], "all rows"
        month = _month_sample(adapter, content, profile)
        if month is not None:
            sql, scope = month
        grain = content["grain"]["columns"]
        # One statement: the model computed once (a materialized CTE), its first rows and, beside each, the rows in
        # all and the grain keys held by more than one row (none when there is no grain). No row: the model is empty.
        if grain:
            cols = ", ".join(adapter.quote(c) for c in grain)
            totals = (f"SELECT COALESCE(SUM(n), 0) AS {_ROWS}, COALESCE(SUM(CASE WHEN n > 1 THEN 1 ELSE 0 END), 0) "  # noqa: S608
                      f"AS {_DUPLICATES} FROM (SELECT {cols}, COUNT(*) AS n FROM {_MODEL} GROUP BY {cols}) AS g")
        else:
            totals = f"SELECT COUNT(*) AS {_ROWS}, 0 AS {_DUPLICATES} FROM {_MODEL}"  # noqa: S608
        sample = adapter.query(
            f"WITH {_MODEL} AS MATERIALIZED ({sql}) SELECT * FROM (SELECT * FROM {_MODEL} LIMIT 5) AS s "  # noqa: S608
            f"CROSS JOIN ({totals}) AS t", limit=5)
        rows, duplicates = sample.rows[0][-2:] if sample.rows else (0, 0)
        return {"rows": int(rows), "scope": scope, "columns": sample.columns[:-2],
                "sample": [[v if isinstance(v, int | float | str) or v is None else str(v) for v in row[:-2]]
                           for row in sample.rows],
                "duplicate_grain_rows": int(duplicates), "elapsed_ms": sample.elapsed_ms}


def _failing_column(adapter: Adapter, mapper: TargetMapper, content: dict[str, Any]) -> str | None:
    """The origin (spec path or answer key) of the first written expression whose own SELECT fails."""
    for column in content["columns"]:
        if not column.get("origin"):
            continue
        try:
            adapter.query(f"SELECT * FROM ({mapper.sql(only=column['name'])}) AS q", limit=1)  # noqa: S608
        except ConnectorError:
            return column["origin"]
    return None


def _expression_refused(target: str, path: str, message: str, catalog: Catalog) -> Outcome:
    """A written expression that cannot be used: one a person answered is asked again with the reason; one the
    spec file holds fails the task naming its path (the spec must change)."""
    if path.startswith("answers."):
        key = path.removeprefix("answers.")
        return NeedsInput(
            question=f"{key}: the answer cannot be used ({message.removeprefix(path + ': ')}). Answer with a "
                     "source column (TABLE.COLUMN), a SQL expression (sql: ...) or none.",
            options=[str(r) for r in catalog.words][:12] + ["none"], default="none",
            context={"column": key, "reason": "answer not usable", "free_answer": True},
        )
    return Failed(error=f"{target}: {message}", retryable=False)


def _lossy_values(adapter: Adapter, table: str, column: str, to: str) -> tuple[int, list[Any]]:
    """How many non-null values of ``table.column`` a cast to ``to`` (integer or decimal) would lose or change, and
    a few of them."""
    c, t = adapter.quote(column), adapter.quote(table)
    text = f"TRIM(CAST({c} AS TEXT))"
    pattern = r"^[+-]?\d+$" if to == "integer" else r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
    # Where the engine has regular expressions the text is matched (DuckDB's CAST raises on a value it cannot
    # convert). SQLite has none, and its CAST gives 0 instead of raising: a whole number is cast back and compared
    # with its text, a decimal's text is looked at with GLOB.
    matches = adapter.regex_match_sql(text, pattern)
    if matches is not None:
        where = f"{c} IS NOT NULL AND NOT ({matches})"
    elif to == "integer":
        where = f"{c} IS NOT NULL AND CAST(CAST({c} AS INTEGER) AS TEXT) <> {text}"
    else:
        where = f"{c} IS NOT NULL AND ({text} = '' OR {text} GLOB '*[^0-9.eE+-]*')"
    count = int(adapter.run_internal(f"SELECT COUNT(*) FROM {t} WHERE {where}").rows[0][0])  # noqa: S608
    examples = [row[0] for row in adapter.run_internal(f"SELECT {c} FROM {t} WHERE {where}", limit=3).rows]  # noqa: S608
    return count, examples


def _refusal(adapter: Adapter, content: dict[str, Any], target: str) -> Outcome | None:
    """What the dry run shows must not be proposed: a cast a person chose that would lose values (asked again), or
    a grain key on several rows (a join multiplies rows: refused, naming the joins)."""
    for column in content["columns"]:
        for cast in column.get("casts", []):
            lost, examples = _lossy_values(adapter, cast["table"], cast["column"], cast["to"])
            if lost:
                return NeedsInput(
                    question=f"{target}.{column['name']}: casting {cast['table']}.{cast['column']} to "
                             f"{column['target_type']} would lose {lost:,} values (e.g. "
                             f"{', '.join(map(repr, examples))}), so the cast is refused. Keep its values as they "
                             "are?",
                    options=["keep TEXT"], default="keep TEXT",
                    context={"column": f"{target}.{column['name']}.type", "reason": "lossy cast"},
                )
    duplicates = content["dry_run"]["duplicate_grain_rows"]
    if duplicates:
        joins = "; ".join(j["on"] for j in content["joins"]) or "none"
        return Failed(error=f"{target}: {duplicates:,} grain keys ({', '.join(content['grain']['columns'])}) fall "
                            f"on more than one row: a join multiplies rows (joins: {joins}). Declare the right "
                            "relationship in the spec file's sources.relationships, or answer the relationship "
                            "question, and map again.", retryable=False)
    return None


def _month_sample(adapter: Adapter, content: dict[str, Any], profile: dict[str, Any]) -> tuple[str, str] | None:
    """The target's model over the latest month of its partition table, and the scope's name; None when the
    table is small enough to read whole or the target has no month partition."""
    target = target_from_dict(content, sql=content["sql"], dialect=content["dialect"])
    # A monthly grain names its period's date (TABLE.COLUMN); else a date column of the target gives it.
    table, _, column = (content["grain"].get("period") or "").partition(".")
    config = {"partition": {"table": table, "column": column}} if table and column else {}
    try:
        bronze, _, partition = read_partition(adapter, [target], config)
    except DomainError:
        return None  # no usable partition: the dry run reads every row
    if partition is None:
        return None
    table = next((t for name, t in profile["tables"].items() if name.upper() == partition.table.upper()), {})
    if (table.get("row_count") or 0) <= settings.GENESIS_DRY_RUN_FULL_ROWS:
        return None
    # The profile read the column's exact maximum; a profile without it (or a column it did not see) asks.
    columns = {name.upper(): info for name, info in (table.get("columns") or {}).items()}
    latest = (columns.get(partition.column.upper()) or {}).get("max")
    if latest is None:
        latest = adapter.scalar(f"SELECT MAX({adapter.quote(partition.column)}) "  # noqa: S608 - quoted identifiers
                                f"FROM {adapter.quote(partition.table)}")
    if latest is None:
        return None
    month = str(latest)[:7]
    model = model_sql(target, dialect=adapter.dialect, bronze_tables=bronze, partition=partition)
    return (render_month(model, month=month, dialect=adapter.dialect),
            f"month {month} of {partition.table}.{partition.column} ({table['row_count']:,} rows in all)")
