"""Field mapping: from a target's spec (names, descriptions, types, rules) and a source profile (types, values,
keys, inferred foreign keys) to a mapping spec and one SELECT for the whole target.

Nothing here knows the demo's column names. Source columns are found by scoring how well their names (with
common data-engineering abbreviations expanded), their table and any source description explain the target
column's name, description or rule phrase, weighted by how rare each word is among the source columns and by
type fit against the profile. Joins follow the inferred foreign keys. A column whose best candidate is weak or
not clearly ahead of a different one is not guessed: it becomes a question (``Ambiguity``).
"""

from __future__ import annotations

import copy
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage as sqlglot_lineage

from pipeline.expressions import (
    AGGREGATES,
    DIVISION_TYPES,
    ExpressionError,
    fraction_outside_whole,
    parse_expression,
)
from pipeline.specfile import band_bounds
from pipeline.words import tokens

ACCEPT_SCORE = 0.6
# Rule keys that modify the value a rule's kind computes.
RULE_MODIFIERS = {"default", "round", "where", "multiply", "divide"}
MARGIN = 0.15
FORMAT = "genesis.mapping-spec/1"

def target_category(sql_type: str) -> str:
    base = re.split(r"[ (]", sql_type.strip().upper())[0]
    if base in {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT"}:
        return "integer"
    if base in {"DECIMAL", "NUMERIC", "REAL", "FLOAT", "DOUBLE", "NUMBER", "MONEY"}:
        return "decimal"
    if base == "DATE":
        return "date"
    if base in {"TIMESTAMP", "DATETIME"}:
        return "datetime"
    if base in {"BOOLEAN", "BOOL"}:
        return "boolean"
    return "text"


_TYPE_FIT = {
    "date": {"date": 1.0, "datetime": 0.8, "text": 0.3},
    "datetime": {"datetime": 1.0, "date": 0.9, "text": 0.3},
    "integer": {"integer": 1.0, "real": 0.5, "text": 0.3},
    "decimal": {"real": 1.0, "integer": 0.9, "text": 0.3},
    "text": {"text": 1.0, "integer": 0.8, "date": 0.5, "datetime": 0.5, "real": 0.5},
    "boolean": {"boolean": 1.0, "integer": 0.7, "text": 0.5},
}


def type_fit(want: str | None, observed: str) -> float:
    if want is None or observed == "unknown":
        return 1.0
    return _TYPE_FIT.get(want, {}).get(observed, 0.1)


NONE_ANSWERS = {"none", "no source", "unmapped", "null"}
_RELATIONSHIP = re.compile(r"^\s*([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s*=\s*([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s*$")


def sql_answer(text: str) -> str | None:
    """The SQL of an answer written ``sql: ...`` (how ``{sql: "..."}`` travels as text), else None."""
    match = re.match(r"^\s*sql\s*:\s*(.+)$", text or "", re.S | re.I)
    return match[1].strip() if match else None


def relationship_answer(text: str) -> tuple[str, str, str, str] | None:
    """``TABLE_A.col = TABLE_B.col`` as its four names, else None."""
    match = _RELATIONSHIP.match(text or "")
    return (match[1], match[2], match[3], match[4]) if match else None


class NoSource(Exception):
    """A person answered that a rule's phrase has no source: the column is left visibly empty."""


class MappingProblem(Exception):
    """The target cannot be mapped as specified (a structural problem, not a question for a person)."""


@dataclass
class Ambiguity(Exception):
    """A column needs a person: no candidate is good enough, or two different ones are too close."""

    column: str
    question: str
    options: list[str]
    default: str | None
    reason: str

    def __str__(self) -> str:
        return self.question


@dataclass(frozen=True)
class Ref:
    table: str
    column: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass
class Candidate:
    ref: Ref
    score: float
    evidence: list[str] = field(default_factory=list)


class Catalog:
    """The profiled source: columns with their words and types, keys, and the foreign-key graph."""

    def __init__(self, profile: dict[str, Any], descriptions: dict[str, Any] | None = None):
        self.profile = profile
        self.tables: dict[str, dict[str, Any]] = profile["tables"]
        descriptions = {k.upper(): v for k, v in (descriptions or {}).items()}
        self.words: dict[Ref, list[str]] = {}
        self.desc_words: dict[Ref, list[str]] = {}
        self.table_words = {t: tokens(t) for t in self.tables}
        for table, info in self.tables.items():
            col_desc = {k.upper(): v for k, v in (descriptions.get(table.upper(), {}).get("columns") or {}).items()}
            for column in info["columns"]:
                ref = Ref(table, column)
                self.words[ref] = tokens(column)
                self.desc_words[ref] = tokens(col_desc.get(column.upper(), ""))
        df: dict[str, int] = defaultdict(int)
        for words in self.words.values():
            for word in set(words):
                df[word] += 1
        self.weight = {word: 1 / math.sqrt(n) for word, n in df.items()}
        self.fks = [(Ref(fk["table"], fk["column"]), Ref(fk["ref_table"], fk["ref_column"]))
                    for fk in profile.get("foreign_keys", [])]
        # Columns whose values fit the keys of several tables with nothing to tell which (the profile leaves them
        # without a foreign key): (the column, the keys it may refer to). A person says which, when it matters.
        self.ambiguous = [(Ref(item["table"], item["column"]),
                           [Ref(*candidate.split(".", 1)) for candidate in item["candidates"]])
                          for item in profile.get("ambiguous_foreign_keys", [])]

    def find(self, text: str) -> Ref | None:
        """A ``TABLE.COLUMN`` (or a column name unique in the source) named in ``text``, case-insensitively."""
        match = re.search(r"\b([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\b", text)
        if match:
            for ref in self.words:
                if ref.table.upper() == match[1].upper() and ref.column.upper() == match[2].upper():
                    return ref
        word_hits = [ref for ref in self.words if re.search(rf"\b{re.escape(ref.column)}\b", text, re.I)]
        return word_hits[0] if len({r.column.upper() for r in word_hits}) == 1 and len(word_hits) == 1 else None

    def refs_in(self, text: str, *, skip: str = "") -> list[Ref]:
        """Source columns a text names: ``TABLE.COLUMN`` anywhere, or a column name unique in the source
        (other than ``skip``, the target column the text is about)."""
        found: list[Ref] = []
        by_column: dict[str, list[Ref]] = defaultdict(list)
        for ref in self.words:
            by_column[ref.column.upper()].append(ref)
        for table, column in re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\b", text):
            for ref in by_column.get(column.upper(), []):
                if ref.table.upper() == table.upper() and ref not in found:
                    found.append(ref)
        for word in re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text):
            refs = by_column.get(word.upper(), [])
            if len(refs) == 1 and word.upper() != skip.upper() and refs[0] not in found:
                found.append(refs[0])
        return found

    def info(self, ref: Ref) -> dict[str, Any]:
        return self.tables[ref.table]["columns"][ref.column]

    def w(self, word: str) -> float:
        return self.weight.get(word, 1.0)

    def score(self, name_words: list[str], desc_words: list[str], *, refs: list[Ref],
              want: str | None, exact_name: str | None = None) -> list[Candidate]:
        query: dict[str, float] = {w: 0.6 for w in desc_words}
        query.update({w: 1.0 for w in name_words})
        results = []
        for ref in refs:
            col_words = self.words[ref]
            if not col_words:
                continue
            explained = sum(self.w(t) for t in col_words if t in query)
            coverage = explained / sum(self.w(t) for t in col_words)
            matched = total = 0.0
            for word, q_weight in query.items():
                weight = self.w(word) * q_weight
                total += weight
                if word in col_words or word in self.desc_words[ref]:
                    matched += weight
                elif word in self.table_words[ref.table]:
                    matched += 0.5 * weight
            recall = matched / total if total else 0.0
            fit = type_fit(want, self.info(ref)["observed_type"])
            score = (0.55 * coverage + 0.45 * recall) * fit
            evidence = [f"name words {col_words} explain {coverage:.0%} of the column name",
                        f"covers {recall:.0%} of the wanted words", f"type fit {fit:.1f}"]
            if exact_name and ref.column.upper() == exact_name.upper():
                # The same name is strong evidence whatever the type: a type that does not fit is a question of its
                # own (keep the source's values, or cast them), never a reason to drop the match.
                score = max(score, fit if fit >= 0.5 else 0.95)
                evidence.insert(0, "same name")
            results.append(Candidate(ref, round(score, 4), evidence))
        results.sort(key=lambda c: (-c.score, c.ref.table, c.ref.column))
        return results

    def equivalent(self, a: Ref, b: Ref) -> bool:
        """Two columns that hold the same value on joined rows (either side of an inferred foreign key)."""
        return a == b or (a, b) in self.fks or (b, a) in self.fks

    def fk_from(self, table: str) -> list[tuple[Ref, Ref]]:
        return [(src, dst) for src, dst in self.fks if src.table == table]

    def fk_to(self, table: str) -> list[tuple[Ref, Ref]]:
        return [(src, dst) for src, dst in self.fks if dst.table == table]

    def entity(self, phrase: str) -> tuple[str, str]:
        """The table whose rows are ``phrase`` (e.g. 'claims'), with its key column."""
        wanted = tokens(phrase)
        best: list[tuple[float, str]] = []
        for table, info in self.tables.items():
            if not info["candidate_keys"]:
                continue
            words = self.table_words[table]
            common = len(set(words) & set(wanted))
            if common:
                best.append((common / len(set(words) | set(wanted)), table))
        best.sort(reverse=True)
        if not best or (len(best) > 1 and best[0][0] == best[1][0]):
            options = [t for _, t in best] or sorted(self.tables)
            raise MappingProblem(f"cannot tell which source table holds one row per {phrase!r} "
                                 f"(candidates: {', '.join(options)})")
        table = best[0][1]
        keys = self.tables[table]["candidate_keys"]
        entity_words = set(self.table_words[table]) | {"id", "key", "code", "number"}
        key = next((k for k in keys if set(tokens(k)) <= entity_words), keys[0])
        return table, key


