"""A column whose values fit two tables' keys alike (the profile leaves it without a foreign key) becomes a
relationship question keyed ``CHILD->PARENT`` when a target needs it, offering each key it fits, defaulting to none:
never a guess, and never a column question a person cannot answer. Answered with ``CHILD.col = PARENT.key``, the
target equals a computation written here. The source (technicians and vans numbered alike, jobs assigned to either
by number) is generated for this test."""

import sqlite3
from collections import defaultdict

import pytest
import yaml

from agents.access import adapter_for
from agents.base import NeedsApproval, NeedsInput
from pipeline.mapping import Ambiguity, Catalog, TargetMapper
from pipeline.profiler import profile_source
from tests.pipeline import sources
from tests.pipeline.conftest import sqlite_connection

WORKLOAD = {
    "name": "TECHNICIAN_WORKLOAD", "description": "One row per technician with the jobs they worked.",
    "grain": {"entity": "technician"},
    "columns": [
        {"name": "TECH_ID", "type": "INTEGER", "description": "Identifier of the technician."},
        {"name": "FULL_NAME", "type": "TEXT", "description": "The technician's full name."},
        {"name": "JOBS", "type": "INTEGER", "rule": {"count": "jobs"}},
        {"name": "HOURS", "type": "INTEGER", "rule": {"sum": "hours worked", "default": 0}},
    ],
}
JOB_FACT = {
    "name": "JOB_FACT", "description": "One row per job.", "grain": {"entity": "job"},
    "columns": [
        {"name": "JOB_NO", "type": "INTEGER", "description": "Number of the job."},
        {"name": "JOB_DAY", "type": "DATE", "description": "The day of the job."},
        {"name": "TECHNICIAN_NAME", "type": "TEXT", "description": "The full name of the technician."},
    ],
}
RIGHT = "jobs.assignee_id = technicians.tech_id"


@pytest.fixture
def service(tmp_path):
    return sources.field_service(tmp_path)


def profile_of(source):
    with adapter_for(sqlite_connection(source.path), mission=None) as adapter:
        return profile_source(adapter)


def rows(source, sql):
    db = sqlite3.connect(source.path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_the_profile_leaves_the_assignee_to_a_question(service):
    profile = profile_of(service)
    assert profile["foreign_keys"] == []
    assert profile["ambiguous_foreign_keys"] == [
        {"table": "jobs", "column": "assignee_id", "candidates": ["technicians.tech_id", "vans.van_id"]}]


def test_a_count_and_a_sum_over_the_ambiguous_child_ask_which_parent(service):
    catalog = Catalog(profile_of(service))
    with pytest.raises(Ambiguity) as asked:
        TargetMapper(target=WORKLOAD, catalog=catalog, dialect="sqlite").plan()
    question = asked.value
    assert (question.column, question.reason, question.default) == ("jobs->technicians", "relationship", "none")
    assert question.options == [RIGHT, "jobs.assignee_id = vans.van_id", "none"]
    assert "jobs.assignee_id fit technicians.tech_id and vans.van_id alike" in question.question

    content = TargetMapper(target=WORKLOAD, catalog=catalog, dialect="sqlite",
                           answers={"jobs->technicians": RIGHT}).plan()
    want = {t["tech_id"]: [t["full_name"], 0, 0] for t in service.tables["technicians"]}
    for job in service.tables["jobs"]:
        want[job["assignee_id"]][1] += 1
        want[job["assignee_id"]][2] += job["hours_worked"]
    got = {tech: [name, jobs, hours] for tech, name, jobs, hours in rows(service, content["sql"])}
    assert got == want


def test_a_parents_column_behind_the_ambiguous_key_asks_too(service):
    catalog = Catalog(profile_of(service))
    with pytest.raises(Ambiguity) as asked:
        TargetMapper(target=JOB_FACT, catalog=catalog, dialect="sqlite").plan()
    assert asked.value.column == "jobs->technicians" and asked.value.options[0] == RIGHT
    content = TargetMapper(target=JOB_FACT, catalog=catalog, dialect="sqlite",
                           answers={"jobs->technicians": RIGHT}).plan()
    names = {t["tech_id"]: t["full_name"] for t in service.tables["technicians"]}
    want = {(j["job_no"], j["job_day"], names[j["assignee_id"]]) for j in service.tables["jobs"]}
    assert set(rows(service, content["sql"])) == want


def test_answered_none_the_columns_that_needed_it_are_asked_not_guessed(service):
    catalog = Catalog(profile_of(service))
    with pytest.raises(Ambiguity) as asked:
        TargetMapper(target=JOB_FACT, catalog=catalog, dialect="sqlite",
                     answers={"jobs->technicians": "none"}).plan()
    # Not the relationship again: the column itself, which nothing within reach fits.
    assert asked.value.column == "TECHNICIAN_NAME" and asked.value.default == "none"


@pytest.mark.django_db
def test_the_mapping_agent_asks_the_relationship_and_maps_with_the_answer(mission, run_agent, service, source_for,
                                                                          tmp_path):
    connection = source_for(service.path)
    path = tmp_path / "service.yml"
    path.write_text(yaml.safe_dump({
        "version": 1, "name": "Field service", "targets": {"tables": [WORKLOAD]},
        "sources": {"connection": connection.name, "allowed_tables": ["technicians", "vans", "jobs"]}}))
    config = {"target": "TECHNICIAN_WORKLOAD", "spec_path": str(path), "source_connection": connection.name}
    first = run_agent("field_mapping", mission=mission, config=config)
    assert isinstance(first.outcome, NeedsInput), first.outcome
    assert first.outcome.context["column"] == "jobs->technicians"
    assert first.outcome.options == [RIGHT, "jobs.assignee_id = vans.van_id", "none"]
    answered = run_agent("field_mapping", mission=mission, config=config, answers=[
        {"question": first.outcome.question, "answer": RIGHT, "context": first.outcome.context}])
    assert isinstance(answered.outcome, NeedsApproval), answered.outcome
    hours = defaultdict(int)
    for job in service.tables["jobs"]:
        hours[job["assignee_id"]] += job["hours_worked"]
    content = answered.outcome.outputs
    assert content["target"] == "TECHNICIAN_WORKLOAD"
    from pipeline.models import MappingSpecVersion

    version = MappingSpecVersion.objects.get(spec__mission=mission, number=content["version"])
    got = {tech: hours_ for tech, _name, _jobs, hours_ in rows(service, version.sql)}
    assert got == {t["tech_id"]: hours[t["tech_id"]] for t in service.tables["technicians"]}
