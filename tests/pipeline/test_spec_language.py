"""The spec language: per column a description alone, a rule (sum, count, count_distinct, min, max, avg with a
``where`` filter, scale, default) or a SQL ``expression``; grains of any entity with or without a day, week, month or
year period. Expressions are parsed within limits, checked against the allowed tables and the profiled columns, and
every error names the spec path."""

import copy
import sqlite3
from collections import defaultdict
from datetime import date, timedelta

import pytest

from agents.access import adapter_for
from pipeline.expressions import ExpressionError
from pipeline.mapping import Catalog, TargetMapper
from pipeline.profiler import profile_source
from pipeline.specfile import SpecFileError, validate_spec
from tests.pipeline import sources
from tests.pipeline.conftest import sqlite_connection

LOANS_SUMMARY = {
    "name": "LOANS_SUMMARY", "grain": {"entity": "member", "period": {"month_of": "loan borrowed on"}},
    "columns": [
        {"name": "MEMBER_ID", "type": "INTEGER", "description": "The member."},
        {"name": "MONTH_START", "type": "DATE", "rule": {"period_start": "period"}},
        {"name": "LOANS", "type": "INTEGER", "rule": {"count": "loans"}},
        {"name": "LATE_FINES", "type": "DECIMAL(10,2)", "rule": {"sum": "fine amount cents", "where": "Kind = 'LATE'",
                                                                  "divide": 100, "default": 0}},
        {"name": "TOTAL_FINES", "type": "DECIMAL(10,2)", "expression": "COALESCE(SUM(Fine.AmountCents), 0) / 100.0"},
        {"name": "BIGGEST_FINE", "type": "INTEGER", "rule": {"max": "fine amount cents"}},
        {"name": "LAST_DUE", "type": "DATE", "rule": {"max": "due on"}},
    ],
}


def spec(*targets):
    return {"version": 1, "name": "Library",
            "sources": {"connection": "LIB", "allowed_tables": ["Member", "Loan", "Fine"]},
            "targets": {"tables": list(targets)}}


def catalog_of(source):
    with adapter_for(sqlite_connection(source.path), mission=None) as adapter:
        return Catalog(profile_source(adapter))