@dataclass
class Join:
    alias: str
    table: str
    left: Ref  # the column on the already-joined side
    right: Ref  # the key on this table
    parent_alias: str


@dataclass
class Child:
    """A table on the many side of the fact (directly, or through tables in between: customers <- orders <-
    payments), pre-aggregated per fact key in a CTE along its foreign-key path, never joined by a coincident id."""

    alias: str
    table: str
    path: list[tuple[Ref, Ref]]  # from the child up to the fact: (column of the lower table, key of the upper)
    measures: dict[str, str] = field(default_factory=dict)  # CTE column -> aggregate over the joined path

    @property
    def key(self) -> Ref:
        return self.path[-1][1]

    @property
    def fk(self) -> Ref:
        return self.path[-1][0]

    def describe(self) -> str:
        return " and ".join(f"{src} = {dst}" for src, dst in self.path)

    def add(self, sql: str) -> str:
        for name, existing in self.measures.items():
            if existing == sql:
                return name
        name = f"m{len(self.measures) + 1}"
        self.measures[name] = sql
        return name


@dataclass
class ColumnPlan:
    name: str
    target_type: str
    description: str
    constraints: list[str]
    rule: dict[str, Any] | None
    kind: str = "direct"  # direct | aggregate | derived
    expression: str = ""
    aggregate: bool = False
    sources: list[Ref] = field(default_factory=list)
    transformation: str = ""
    join_path: list[str] = field(default_factory=list)
    confidence: float = 0.0
    reasoning: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    decided_by: str = "agent"
    citations: list[dict[str, Any]] = field(default_factory=list)
    # Casts a person chose for values of another type: the dry run refuses one that would lose any value.
    casts: list[dict[str, str]] = field(default_factory=list)
    # A summed or counted measure, for reconciliation: the source table it aggregates and the expression over that
    # table's own columns (the target's total of this column must equal the table's total of the expression).
    measure: dict[str, Any] | None = None
    # A SQL expression over source columns the spec gives for the column (instead of a rule).
    spec_expression: str = ""
    # Where the column's SQL text was written (a spec path, or the answer's key), for errors the dry run finds.
    origin: str = ""


