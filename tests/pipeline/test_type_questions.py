"""A declared type the source does not hold is a question of its own, never a reason to drop an exact-name match:
keep the source's values as they are, or cast them, and a cast that would lose values is refused.

The bronze set here is the demo's contract schema with text identifiers (``CLM000001``, ``PAT…``, ``PRV…``) where
the spec declares INTEGER keys: the finding was that ``CLAIMS.CLAIM_ID`` scored 0.30, became a question whose
default was ``none``, and an unattended run loaded 6,000 null keys."""

import sqlite3
from contextlib import contextmanager

import duckdb
import pytest

from agents.access import adapter_for
from agents.base import NeedsApproval, NeedsInput
from agents.models import Connection
from pipeline.implementations.field_mapping import _lossy_values
from pipeline.models import MappingSpecVersion
from tests.pipeline.conftest import SPEC_PATH, pg_connection, pg_scratch_schema

pytestmark = pytest.mark.django_db


TEXT_IDS = {"CLAIM_ID": "CLM", "PATIENT_ID": "PAT", "PROVIDER_ID": "PRV"}


@pytest.fixture
def text_ids(demo_small, tmp_path):
    """The demo's bronze tables copied with every identifier rewritten as prefixed text."""
    path = tmp_path / "text_ids.sqlite3"
    db = sqlite3.connect(path)
    with db:
        db.execute("ATTACH DATABASE ? AS demo", (str(demo_small),))
        tables = db.execute("SELECT name FROM demo.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        for (table,) in tables.fetchall():
            columns = [row[1] for row in db.execute(f"PRAGMA demo.table_info({table})")]
            select = ", ".join(f"'{TEXT_IDS[c]}' || printf('%06d', {c}) AS {c}" if c in TEXT_IDS else c
                               for c in columns)
            db.execute(f"CREATE TABLE {table} AS SELECT {select} FROM demo.{table}")  # noqa: S608
    db.close()
    return path


def _ask(run_agent, mission, config, answers=()):
    return run_agent("field_mapping", mission=mission, config=config, answers=list(answers))


def test_an_exact_name_with_another_type_is_asked_keep_or_cast_and_keep_is_the_default(
        mission, run_agent, source_for, text_ids):
    source = source_for(text_ids)
    config = {"target": "CLAIM_SUMMARY", "spec_path": SPEC_PATH, "source_connection": source.name}
    first = _ask(run_agent, mission, config)
    assert isinstance(first.outcome, NeedsInput), first.outcome
    assert first.outcome.context["column"] == "CLAIM_SUMMARY.CLAIM_ID.type"
    assert "CLAIMS.CLAIM_ID has the same name but holds text values ('CLM" in first.outcome.question
    assert first.outcome.options == ["keep TEXT", "cast to INTEGER"] and first.outcome.default == "keep TEXT"

    answers = [{"question": first.outcome.question, "answer": first.outcome.default, "context": first.outcome.context}]
    runs = _answer_type_questions(run_agent, mission, config, answers, answer=None)
    assert isinstance(runs.outcome, NeedsApproval), runs.outcome
    columns = {c["name"]: c for c in MappingSpecVersion.objects.get().content["columns"]}
    assert columns["CLAIM_ID"]["sources"] == [{"table": "CLAIMS", "column": "CLAIM_ID"}]
    assert columns["CLAIM_ID"]["target_type"] == "TEXT" and columns["CLAIM_ID"]["decided_by"] == "answer"
    assert "kept as TEXT (the spec declares INTEGER)" in columns["CLAIM_ID"]["transformation"]
    dry = MappingSpecVersion.objects.get().content["dry_run"]
    assert dry["sample"][0][0].startswith("CLM") and dry["duplicate_grain_rows"] == 0


def test_a_cast_that_would_lose_values_is_refused_and_asked_again(mission, run_agent, source_for, text_ids):
    source = source_for(text_ids)
    config = {"target": "CLAIM_SUMMARY", "spec_path": SPEC_PATH, "source_connection": source.name}
    first = _ask(run_agent, mission, config)
    answers = [{"question": first.outcome.question, "answer": "cast to INTEGER", "context": first.outcome.context}]
    refused = _answer_type_questions(run_agent, mission, config, answers, answer="cast")
    assert isinstance(refused.outcome, NeedsInput)
    assert refused.outcome.context == {"column": "CLAIM_SUMMARY.CLAIM_ID.type", "reason": "lossy cast"}
    assert "would lose 2,000 values (e.g. 'CLM" in refused.outcome.question
    assert not MappingSpecVersion.objects.exists()


def _answer_type_questions(run_agent, mission, config, answers, *, answer):
    """Answer every further type question (other keys) the same way until the agent proposes or asks else."""
    while True:
        result = _ask(run_agent, mission, config, answers)
        outcome = result.outcome
        if not (isinstance(outcome, NeedsInput) and outcome.context.get("reason") == "type mismatch"):
            return result
        chosen = outcome.default if answer is None else next(o for o in outcome.options if o.startswith(answer))
        answers.append({"question": outcome.question, "answer": chosen, "context": outcome.context})


# Texts a cast is checked on, and those a cast to each type would lose where the engine matches them with a regular
# expression (PostgreSQL and DuckDB; SQLite's CAST never raises and is checked otherwise).
CAST_TEXTS = ["12", " -7 ", "+0", "1.5", ".5", "2e3", "CLM000012", "1.2.3", None]
LOST = {"integer": {"1.5", ".5", "2e3", "CLM000012", "1.2.3"}, "decimal": {"CLM000012", "1.2.3"}}


@contextmanager
def _texts_on(engine: str, tmp_path):
    """An adapter on a table ``T`` whose text column ``V`` holds ``CAST_TEXTS``."""
    if engine == "duckdb":
        path = tmp_path / "texts.duckdb"
        db = duckdb.connect(str(path))
        db.execute('CREATE TABLE "T" ("V" VARCHAR)')
        db.executemany('INSERT INTO "T" VALUES (?)', [(text,) for text in CAST_TEXTS])
        db.close()
        with adapter_for(Connection(name="TEXTS", engine="duckdb", location=str(path)), mission=None) as adapter:
            yield adapter
        return
    with pg_scratch_schema("genesis_cast") as (admin, schema):
        admin.execute(f'CREATE TABLE "{schema}"."T" ("V" TEXT)')
        with admin.cursor() as cursor:
            cursor.executemany(f'INSERT INTO "{schema}"."T" VALUES (%s)', [(text,) for text in CAST_TEXTS])
        with adapter_for(pg_connection(schema), mission=None) as adapter:
            yield adapter


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_values_a_cast_would_lose_are_matched_by_the_engines_regular_expression(engine, tmp_path):
    with _texts_on(engine, tmp_path) as adapter:
        for to, lost in LOST.items():
            count, examples = _lossy_values(adapter, "T", "V", to)
            assert count == len(lost), to
            assert set(examples) <= lost and len(examples) == min(3, len(lost)), to