def run(source, sql):
    db = sqlite3.connect(source.path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_a_monthly_grain_with_filtered_scaled_and_extreme_measures_equals_a_computation_written_here(tmp_path):
    source = sources.library(tmp_path)
    validate_spec(spec(LOANS_SUMMARY))
    content = TargetMapper(target=LOANS_SUMMARY, catalog=catalog_of(source), dialect="sqlite",
                           answers={"MEMBER_ID": "Loan.MemberId"}).plan()
    assert content["grain"]["columns"] == ["MEMBER_ID", "MONTH_START"]
    want = defaultdict(lambda: [0, 0, 0, None, None])
    loans = {loan["LoanId"]: loan for loan in source.tables["Loan"]}
    for loan in source.tables["Loan"]:
        row = want[(loan["MemberId"], loan["BorrowedOn"][:7] + "-01")]
        row[0] += 1
        row[4] = max(row[4] or "", loan["DueOn"])
    for fine in source.tables["Fine"]:
        loan = loans[fine["LoanId"]]
        row = want[(loan["MemberId"], loan["BorrowedOn"][:7] + "-01")]
        row[1] += fine["AmountCents"] if fine["Kind"] == "LATE" else 0
        row[2] += fine["AmountCents"]
        row[3] = max(row[3] or 0, fine["AmountCents"])
    got = {(r[0], r[1]): r[2:] for r in run(source, content["sql"])}
    assert set(got) == set(want)
    for key, (count, late, total, biggest, due) in want.items():
        assert got[key][0] == count and got[key][3] == biggest and got[key][4] == due, key
        assert abs(got[key][1] - late / 100) < 1e-9 and abs(got[key][2] - total / 100) < 1e-9, key


@pytest.mark.parametrize(("unit", "start"), [
    ("day_of", lambda d: d), ("week_of", lambda d: d - timedelta(days=d.weekday())),
    ("year_of", lambda d: date(d.year, 1, 1)),
])
def test_a_day_week_or_year_period_groups_by_its_first_day(tmp_path, unit, start):
    source = sources.library(tmp_path)
    target = {"name": "LOANS_BY_PERIOD", "grain": {"entity": "member", "period": {unit: "loan borrowed on"}},
              "columns": [{"name": "MEMBER_ID", "type": "INTEGER"},
                          {"name": "PERIOD_START", "type": "DATE", "rule": {"period_start": "period"}},
                          {"name": "LOANS", "type": "INTEGER", "rule": {"count": "loans"}}]}
    validate_spec(spec(target))
    content = TargetMapper(target=target, catalog=catalog_of(source), dialect="sqlite",
                           answers={"MEMBER_ID": "Loan.MemberId"}).plan()
    want = defaultdict(int)
    for loan in source.tables["Loan"]:
        want[(loan["MemberId"], start(date.fromisoformat(loan["BorrowedOn"])).isoformat())] += 1
    assert {(r[0], r[1]): r[2] for r in run(source, content["sql"])} == want


def test_a_grain_without_a_period_aggregates_per_entity(tmp_path):
    source = sources.library(tmp_path)
    target = {"name": "MEMBER_FINES", "grain": {"entity": "member"},
              "columns": [{"name": "MEMBER_ID", "type": "INTEGER", "description": "The member."},
                          {"name": "AVG_FINE", "type": "DECIMAL(10,2)", "rule": {"avg": "fine amount cents"}},
                          {"name": "FIRST_LOAN", "type": "DATE", "rule": {"min": "borrowed on"}}]}
    content = TargetMapper(target=target, catalog=catalog_of(source), dialect="sqlite").plan()
    fines, first = defaultdict(list), {}
    loans = {loan["LoanId"]: loan["MemberId"] for loan in source.tables["Loan"]}
    for fine in source.tables["Fine"]:
        fines[loans[fine["LoanId"]]].append(fine["AmountCents"])
    for loan in source.tables["Loan"]:
        first[loan["MemberId"]] = min(first.get(loan["MemberId"], loan["BorrowedOn"]), loan["BorrowedOn"])
    for member, avg, first_loan in run(source, content["sql"]):
        assert first_loan == first.get(member)
        assert (avg is None and not fines[member]) or abs(avg - sum(fines[member]) / len(fines[member])) < 1e-9


@pytest.mark.parametrize(("column", "path", "message"), [
    ({"name": "TOTAL_FINES", "type": "INTEGER", "expression": "SUM(Fine.AmountCents"},
     "targets.LOANS_SUMMARY.columns.TOTAL_FINES.expression", "does not parse"),
    ({"name": "TOTAL_FINES", "type": "INTEGER", "expression": "SUM(Payroll.Salary)"},
     "targets.LOANS_SUMMARY.columns.TOTAL_FINES.expression", "Payroll is not among the allowed source tables"),
    ({"name": "TOTAL_FINES", "type": "INTEGER", "expression": "(SELECT MAX(AmountCents) FROM Fine)"},
     "targets.LOANS_SUMMARY.columns.TOTAL_FINES.expression", "not a query"),
    ({"name": "TOTAL_FINES", "type": "INTEGER", "expression": "SUM(" * 400 + "x" + ")" * 400},
     "targets.tables[0].columns[6].expression", "is too long"),
    ({"name": "TOTAL_FINES", "type": "INTEGER", "rule": {"sum": "fines", "where": "Kind = "}},
     "targets.LOANS_SUMMARY.columns.TOTAL_FINES.rule.where", "does not parse"),
    ({"name": "TOTAL_FINES", "type": "INTEGER", "rule": {"concat": [{"literal": "x"}], "where": "Kind = 'LATE'"}},
     "targets.tables[0].columns[6].rule.where", "a filter needs one of"),
    ({"name": "TOTAL_FINES", "type": "INTEGER", "rule": {"sum": "fines"}, "expression": "SUM(Fine.AmountCents)"},
     "targets.tables[0].columns[6]", "a column has a rule or an expression, not both"),
])
def test_spec_expression_errors_name_the_spec_path(column, path, message):
    target = copy.deepcopy(LOANS_SUMMARY)
    target["columns"] = [c for c in target["columns"] if c["name"] != "TOTAL_FINES"] + [column]
    with pytest.raises(SpecFileError) as caught:
        validate_spec(spec(target))
    assert any(p.startswith(path) and message in m for p, m in caught.value.errors), caught.value.errors


def test_a_period_grain_needs_a_column_holding_the_period():
    target = copy.deepcopy(LOANS_SUMMARY)
    target["columns"] = [c for c in target["columns"] if c["name"] != "MONTH_START"]
    with pytest.raises(SpecFileError) as caught:
        validate_spec(spec(target))
    assert caught.value.errors == [("targets.tables[0].grain.period",
                                    "one row per month needs a column with rule period_start, or two with year_of and "
                                    "month_of")]


@pytest.mark.parametrize(("expression", "message"), [
    ("SUM(Fine.Amount)", "Fine has no column Amount (its columns: FineId, LoanId, Kind, AmountCents)"),
    ("SUM(MemberId)", "MemberId is a column of several tables (Loan, Member): write TABLE.MemberId"),
    ("Fine.AmountCents", "Fine.AmountCents is not one value per LOANS_SUMMARY row: aggregate it"),
    ("COUNT(*)", "names no column, so no table"),
])
def test_expressions_are_checked_against_the_profiled_columns(tmp_path, expression, message):
    source = sources.library(tmp_path)
    target = copy.deepcopy(LOANS_SUMMARY)
    target["columns"][4]["expression"] = expression
    with pytest.raises(ExpressionError) as caught:
        TargetMapper(target=target, catalog=catalog_of(source), dialect="sqlite",
                     answers={"MEMBER_ID": "Loan.MemberId"}).plan()
    assert caught.value.path == "targets.LOANS_SUMMARY.columns.TOTAL_FINES.expression"
    assert message in caught.value.message


@pytest.mark.django_db
def test_an_expression_the_source_cannot_run_fails_the_dry_run_naming_its_spec_path(tmp_path, mission, run_agent,
                                                                                    source_for):
    import yaml

    source = sources.library(tmp_path)
    connection = source_for(source.path)
    target = copy.deepcopy(LOANS_SUMMARY)
    target["columns"][4]["expression"] = "SUM(NO_SUCH_FUNCTION(Fine.AmountCents))"
    document = spec(target)
    document["sources"]["connection"] = connection.name
    path = tmp_path / "library.yml"
    path.write_text(yaml.safe_dump(document))
    result = run_agent("field_mapping", mission=mission, answers=[
        {"question": "LOANS_SUMMARY.MEMBER_ID: which?", "answer": "Loan.MemberId",
         "context": {"column": "LOANS_SUMMARY.MEMBER_ID"}}],
        config={"target": "LOANS_SUMMARY", "spec_path": str(path), "source_connection": connection.name})
    assert result.outcome.error.startswith(
        "LOANS_SUMMARY: targets.LOANS_SUMMARY.columns.TOTAL_FINES.expression: the dry run failed:")
    assert "no_such_function" in result.outcome.error.lower()