class TargetMapper:
    """Maps one target of the spec file onto the profiled source."""

    def __init__(self, *, target: dict[str, Any], catalog: Catalog, dialect: str,
                 answers: dict[str, str] | None = None, overrides: dict[str, str] | None = None,
                 feedback: dict[str, str] | None = None,
                 hints: dict[str, list[tuple[Ref, dict[str, Any]]]] | None = None):
        self.target = target
        self.catalog = catalog
        self.dialect = dialect
        # Decisions by people, per question key (e.g. "CLAIM_DATE" or "TOTAL_CHARGE.sum"): a TABLE.COLUMN or "none".
        self.answers = {k.upper(): v for k, v in (answers or {}).items()}
        self.overrides = {k.upper(): v for k, v in (overrides or {}).items()}
        self.feedback = {k.upper(): v for k, v in (feedback or {}).items()}
        # Source columns the mission's documents name for a target column, with the passage that names them.
        self.hints = {k.upper(): v for k, v in (hints or {}).items()}
        self.joins: dict[str, Join] = {}
        self.children: dict[str, Child] = {}
        self.plans: dict[str, ColumnPlan] = {}
        self._planning: set[str] = set()
        self._apply_relationship_answers()

    # --- helpers -----------------------------------------------------------------------------------
    def q(self, name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(dialect=self.dialect)

    def col_sql(self, ref: Ref) -> str:
        return f"{self.alias_for(ref.table)}.{self.q(ref.column)}"

    def alias_for(self, table: str) -> str:
        if table == self.fact:
            return "f"
        if table in self.joins:
            return self.joins[table].alias
        raise MappingProblem(f"{table} is not joined to {self.fact}")

    def _reachable(self) -> dict[str, list[tuple[Ref, Ref]]]:
        """Tables reachable from the fact table along many-to-one foreign keys, with the path to each."""
        paths: dict[str, list[tuple[Ref, Ref]]] = {self.fact: []}
        queue = [self.fact]
        while queue:
            table = queue.pop(0)
            for src, dst in self.catalog.fk_from(table):
                if dst.table not in paths:
                    paths[dst.table] = paths[table] + [(src, dst)]
                    queue.append(dst.table)
        return paths

    def _ensure_joined(self, table: str) -> list[str]:
        path = self.paths[table]
        described = []
        parent_alias = "f"
        for src, dst in path:
            if dst.table not in self.joins:
                self.joins[dst.table] = Join(alias=f"d{len(self.joins) + 1}", table=dst.table, left=src, right=dst,
                                             parent_alias=parent_alias)
            parent_alias = self.joins[dst.table].alias
            described.append(f"{src} = {dst}")
        return described

    def _descendants(self) -> dict[str, list[tuple[Ref, Ref]]]:
        """Tables on the many side of the fact, directly or through others, with their foreign-key path up to it
        (the nearest path first; a table already joined many-to-one is not one of them)."""
        paths: dict[str, list[tuple[Ref, Ref]]] = {self.fact: []}
        queue = [self.fact]
        while queue:
            table = queue.pop(0)
            for src, dst in self.catalog.fk_to(table):
                if src.table not in paths and src.table not in self.paths:
                    paths[src.table] = [(src, dst)] + paths[table]
                    queue.append(src.table)
        del paths[self.fact]
        return paths

    def _child(self, table: str) -> Child:
        if table not in self.children:
            if table not in self.descendants:
                raise MappingProblem(f"{table} is neither joined to nor on the many side of {self.fact}")
            self.children[table] = Child(alias=f"c{len(self.children) + 1}", table=table,
                                         path=self.descendants[table])
        return self.children[table]

    def _decide(self, key: str, candidates: list[Candidate], *, what: str, prefer=None) -> tuple[Ref | None, str]:
        """Pick a candidate or raise ``Ambiguity``; a person's answer or a configured override wins."""
        for source, label in ((self.overrides, "config"), (self.feedback, "feedback"), (self.answers, "answer")):
            if key.upper() in source:
                text = source[key.upper()]
                if text.strip().lower() in NONE_ANSWERS:
                    return None, label
                ref = self.catalog.find(text)
                allowed = {c.ref for c in candidates}
                if ref is None or ref not in allowed:
                    why = ("names no source column" if ref is None else
                           f"names {ref}, which one row of {self.target['name']} does not determine (usable: "
                           f"columns of {self.fact} and the tables it joins to many-to-one"
                           + (", within the grain" if self.aggregated else "") + ")")
                    raise Ambiguity(
                        column=key, reason="answer not usable",
                        question=f"{self.target['name']}.{key}: the answer {text!r} does not name a usable source "
                                 f"column for {what}: it {why}. Which one is it?",
                        options=[str(c.ref) for c in candidates[:5]] + ["none"],
                        default=str(candidates[0].ref) if candidates else None,
                    )
                return ref, label
        distinct: list[Candidate] = []
        for cand in candidates:
            if not any(self.catalog.equivalent(cand.ref, d.ref) for d in distinct):
                distinct.append(cand)
        options = [str(c.ref) for c in distinct[:5]] + ["none"]
        if not distinct or distinct[0].score < ACCEPT_SCORE:
            best = f" (best: {distinct[0].ref}, score {distinct[0].score:.2f})" if distinct else ""
            raise Ambiguity(
                column=key, reason="no good candidate",
                question=f"{self.target['name']}.{key}: no source column clearly matches {what}{best}. "
                         f"Which source column should it use?",
                # No safe guess: an unattended "accept the default" leaves the column unmapped, visibly.
                options=options, default="none",
            )
        top = distinct[0]
        if len(distinct) > 1 and top.score - distinct[1].score < MARGIN:
            raise Ambiguity(
                column=key, reason="ambiguous",
                question=f"{self.target['name']}.{key}: {distinct[0].ref} (score {top.score:.2f}) and "
                         f"{distinct[1].ref} (score {distinct[1].score:.2f}) both fit {what}. Which one is it?",
                options=options, default=options[0],
            )
        group = [c.ref for c in candidates if self.catalog.equivalent(c.ref, top.ref)]
        chosen = prefer(group) if prefer else top.ref
        return chosen or top.ref, "agent"

    def _record(self, plan: ColumnPlan, key: str, candidates: list[Candidate], ref: Ref | None, decided: str,
                what: str) -> None:
        plan.candidates += [{"for": key, "source": str(c.ref), "score": c.score} for c in candidates[:4]]
        if decided != "agent":
            plan.decided_by = decided
            why = {"answer": "the owner answered", "feedback": "the review's feedback says",
                   "config": "the task config says"}[decided]
            plan.reasoning.append(f"{what}: {ref or 'no source'}, as {why}.")
            # A person's choice is certain; a column left without a source is not a mapping at all.
            plan.confidence = 1.0 if ref is not None and plan.confidence == 0 else plan.confidence
            if ref is None:
                plan.confidence = 0.0
            return
        top = next(c for c in candidates if c.ref == ref or self.catalog.equivalent(c.ref, ref))
        others = [c for c in candidates if not self.catalog.equivalent(c.ref, top.ref)]
        margin = top.score - (others[0].score if others else 0.0)
        plan.reasoning.append(
            f"{what}: {ref} (score {top.score:.2f}: {'; '.join(top.evidence)}"
            + (f"; next different candidate {others[0].ref} at {others[0].score:.2f}" if others else "") + ")."
        )
        confidence = round(min(1.0, top.score) * (0.75 + 0.25 * min(1.0, margin / 0.5)), 2)
        plan.confidence = confidence if plan.confidence == 0 else min(plan.confidence, confidence)

    def _resolve(self, plan: ColumnPlan, key: str, phrase_words: list[str], desc_words: list[str], *,
                 refs: list[Ref], want: str | None, what: str, exact: str | None = None, prefer=None,
                 children: bool = False) -> Ref | None:
        candidates = self.catalog.score(phrase_words, desc_words, refs=refs, want=want, exact_name=exact)
        if hasattr(self, "paths"):
            unreachable = self._out_of_reach(key, phrase_words, desc_words, want=want, exact=exact,
                                             children=children,
                                             better_than=candidates[0].score + 1e-9 if candidates else 0.0)
            if unreachable is not None:
                raise unreachable
        cited: dict[Ref, list[dict[str, Any]]] = defaultdict(list)
        for hinted, citation in self.hints.get(key.upper(), []):
            cited[hinted].append(citation)
        for cand in candidates:
            if cand.ref in cited and type_fit(want, self.catalog.info(cand.ref)["observed_type"]) >= 0.5:
                # A passage of the mission's documents maps this column to this source: strong evidence.
                cand.score = round(min(1.0, max(cand.score, 0.5) + 0.3), 4)
                first = cited[cand.ref][0]
                cand.evidence.append(f"cited in “{first['title']}” §{first['position']}")
        candidates.sort(key=lambda c: (-c.score, c.ref.table, c.ref.column))
        ref, decided = self._decide(key, candidates, what=what, prefer=prefer)
        if ref is not None:
            plan.citations += [c for r, cs in cited.items() if self.catalog.equivalent(r, ref) for c in cs]
        self._record(plan, key, candidates, ref, decided, what)
        return ref

    # --- planning ----------------------------------------------------------------------------------
    def _apply_relationship_answers(self) -> None:
        """Answers keyed ``CHILD->PARENT`` (``TABLE_A.col = TABLE_B.col``) add a foreign key, on a copy of the
        catalog: the child side is the one whose table the key names first, else the side that is not a key."""
        added = []
        for key, text in {**self.answers, **self.feedback, **self.overrides}.items():
            if "->" not in key:
                continue
            names = relationship_answer(text)
            if names is None:
                if text.strip().lower() in NONE_ANSWERS:
                    continue
                raise Ambiguity(column=key, reason="answer not usable", options=[], default="none",
                                question=f"{key}: the answer {text!r} is not a relationship. Answer as "
                                         "TABLE_A.col = TABLE_B.col (the child's column first), or none.")
            a, b = self.catalog.find(f"{names[0]}.{names[1]}"), self.catalog.find(f"{names[2]}.{names[3]}")
            if a is None or b is None:
                raise Ambiguity(column=key, reason="answer not usable", options=[], default="none",
                                question=f"{key}: {text!r} names a column the source does not have. Answer as "
                                         "TABLE_A.col = TABLE_B.col, or none.")
            child_name = key.split("->")[0].strip().upper()
            if b.table.upper() == child_name or (a.table.upper() != child_name and
                                                 a.column in self.catalog.tables[a.table]["candidate_keys"]):
                a, b = b, a
            added.append((a, b))
        if added:
            catalog = copy.copy(self.catalog)
            catalog.fks = [fk for fk in self.catalog.fks if fk[0] not in {a for a, _ in added}] + added
            self.catalog = catalog

    def _relationship_question(self, child: str, parent: str, why: str) -> Ambiguity:
        key = f"{child}->{parent}"
        if key.upper() in {**self.answers, **self.feedback, **self.overrides}:
            return MappingProblem(f"{why}, even with the relationship answered for {key}")
        return Ambiguity(column=key, reason="relationship", options=[], default="none",
                         question=f"{key}: {why}. How does a {child} row relate to {parent}? Answer as "
                                  f"{child}.column = {parent}.column (or through the tables in between, one "
                                  "question each), or none.")

    def _ambiguity_toward(self, table: str, *, parents_only: bool = False) -> Ambiguity | None:
        """The relationship question that would bring ``table`` within the target's reach, when the profile found a
        column whose values fit ``table``'s key and another table's alike: a row of the fact's side refers to it
        (``table`` a parent), or, unless ``parents_only``, ``table``'s rows refer to the fact or one of its child
        tables (``table`` a child). Keyed ``CHILD->PARENT``; the options are every key the column fits, and the
        default is ``none``: picking one of two equally fitting parents would be a guess."""
        answered = {key.split("->")[0].strip().upper()
                    for key in {**self.answers, **self.feedback, **self.overrides} if "->" in key}
        linked = {src for src, _dst in self.catalog.fks}
        children = set(getattr(self, "descendants", {})) | {self.fact}
        for column, keys in self.catalog.ambiguous:
            if column in linked or column.table.upper() in answered:
                continue
            if column.table in self.paths and any(k.table == table for k in keys):
                parent = table
            elif not parents_only and column.table == table and (
                    near := [k.table for k in keys if k.table in children]):
                parent = near[0]
            else:
                continue
            key = f"{column.table}->{parent}"
            fits = " and ".join(str(k) for k in keys)
            options = [f"{column} = {k}" for k in sorted(keys, key=lambda k: k.table != parent)]
            return Ambiguity(
                column=key, reason="relationship",
                question=f"{key}: the values of {column} fit {fits} alike, and no name says which it refers to; "
                         f"{self.target['name']} needs {table} joined to {self.fact}. How does a {column.table} row "
                         f"relate to {parent}? Answer as {column.table}.column = {parent}.column (e.g. "
                         f"{options[0]}), or none.",
                options=[*options, "none"], default="none",
            )
        return None

    def _out_of_reach(self, key: str, phrase_words: list[str], desc_words: list[str], *, want: str | None,
                      exact: str | None, children: bool, better_than: float) -> Ambiguity | None:
        """A relationship question when the best source for ``key`` lies in a table only an ambiguous foreign key
        would join (and scores above every column within reach): ask which parent, rather than take a worse column
        or none."""
        if not self.catalog.ambiguous or key.upper() in {**self.answers, **self.feedback, **self.overrides}:
            return None
        best: tuple[float, Ambiguity] | None = None
        for table in self.catalog.tables:
            if table in self.paths or table in self.descendants:
                continue
            question = self._ambiguity_toward(table, parents_only=not children)
            if question is None:
                continue
            refs = [ref for ref in self.catalog.words if ref.table == table]
            found = self.catalog.score(phrase_words, desc_words, refs=refs, want=want, exact_name=exact)
            if found and found[0].score >= max(ACCEPT_SCORE, better_than) and (best is None or
                                                                                found[0].score > best[0]):
                best = (found[0].score, question)
        return best[1] if best else None

    def _written(self, plan: ColumnPlan) -> tuple[str, str, str] | None:
        """A SQL expression a person gave for this column (as ``sql: ...`` to its question, in the task config or
        in review feedback): (sql, decided by, key)."""
        name = plan.name.upper()
        for source, label in ((self.overrides, "config"), (self.feedback, "feedback"), (self.answers, "answer")):
            for key, text in source.items():
                if (key == name or key.startswith(name + ".")) and sql_answer(text):
                    return sql_answer(text), label, key
        return None

    def plan(self) -> dict[str, Any]:
        target = self.target
        grain = target["grain"]
        self.entity_table, self.entity_key = self.catalog.entity(grain["entity"])
        self.period: Ref | None = None
        self.fact = self.entity_table
        self.period_unit = None
        if "period" in grain:
            self.period_unit, phrase = next(iter(grain["period"].items()))
            self.period_unit = self.period_unit.removesuffix("_of")
            holder = ColumnPlan(name="(period)", target_type="DATE", description=phrase, constraints=[], rule=None)
            all_refs = list(self.catalog.words)
            self.period = self._resolve(holder, "PERIOD", tokens(phrase), [], refs=all_refs, want="date",
                                        what=f"the period column ({phrase!r})")
            if self.period is None:
                raise MappingProblem("the grain's period has no source column")
            self.period_reasoning = holder.reasoning
            self.fact = self.period.table
        self.paths = self._reachable()
        self.descendants = {}
        if self.entity_table not in self.paths:
            ambiguous = self._ambiguity_toward(self.entity_table, parents_only=True)
            if ambiguous is not None:
                raise ambiguous
            raise self._relationship_question(
                self.fact, self.entity_table, f"{self.entity_table} (one row per {grain['entity']!r}) cannot be "
                                              f"reached from {self.fact} along the foreign keys")
        self.aggregated = self.fact != self.entity_table or self.period is not None
        # Columns one joined row of the fact determines, and the child tables (one-to-many) for aggregates.
        self.row_refs = [ref for ref in self.catalog.words if ref.table in self.paths]
        self.descendants = self._descendants()
        self.child_tables = sorted(self.descendants)
        self.child_refs = [ref for ref in self.catalog.words if ref.table in self.child_tables]
        for column in target["columns"]:
            self.plans[column["name"].upper()] = ColumnPlan(
                name=column["name"], target_type=column["type"], description=column.get("description", ""),
                constraints=column.get("constraints", []), rule=column.get("rule"),
                spec_expression=column.get("expression") or "",
            )
        for column in target["columns"]:
            self._plan_column(self.plans[column["name"].upper()])
        return self.result()

    def _grain_ok(self, ref: Ref) -> bool:
        """Whether one value per grain row is guaranteed: the entity's own columns (or tables it points to),
        or the fact's foreign key to the entity."""
        if not self.aggregated:
            return True
        entity_path = self.paths[self.entity_table]
        if ref.table == self.entity_table or (self.paths[ref.table][:len(entity_path)] == entity_path
                                              and ref.table != self.fact):
            return True
        return any(src == ref and dst.table == self.entity_table for src, dst in entity_path)

    def _prefer(self, group: list[Ref]) -> Ref:
        # Equivalent columns: take the one with the shortest join (the fact's own column first).
        return min(group, key=lambda r: (len(self.paths.get(r.table, [None] * 9)), r.table != self.fact))

    def _plan_column(self, plan: ColumnPlan) -> None:
        if plan.expression:
            return
        self._planning.add(plan.name.upper())
        try:
            self._plan_rule(plan)
        finally:
            self._planning.discard(plan.name.upper())

    def _plan_rule(self, plan: ColumnPlan) -> None:
        rule = plan.rule or {}
        want = target_category(plan.target_type)
        name = plan.name.upper()
        kind = next((k for k in rule if k not in RULE_MODIFIERS), None)
        written = self._written(plan)
        if written is not None:
            text, label, key = written
            self._compile(plan, text, path=f"answers.{self.target['name']}.{key}")
            who = "the owner answered" if label == "answer" else f"the {label} says"
            plan.transformation = f"{text}, as {who}"
            plan.confidence, plan.decided_by = 1.0, label
            plan.reasoning.append(f"A person gave the expression {text}.")
            self._refuse_fraction_into_integer(plan, f"answers.{self.target['name']}.{key}", text=text)
            return
        if plan.spec_expression:
            self._compile(plan, plan.spec_expression, path=self._path(plan))
            plan.transformation = f"the spec's expression {plan.spec_expression}"
            plan.confidence, plan.decided_by = 1.0, "spec"
            plan.reasoning.append("The spec gives this column's expression.")
            self._refuse_fraction_into_integer(plan, self._path(plan), text=plan.spec_expression)
            return
        if kind is None:
            refs = [r for r in self.row_refs if self._grain_ok(r)] if self.aggregated else self.row_refs
            ref = self._resolve(plan, name, tokens(plan.name), tokens(plan.description), refs=refs, want=want,
                                what=f"{plan.name} ({plan.description or 'no description'})", exact=plan.name,
                                prefer=self._prefer)
            if ref is None:
                plan.expression, plan.transformation = f"CAST(NULL AS {self._cast_type(want)})", "no source: NULL"
                return
            plan.join_path = self._ensure_joined(ref.table)
            plan.sources = [ref]
            plan.expression = self.col_sql(ref)
            plan.transformation = "copied as is"
            observed = self.catalog.info(ref)["observed_type"]
            if want in {"date", "datetime"} and observed in {"date", "datetime"}:
                plan.transformation = f"copied as is (ISO {observed} text, cast to {plan.target_type} on load)"
            if type_fit(want, observed) < 0.5:
                self._type_decision(plan, ref, want, observed)
            return
        handler = getattr(self, f"_rule_{kind}")
        try:
            handler(plan, rule[kind], want)
        except NoSource as phrase:
            plan.kind, plan.measure, plan.aggregate = "direct", None, False
            plan.expression = f"CAST(NULL AS {self._cast_type(want)})"
            plan.transformation = f"no source: NULL (the owner said {phrase} has none)"
            plan.confidence = 0.0
            return
        for key, operator in (("multiply", "*"), ("divide", "/")):
            if key in rule:
                factor = float(rule[key])
                plan.expression = f"({plan.expression}) {operator} {factor!r}"
                plan.transformation += f", {'times' if operator == '*' else 'divided by'} {rule[key]}"
                if plan.measure is not None:
                    plan.measure["expression"] = f"({plan.measure['expression']}) {operator} {factor!r}"
                    plan.measure["describe"] += f" {operator} {rule[key]}"
        if "default" in rule:
            default = rule["default"]
            literal = str(default) if isinstance(default, int | float) else "'" + str(default).replace("'", "''") + "'"
            plan.expression = f"COALESCE({plan.expression}, {literal})"
            plan.transformation += f", {default} when missing"
        if "round" in rule:
            plan.expression = f"ROUND(CAST({plan.expression} AS {self._numeric}), {int(rule['round'])})"
            plan.transformation += f", rounded to {rule['round']} decimals"
            if plan.measure is not None:
                plan.measure["round"] = int(rule["round"])
        self._refuse_fraction_into_integer(plan, self._path(plan, "rule"), rule=rule)

    def _refuse_fraction_into_integer(self, plan: ColumnPlan, path: str, *, text: str | None = None,
                                      rule: dict[str, Any] | None = None) -> None:
        """An integer column whose value (the expression ``text``, or ``rule``) divides or averages without rounding
        to a whole number: the engines make a whole number of the fraction differently (SQLite's CAST truncates 3.5
        to 3, PostgreSQL's and DuckDB's round it to 4), so the same spec would load another number on another
        engine. Refused, naming the way to say which."""
        if target_category(plan.target_type) != "integer":
            return
        if text is not None:
            node = fraction_outside_whole(parse_expression(text, dialect=self.dialect, path=path))
            if node is None:
                return
            shown = node.sql(dialect=self.dialect)
            what = f"{'an average' if isinstance(node, exp.Avg) else 'a division'} ({shown[:77]})"
            fix = "write ROUND(...) (nearest), FLOOR(...) or CEIL(...) around it"
        else:
            rule = rule or {}
            kind = next((k for k in rule if k not in RULE_MODIFIERS), None)
            if kind not in {"avg", "fraction"} and "divide" not in rule:
                return
            if "round" in rule and int(rule["round"]) == 0:
                return
            what = ("an average (avg)" if kind == "avg" else "a share (fraction)" if kind == "fraction"
                    else f"a division (divide: {rule['divide']})")
            fix = "add round: 0 to the rule"
        raise ExpressionError(path, f"{plan.name} is {plan.target_type} but its value is {what}, which can leave a "
                                    "fraction that SQLite truncates and PostgreSQL and DuckDB round, so the engines "
                                    f"would load different numbers: {fix}, or declare the column DECIMAL")

    def _type_decision(self, plan: ColumnPlan, ref: Ref, want: str, observed: str) -> None:
        """The source column holds values of another type than the spec declares: a person says whether to keep
        them as they are (the target column takes the source's type) or to cast them (refused later if the cast
        would lose a value). Never decided by the agent, never a reason to drop the column."""
        key = f"{plan.name.upper()}.TYPE"
        kept_type = {"text": "TEXT", "integer": "INTEGER", "real": "NUMERIC", "date": "DATE",
                     "datetime": "TIMESTAMP", "boolean": "BOOLEAN"}.get(observed, "TEXT")
        keep, cast = f"keep {kept_type}", f"cast to {plan.target_type}"
        answer = next((source[key] for source in (self.overrides, self.feedback, self.answers) if key in source), None)
        if answer is None:
            samples = ", ".join(repr(v) for v in self.catalog.info(ref).get("samples", [])[:3])
            raise Ambiguity(
                column=f"{plan.name}.type", reason="type mismatch",
                question=f"{self.target['name']}.{plan.name}: {ref} has the same name but holds {observed} values "
                         f"({samples}) where the spec declares {plan.target_type}. Keep its values as "
                         f"{kept_type}, or cast them to {plan.target_type} (refused if any value would be lost)?",
                options=[keep, cast], default=keep,
            )
        if answer.strip().lower().startswith("cast") and want in {"integer", "decimal"}:
            plan.expression = f"CAST({plan.expression} AS {self._cast_type(want)})"
            plan.transformation = f"cast from {observed} to {plan.target_type}, as the owner answered"
            plan.casts.append({"table": ref.table, "column": ref.column, "to": want})
        else:
            declared, plan.target_type = plan.target_type, kept_type
            plan.transformation = (f"copied as is, kept as {kept_type} (the spec declares {declared}), as the "
                                   "owner answered")
        plan.decided_by = "answer"
        plan.reasoning.append(f"Type: {plan.transformation}.")

    @property
    def _numeric(self) -> str:
        """The cast that keeps a number's digits: NUMERIC, except on DuckDB, whose bare DECIMAL is DECIMAL(18,3)."""
        return "DOUBLE" if self.dialect == "duckdb" else "NUMERIC"

    def _cast_type(self, want: str) -> str:
        return {"integer": "INTEGER", "decimal": self._numeric, "date": "TEXT", "datetime": "TEXT",
                "boolean": "INTEGER"}.get(want, "TEXT")

    def _phrase(self, plan: ColumnPlan, phrase: str, *, refs: list[Ref], want: str | None, key_suffix: str,
                children: bool = False) -> Ref:
        ref = self._resolve(plan, f"{plan.name.upper()}.{key_suffix}", tokens(phrase), [], refs=refs, want=want,
                            what=f"{plan.name}'s {key_suffix} of {phrase!r}", prefer=self._prefer,
                            children=children)
        if ref is None:
            raise NoSource(phrase)
        return ref

    # --- expressions: spec expressions, rules and answers all become one aggregate-aware expression -----------
    def _path(self, plan: ColumnPlan, part: str = "expression") -> str:
        return f"targets.{self.target['name']}.columns.{plan.name}.{part}"

    def _column_ref(self, column: exp.Column, path: str, prefer: str | None = None) -> Ref:
        """The source column ``TABLE.column`` (or a bare ``column``: of ``prefer`` first, else unique) names."""
        name = column.name.upper()
        if column.table:
            table = next((t for t in self.catalog.tables if t.upper() == column.table.upper()), None)
            if table is None:
                raise ExpressionError(path, f"{column.table} is not a source table (known: "
                                            f"{', '.join(sorted(self.catalog.tables))})")
            found = [Ref(table, c) for c in self.catalog.tables[table]["columns"] if c.upper() == name]
            if not found:
                raise ExpressionError(path, f"{table} has no column {column.name} (its columns: "
                                            f"{', '.join(self.catalog.tables[table]['columns'])})")
            return found[0]
        found = [r for r in self.catalog.words if r.column.upper() == name]
        if prefer:
            found = [r for r in found if r.table == prefer] or found
        if len(found) == 1:
            return found[0]
        if not found:
            raise ExpressionError(path, f"no source table has a column {column.name}")
        raise ExpressionError(path, f"{column.name} is a column of several tables "
                                    f"({', '.join(sorted(r.table for r in found))}): write TABLE.{column.name}")

    def _qualified(self, ref: Ref) -> str:
        return f"{self.q(ref.table)}.{self.q(ref.column)}"

    def _compile(self, plan: ColumnPlan, text: str, *, path: str, prefer: str | None = None) -> None:
        """Plan ``plan`` from a SQL expression over source columns. Aggregates over the fact (and the tables it
        joins many-to-one) aggregate at the grain; aggregates over tables on the many side are computed per fact
        key along their foreign-key path (a CTE) and combined; a bare column must be one value per target row."""
        # Held in a parenthesis so that the top node can be replaced like any other (the holder is dropped below).
        plan.origin = plan.origin or path
        holder = exp.Paren(this=parse_expression(text, dialect=self.dialect, path=path))
        tree = holder.this
        refs: dict[int, Ref] = {}
        for column in tree.find_all(exp.Column):
            refs[id(column)] = self._column_ref(column, path, prefer)
        self._record_measure(plan, tree, refs)
        aggregates = list(tree.find_all(*AGGREGATES))
        for agg in aggregates:
            columns = list(agg.find_all(exp.Column))
            tables = {refs[id(c)].table for c in columns}
            if not tables:
                raise ExpressionError(path, f"{agg.sql(dialect=self.dialect)} names no column, so no table: count a "
                                            "column instead (e.g. COUNT(orders.id))")
            plan.kind = "aggregate"
            plan.sources += [refs[id(c)] for c in columns if refs[id(c)] not in plan.sources]
            if tables <= set(self.paths):
                self._row_aggregate(plan, agg, columns, refs)
                continue
            unreachable = sorted(t for t in tables if t not in self.paths and t not in self.descendants)
            if unreachable:
                ambiguous = self._ambiguity_toward(unreachable[0])
                if ambiguous is not None:
                    raise ambiguous
                raise self._relationship_question(unreachable[0], self.fact, f"{path} reads {unreachable[0]}, which "
                                                                             f"no foreign key links to {self.fact}")
            if len(tables) > 1 or not tables <= set(self.descendants):
                outside = sorted(tables - set(self.paths))
                raise ExpressionError(path, f"{agg.sql(dialect=self.dialect)} reads {', '.join(sorted(tables))}: an "
                                            f"aggregate reads one table on the many side of {self.fact} "
                                            f"({', '.join(self.child_tables) or 'none'}) or the tables one "
                                            f"{self.fact} row joins to ({', '.join(sorted(self.paths))}); "
                                            f"{', '.join(outside)} is neither alone")
            child = self._child(tables.pop())
            described = f"{child.table} per {child.key} along {child.describe()}"
            if described not in plan.join_path:
                plan.join_path.append(described)
            agg.replace(self._from_child(child, agg, columns, refs, path))
            plan.aggregate = plan.aggregate or self.aggregated
        for column in list(holder.find_all(exp.Column)):
            if id(column) not in refs:
                continue  # already rewritten inside an aggregate
            ref = refs[id(column)]
            if ref.table not in self.paths or (self.aggregated and not self._grain_ok(ref)):
                raise ExpressionError(path, f"{ref} is not one value per {self.target['name']} row: aggregate it "
                                            "(e.g. SUM, MIN, COUNT)")
            plan.join_path += [j for j in self._ensure_joined(ref.table) if j not in plan.join_path]
            if ref not in plan.sources:
                plan.sources.append(ref)
            column.replace(exp.column(ref.column, table=self.alias_for(ref.table), quoted=True))
        plan.expression = holder.this.sql(dialect=self.dialect)
        if plan.kind == "direct":
            plan.kind = "derived"

    def _row_aggregate(self, plan: ColumnPlan, agg: exp.Expression, columns: list[exp.Column],
                       refs: dict[int, Ref]) -> None:
        """An aggregate over the fact and the tables it joins many-to-one: over the grain's rows."""
        for table in sorted({refs[id(c)].table for c in columns}):
            plan.join_path += [j for j in self._ensure_joined(table) if j not in plan.join_path]
        for column in columns:
            column.replace(exp.column(refs[id(column)].column, table=self.alias_for(refs[id(column)].table),
                                      quoted=True))
        if self.aggregated:
            plan.aggregate = True
        else:  # one fact row per target row: the aggregate of that row's own value is the value
            agg.replace(self._per_row(agg))

    def _per_row(self, agg: exp.Expression) -> exp.Expression:
        arg = agg.this
        if isinstance(arg, exp.Distinct):
            arg = agg.this.expressions[0]
        if isinstance(agg, exp.Count):
            return exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=arg.copy(), expression=exp.Null())),
                                        true=exp.Literal.number(1))], default=exp.Literal.number(0))
        return arg.copy()

    def _from_child(self, child: Child, agg: exp.Expression, columns: list[exp.Column], refs: dict[int, Ref],
                    path: str) -> exp.Expression:
        """``agg`` over ``child``'s rows: computed per fact key in the child's CTE, combined at the grain."""
        inner = agg.copy()
        for column in inner.find_all(exp.Column):
            column.replace(exp.column(column.name, table="t0", quoted=True))
        distinct = isinstance(agg, exp.Count) and isinstance(agg.this, exp.Distinct)

        def cte(node: exp.Expression) -> exp.Expression:
            return exp.column(child.add(node.sql(dialect=self.dialect)), table=child.alias, quoted=True)

        if not self.aggregated:
            value = cte(inner)
            return exp.func("COALESCE", value, exp.Literal.number(0)) if isinstance(agg, exp.Count) else value
        if distinct:
            raise ExpressionError(path, f"COUNT(DISTINCT ...) over {child.table} cannot be combined across the "
                                        f"several {self.fact} rows of one {self.target['name']} row")
        if isinstance(agg, exp.Avg):
            total = cte(exp.Sum(this=inner.this.copy()))
            count = cte(exp.Count(this=inner.this.copy()))
            return exp.Div(this=exp.Mul(this=exp.Sum(this=total), expression=exp.Literal.number("1.0")),
                           expression=exp.func("NULLIF", exp.Sum(this=count), exp.Literal.number(0)))
        outer = {exp.Sum: exp.Sum, exp.Count: exp.Sum, exp.Min: exp.Min, exp.Max: exp.Max}[type(agg)]
        combined = outer(this=cte(inner))
        return exp.func("COALESCE", combined, exp.Literal.number(0)) if isinstance(agg, exp.Count) else combined

    def _record_measure(self, plan: ColumnPlan, tree: exp.Expression, refs: dict[int, Ref]) -> None:
        """A sum or count of one table's rows (scaled by constants, with a default or rounding) is a measure the
        reconciliation can total on the source alone."""
        node, factors, rounding = tree, [], None
        while True:
            if isinstance(node, exp.Paren | exp.Cast):
                node = node.this
            elif isinstance(node, exp.Round):
                decimals = node.args.get("decimals")
                rounding = int(decimals.name) if isinstance(decimals, exp.Literal) else None
                node = node.this
            elif isinstance(node, exp.Coalesce) and all(isinstance(e, exp.Literal) for e in node.expressions):
                node = node.this
            elif isinstance(node, exp.Mul | exp.Div) and isinstance(node.expression, exp.Literal):
                factors.append((type(node), node.expression.sql()))
                node = node.this
            else:
                break
        if not isinstance(node, exp.Sum | exp.Count) or isinstance(node.this, exp.Distinct | exp.Star):
            return
        columns = list(node.find_all(exp.Column))
        tables = {refs[id(c)].table for c in columns}
        if len(tables) != 1 or (isinstance(node, exp.Count) and factors):
            return
        inner = node.this.copy()
        if isinstance(inner, exp.Column):
            inner = exp.column(inner.name, quoted=True)
        for column in list(inner.find_all(exp.Column)):
            if column is not inner:
                column.replace(exp.column(column.name, quoted=True))
        text = inner.sql(dialect=self.dialect)
        for kind, literal in reversed(factors):
            # Applied to each row of the source's total: a division there divides as decimals too.
            text = (f"({text}) * {literal}" if kind is exp.Mul else
                    f"CAST(({text}) AS {DIVISION_TYPES.get(self.dialect, 'REAL')}) / {literal}")
        table = tables.pop()
        plan.measure = {"function": "sum" if isinstance(node, exp.Sum) else "count", "table": table,
                        "expression": text,
                        "describe": node.sql(dialect=self.dialect) + "".join(
                            f" {'*' if k is exp.Mul else '/'} {v}" for k, v in factors)}
        if rounding is not None:
            plan.measure["round"] = rounding

    # --- rules ---------------------------------------------------------------------------------------------
    def _where(self, plan: ColumnPlan, table: str) -> str | None:
        where = (plan.rule or {}).get("where")
        if not where:
            return None
        path = self._path(plan, "rule.where")
        tree = parse_expression(where, dialect=self.dialect, path=path)
        if any(True for _ in tree.find_all(*AGGREGATES)):
            raise ExpressionError(path, "a filter compares each row's values; it cannot aggregate")
        for column in tree.find_all(exp.Column):
            ref = self._column_ref(column, path, prefer=table)
            if ref.table != table:
                raise ExpressionError(path, f"the filter reads {ref}, but the measure reads the rows of {table}")
            column.replace(exp.column(ref.column, table=table, quoted=True))
        return tree.sql(dialect=self.dialect)

    def _aggregate_rule(self, plan: ColumnPlan, function: str, phrase: str, want: str | None) -> None:
        ref = self._phrase(plan, phrase, refs=self.row_refs + self.child_refs, want=want, key_suffix=function.lower(),
                           children=True)
        value = self._qualified(ref)
        where = self._where(plan, ref.table)
        if where:
            value = f"CASE WHEN {where} THEN {value} END"
        self._compile(plan, f"{function}({value})", path=self._path(plan, f"rule.{function.lower()}"))
        plan.transformation = (f"{function.lower()} of {ref}" + (f" where {where}" if where else "")
                               + (" over the grain" if self.aggregated else " over the row's lines"
                                  if ref.table in self.descendants else ""))

    def _rule_sum(self, plan: ColumnPlan, phrase: str, want: str) -> None:
        self._aggregate_rule(plan, "SUM", phrase, "decimal")

    def _rule_avg(self, plan: ColumnPlan, phrase: str, want: str) -> None:
        self._aggregate_rule(plan, "AVG", phrase, "decimal")

    def _rule_min(self, plan: ColumnPlan, phrase: str, want: str) -> None:
        self._aggregate_rule(plan, "MIN", phrase, want)

    def _rule_max(self, plan: ColumnPlan, phrase: str, want: str) -> None:
        self._aggregate_rule(plan, "MAX", phrase, want)

    def _rule_count(self, plan: ColumnPlan, phrase: str, want: str) -> None:
        table, key = self.catalog.entity(phrase)
        if table not in self.paths and table not in self.descendants:
            ambiguous = self._ambiguity_toward(table)
            if ambiguous is not None:
                raise ambiguous
            raise MappingProblem(f"{plan.name}: cannot count {phrase!r} ({table}) at the grain of {self.fact}")
        value = self._qualified(Ref(table, key))
        where = self._where(plan, table)
        if where:
            value = f"CASE WHEN {where} THEN {value} END"
        self._compile(plan, f"COUNT({value})", path=self._path(plan, "rule.count"))
        plan.transformation = f"count of {table} rows ({key})" + (f" where {where}" if where else "")
        plan.confidence = plan.confidence or 0.9
        plan.reasoning.append(f"{phrase!r} names the table {table} (key {key}); counted per grain row.")

    def _rule_count_distinct(self, plan: ColumnPlan, phrase: str, want: str) -> None:
        ref = self._phrase(plan, phrase, refs=self.row_refs + self.child_refs, want=None,
                           key_suffix="count_distinct", children=True)
        value = self._qualified(ref)
        where = self._where(plan, ref.table)
        if where:
            value = f"CASE WHEN {where} THEN {value} END"
        self._compile(plan, f"COUNT(DISTINCT {value})", path=self._path(plan, "rule.count_distinct"))
        plan.transformation = f"number of distinct {ref}" + (f" where {where}" if where else "")

    def _rule_fraction(self, plan: ColumnPlan, spec: dict[str, Any], want: str) -> None:
        ref = self._phrase(plan, spec["column"], refs=self.row_refs, want="text", key_suffix="fraction")
        plan.join_path += self._ensure_joined(ref.table)
        wanted = str(spec["equals"])
        values = [v for v, _ in self.catalog.info(ref).get("top_values", [])]
        value = next((v for v in values if str(v).upper() == wanted.upper()), None)
        if value is None:
            raise Ambiguity(
                column=f"{plan.name.upper()}.fraction", reason="value not found",
                question=f"{self.target['name']}.{plan.name}: {ref} never holds {wanted!r} (its values: "
                         f"{', '.join(map(str, values)) or 'too many to list'}). Which source column is "
                         f"{spec['column']!r}?",
                options=[str(c) for c in self.row_refs if self.catalog.info(c).get("top_values")][:5] + ["none"],
                default=None,
            )
        literal = "'" + str(value).replace("'", "''") + "'" if isinstance(value, str) else str(value)
        case = f"CASE WHEN {self.col_sql(ref)} = {literal} THEN 1 ELSE 0 END"
        plan.sources, plan.kind, plan.aggregate = [ref], "aggregate", self.aggregated
        plan.expression = f"SUM({case}) * 1.0 / COUNT(*)" if self.aggregated else f"{case} * 1.0"
        plan.transformation = f"share of {self.fact} rows where {ref} = {value!r}"
        plan.reasoning.append(f"The profile shows {ref} takes the value {value!r}.")

    def _dependency(self, name: str) -> ColumnPlan:
        other = self.plans[name.upper()]
        if other.name.upper() in self._planning:
            raise MappingProblem(f"the rules of {', '.join(sorted(self._planning))} refer to each other in a loop")
        self._plan_column(other)
        return other

    def _rule_difference(self, plan: ColumnPlan, names: list[str], want: str) -> None:
        a, b = (self._dependency(n) for n in names)
        plan.kind = "derived"
        plan.expression = f"({a.expression}) - ({b.expression})"
        plan.aggregate = a.aggregate or b.aggregate
        plan.sources = a.sources + b.sources
        plan.join_path = sorted(set(a.join_path + b.join_path))
        plan.transformation = f"{a.name} − {b.name}"
        plan.confidence = min(a.confidence or 1.0, b.confidence or 1.0)
        plan.reasoning.append(f"Derived from the target columns {a.name} and {b.name}.")

    def _rule_concat(self, plan: ColumnPlan, parts: list[dict[str, str]], want: str) -> None:
        pieces, described = [], []
        refs = [r for r in self.row_refs if self._grain_ok(r)]
        for index, part in enumerate(parts):
            if "literal" in part:
                pieces.append("'" + part["literal"].replace("'", "''") + "'")
                described.append(repr(part["literal"]))
                continue
            ref = self._phrase(plan, part["column"], refs=refs, want="text", key_suffix=f"concat{index + 1}")
            plan.join_path += self._ensure_joined(ref.table)
            plan.sources.append(ref)
            pieces.append(self.col_sql(ref))
            described.append(str(ref))
        plan.kind = "derived"
        plan.expression = " || ".join(pieces)
        plan.transformation = "concatenation of " + ", ".join(described)

    def _date_part(self, ref_sql: str, start: int, length: int) -> str:
        return f"CAST(SUBSTR(CAST({ref_sql} AS TEXT), {start}, {length}) AS INTEGER)"

    def _rule_year_of(self, plan: ColumnPlan, _value: str, want: str) -> None:
        plan.kind, plan.sources = "derived", [self.period]
        plan.expression = self._date_part(self.col_sql(self.period), 1, 4)
        plan.transformation = f"year of {self.period}"
        plan.confidence = plan.confidence or 0.95
        plan.reasoning += self.period_reasoning

    def _rule_month_of(self, plan: ColumnPlan, _value: str, want: str) -> None:
        plan.kind, plan.sources = "derived", [self.period]
        plan.expression = self._date_part(self.col_sql(self.period), 6, 2)
        plan.transformation = f"month of {self.period}"
        plan.confidence = plan.confidence or 0.95
        plan.reasoning += self.period_reasoning

    def _rule_period_start(self, plan: ColumnPlan, _value: str, want: str) -> None:
        """The first day of the grain's period (day, week from Monday, month or year) as an ISO date."""
        column = self.col_sql(self.period)
        text = f"CAST({column} AS TEXT)"
        if self.dialect in {"postgres", "duckdb"}:
            # Both truncate a week to its Monday (ISO weeks), as the SQLite form below does.
            plan.expression = f"CAST(DATE_TRUNC('{self.period_unit}', CAST({column} AS TIMESTAMP)) AS DATE)"
        elif self.period_unit == "week":
            plan.expression = (f"DATE(SUBSTR({text}, 1, 10), '-' || ((CAST(STRFTIME('%w', SUBSTR({text}, 1, 10)) "
                               "AS INTEGER) + 6) % 7) || ' days')")
        else:
            length, suffix = {"day": (10, ""), "month": (7, "-01"), "year": (4, "-01-01")}[self.period_unit]
            plan.expression = f"SUBSTR({text}, 1, {length})" + (f" || '{suffix}'" if suffix else "")
        plan.kind, plan.sources = "derived", [self.period]
        plan.transformation = f"first day of the {self.period_unit} of {self.period}"
        plan.confidence = plan.confidence or 0.95
        plan.reasoning += self.period_reasoning

    def _rule_age_years(self, plan: ColumnPlan, spec: dict[str, str], want: str) -> None:
        refs = [r for r in self.row_refs if self._grain_ok(r)]
        birth = self._phrase(plan, spec["birth"], refs=refs, want="date", key_suffix="birth")
        plan.join_path += self._ensure_joined(birth.table)
        b, p = self.col_sql(birth), self.col_sql(self.period)
        by, bm, bd = self._date_part(b, 1, 4), self._date_part(b, 6, 2), self._date_part(b, 9, 2)
        py, pm = self._date_part(p, 1, 4), self._date_part(p, 6, 2)
        plan.kind, plan.sources = "derived", [birth, self.period]
        # Whole years on the first day of the period's month: one less if the birthday is still to come.
        plan.expression = (f"{py} - {by} - CASE WHEN {bm} > {pm} OR ({bm} = {pm} AND {bd} > 1) "
                           f"THEN 1 ELSE 0 END")
        plan.transformation = f"whole years from {birth} to the first day of the month of {self.period}"

    def _rule_bands(self, plan: ColumnPlan, spec: dict[str, Any], want: str) -> None:
        of = self._dependency(spec["of"])
        bounds = band_bounds(spec["labels"])
        age = f"({of.expression})"
        # Bands are contiguous and ascending (checked with the spec), so each WHEN only needs its upper bound.
        whens = [f"WHEN {age} IS NULL OR {age} < {bounds[0][0]} THEN NULL"]
        for label, (_low, high) in zip(spec["labels"], bounds, strict=True):
            whens.append(f"WHEN {age} <= {high} THEN '{label}'" if high is not None else f"ELSE '{label}'")
        plan.kind, plan.sources, plan.join_path = "derived", list(of.sources), list(of.join_path)
        plan.expression = "CASE " + " ".join(whens) + " END"
        plan.transformation = f"band of {of.name}: " + ", ".join(spec["labels"])
        plan.confidence = of.confidence
        plan.reasoning.append(f"Bands of the target column {of.name} as the spec lists them.")

    # --- output ------------------------------------------------------------------------------------
    def sql(self, only: str | None = None) -> str:
        """The target's SELECT; with ``only``, the SELECT of that one column (the dry run uses it to name the
        column whose SQL fails)."""
        plans = [p for p in self.plans.values() if only is None or p.name.upper() == only.upper()]
        ctes = []
        children = [c for c in self.children.values()
                    if only is None or any(f'"{c.alias}".' in p.expression or f"{c.alias}." in p.expression
                                           for p in plans)]
        for child in children:
            # The child's rows, joined up its foreign-key path (each join on the upper table's key, so no row is
            # repeated), grouped by the column that holds the fact's key.
            joins, alias = [], "t0"
            for index, (src, dst) in enumerate(child.path[:-1], 1):
                joins.append(f" JOIN {self.q(dst.table)} AS t{index} ON t{index}.{self.q(dst.column)} = "
                             f"{alias}.{self.q(src.column)}")
                alias = f"t{index}"
            key = f"{alias}.{self.q(child.fk.column)}"
            cols = [f"{key} AS {self.q('_KEY')}"]
            used = "".join(p.expression for p in plans)
            cols += [f"{sql} AS {self.q(name)}" for name, sql in child.measures.items()
                     if only is None or re.search(rf'"?{child.alias}"?\."?{name}\b', used)]
            ctes.append(f"{self.q(child.alias.upper() + '_' + child.table)} AS (SELECT {', '.join(cols)} "  # noqa: S608
                        f"FROM {self.q(child.table)} AS t0{''.join(joins)} GROUP BY {key})")
        select = [f"{plan.expression} AS {self.q(plan.name)}" for plan in plans]
        lines = [("WITH " + ", ".join(ctes) + " ") if ctes else "", "SELECT ", ", ".join(select),
                 f" FROM {self.q(self.fact)} AS f"]
        for join in self.joins.values():
            lines.append(f" LEFT JOIN {self.q(join.table)} AS {join.alias} ON {join.alias}.{self.q(join.right.column)}"
                         f" = {join.parent_alias}.{self.q(join.left.column)}")
        for child in children:
            lines.append(f" LEFT JOIN {self.q(child.alias.upper() + '_' + child.table)} AS {child.alias} "
                         f"ON {child.alias}.{self.q('_KEY')} = f.{self.q(child.key.column)}")
        if self.aggregated:
            groups = [str(i) for i, plan in enumerate(plans, 1) if not plan.aggregate]
            if groups:
                lines.append(" GROUP BY " + ", ".join(groups))
        text = "".join(lines)
        try:
            parsed = sqlglot.parse_one(text, read=self.dialect)
        except SqlglotError as error:  # pragma: no cover - our own SQL must parse
            raise MappingProblem(f"the generated SQL does not parse: {error}") from None
        if self.dialect == "sqlite":
            # sqlglot writes SUBSTRING(); older SQLite builds (and dbt-sqlite users) know only SUBSTR().
            parsed = parsed.transform(lambda node: exp.Anonymous(
                this="SUBSTR", expressions=[a for a in (node.this, node.args.get("start"), node.args.get("length"))
                                            if a is not None]) if isinstance(node, exp.Substring) else node)
        return parsed.sql(dialect=self.dialect, pretty=True)

    def grain_columns(self) -> list[str]:
        names = []
        for plan in self.plans.values():
            rule = plan.rule or {}
            if "year_of" in rule or "month_of" in rule or "period_start" in rule:
                names.append(plan.name)
            elif not rule and plan.sources and any(
                    self.catalog.equivalent(plan.sources[0], Ref(self.entity_table, self.entity_key))
                    for _ in [0]):
                names.append(plan.name)
        return names

    def draft(self) -> dict[str, Any]:
        """The target's columns as far as they were mapped when a question stopped the plan: those mapped with their
        sources, rule and confidence, the rest (the one asked about among them) with none yet. It goes with the
        question, so that a person answers with the rest of the table in view; its aliases resolve like a proposed
        version's (``fact_table``, ``joins``)."""
        columns = []
        for column in self.target["columns"]:
            plan = self.plans.get(column["name"].upper())
            mapped = plan is not None and bool(plan.sources or plan.expression)
            columns.append({
                "name": column["name"], "target_type": column.get("type", ""), "kind": plan.kind if plan else "direct",
                "sources": [{"table": r.table, "column": r.column} for r in plan.sources] if plan and mapped else [],
                "expression": plan.expression if plan and mapped else "",
                "transformation": plan.transformation if plan and mapped else "", "rule": column.get("rule"),
                "confidence": round(plan.confidence or 0.0, 2) if plan and mapped else None,
                "reasoning": " ".join(plan.reasoning)[:500] if plan and mapped else "",
                "decided_by": plan.decided_by if plan and mapped else "",
            })
        return {"target": self.target["name"], "dialect": self.dialect, "fact_table": getattr(self, "fact", None),
                "joins": [{"alias": j.alias, "table": j.table} for j in self.joins.values()],
                "aggregated_children": [{"alias": c.alias, "table": c.table} for c in self.children.values()],
                "columns": columns}

    def result(self) -> dict[str, Any]:
        sql = self.sql()
        columns = []
        for plan in self.plans.values():
            columns.append({
                "name": plan.name, "target_type": plan.target_type, "description": plan.description,
                "constraints": plan.constraints, "kind": plan.kind,
                "sources": [{"table": r.table, "column": r.column} for r in plan.sources],
                "expression": plan.expression, "join_path": plan.join_path, "transformation": plan.transformation,
                "rule": plan.rule, "confidence": round(plan.confidence or 0.0, 2),
                "reasoning": " ".join(plan.reasoning), "candidates": plan.candidates, "decided_by": plan.decided_by,
                "citations": plan.citations, **({"casts": plan.casts} if plan.casts else {}),
                **({"measure": plan.measure} if plan.measure else {}),
                **({"origin": plan.origin} if plan.origin else {}),
            })
        return {
            "format": FORMAT,
            "target": self.target["name"],
            "description": self.target.get("description", ""),
            "business_rules": self.target.get("business_rules", []),
            "grain": {
                "entity": self.target["grain"]["entity"], "entity_table": self.entity_table,
                "entity_key": self.entity_key, "period": str(self.period) if self.period else None,
                "columns": self.grain_columns(),
            },
            "fact_table": self.fact,
            "joins": [{"alias": j.alias, "table": j.table, "type": "left", "on": f"{j.left} = {j.right}"}
                      for j in self.joins.values()],
            "aggregated_children": [
                {"alias": c.alias, "table": c.table, "on": c.describe(), "path": [[str(a), str(b)] for a, b in c.path],
                 "measures": c.measures}
                for c in self.children.values()
            ],
            "columns": columns,
            "dialect": self.dialect,
            "sql": sql,
            # How the build and the backfill materialize the target (the spec file's choice), and the period's unit.
            "materialized": self.target.get("materialized", "table"),
            **({"period_unit": self.period_unit} if self.period_unit else {}),
        }


def column_lineage(sql: str, *, dialect: str, profile: dict[str, Any], columns: list[str]) -> dict[str, list[str]]:
    """For each output column, the source ``TABLE.COLUMN``s sqlglot's lineage traces it to. The query is parsed and
    qualified once for all its columns (sqlglot shares the work across them); a column that way cannot trace is
    traced on its own, with its own error."""
    schema = {t: {c: (i["declared_type"] or "TEXT") for c, i in info["columns"].items()}
              for t, info in profile["tables"].items()}
    names = {(t.lower(), c.lower()): (t, c) for t, info in profile["tables"].items() for c in info["columns"]}
    try:
        nodes: dict[str, Any] = sqlglot_lineage(None, sql, schema=schema, dialect=dialect)
    except (SqlglotError, ValueError, KeyError):
        nodes = {}
    result: dict[str, list[str]] = {}
    for column in columns:
        node = nodes.get(column)
        if node is None:
            try:
                node = sqlglot_lineage(exp.column(column, quoted=True), sql, schema=schema, dialect=dialect)
            except (SqlglotError, ValueError, KeyError) as error:
                result[column] = [f"(lineage unavailable: {error})"]
                continue
        leaves = set()
        for item in node.walk():
            if item.downstream or not isinstance(item.expression, exp.Table):
                continue
            table = item.expression.name
            col = item.name.split(".")[-1].strip('"')
            actual = names.get((table.lower(), col.lower()))
            if actual:
                leaves.add(f"{actual[0]}.{actual[1]}")
        result[column] = sorted(leaves)
    return result
