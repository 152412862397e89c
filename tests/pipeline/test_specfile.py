import copy
import time
from pathlib import Path

import pytest
import yaml

from pipeline.specfile import SpecFileError, band_bounds, load_spec_text, validate_spec
from tests.documents import billion_laughs, deep_block_yaml, deep_flow_yaml

DEMO = Path(__file__).resolve().parents[2] / "pipeline" / "demo" / "project.yml"


@pytest.fixture
def spec():
    return yaml.safe_load(DEMO.read_text())


def test_the_demo_spec_file_is_valid():
    spec = load_spec_text(DEMO.read_text())
    assert [t["name"] for t in spec["targets"]["tables"]] == ["CLAIM_SUMMARY", "PROVIDER_SUMMARY", "PATIENT_SUMMARY"]
    assert spec["sources"]["allowed_tables"] == ["PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS"]


def _errors(data):
    with pytest.raises(SpecFileError) as caught:
        validate_spec(data)
    return dict(caught.value.errors)


def test_unknown_key_is_refused_with_its_path(spec):
    spec["targets"]["tables"][1]["columns"][2]["colour"] = "red"
    assert _errors(spec) == {"targets.tables[1].columns[2]": "unknown key(s) 'colour'"}


def test_wrong_type_and_missing_key(spec):
    spec["targets"]["tables"][0]["columns"][0]["type"] = 5
    del spec["sources"]["allowed_tables"]
    errors = _errors(spec)
    assert errors["targets.tables[0].columns[0].type"] == "must be of type string, got int"
    assert errors["sources"] == "'allowed_tables' is required"


def test_every_problem_is_listed_not_only_the_first(spec):
    spec["version"] = 2
    spec["targets"]["tables"][2]["columns"][3]["rule"]["bands"]["of"] = "not an identifier"
    assert set(_errors(spec)) == {"version", "targets.tables[2].columns[3].rule.bands.of"}


def test_rules_that_name_missing_columns_or_bad_bands(spec):
    bad = copy.deepcopy(spec)
    bad["targets"]["tables"][0]["columns"][9]["rule"]["difference"] = ["TOTAL_CHARGE", "NOPE"]
    bad["targets"]["tables"][2]["columns"][3]["rule"]["bands"]["labels"] = ["0-17", "20-34", "65+"]
    errors = _errors(bad)
    assert errors["targets.tables[0].columns[9].rule.difference[1]"] == "'NOPE' is not a column of CLAIM_SUMMARY"
    assert "does not start right after '0-17'" in errors["targets.tables[2].columns[3].rule.bands.labels"]


def test_a_rule_needs_exactly_one_kind_and_a_period_when_it_uses_one(spec):
    bad = copy.deepcopy(spec)
    bad["targets"]["tables"][0]["columns"][7]["rule"] = {"sum": "x", "count": "y"}
    bad["targets"]["tables"][0]["columns"][1]["rule"] = {"year_of": "period"}
    errors = _errors(bad)
    assert "exactly one of" in errors["targets.tables[0].columns[7].rule"]
    assert "has no grain.period" in errors["targets.tables[0].columns[1].rule"]


def test_duplicate_columns_and_targets(spec):
    spec["targets"]["tables"][0]["columns"].append({"name": "claim_id", "type": "INTEGER"})
    spec["targets"]["tables"].append(copy.deepcopy(spec["targets"]["tables"][1]))
    errors = _errors(spec)
    assert errors["targets.tables[0].columns[10].name"] == "duplicate column 'claim_id' in CLAIM_SUMMARY"
    assert errors["targets.tables[3].name"] == "duplicate target table 'PROVIDER_SUMMARY'"


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(SpecFileError, match=r"line \d+, column \d+: not valid YAML"):
        load_spec_text("version: 1\nname: [unclosed\n")
    with pytest.raises(SpecFileError, match="must be a mapping"):
        load_spec_text("- just a list")


def test_band_bounds():
    assert band_bounds(["0-17", "18-34", "65+"][:2]) == [(0, 17), (18, 34)]
    assert band_bounds(["0-17", "18-64", "65+"]) == [(0, 17), (18, 64), (65, None)]
    with pytest.raises(ValueError, match="only the last"):
        band_bounds(["0+", "1-2"])


# --- the one strict loader (genesis/documents.py), as for blueprint files -------------------------------------------

def test_a_duplicate_key_is_refused_naming_the_key_and_its_lines():
    text = DEMO.read_text().replace("name: ", "name: first\nname: ", 1)
    with pytest.raises(SpecFileError) as caught:
        load_spec_text(text, source="project.yml")
    line = text.splitlines().index("name: first") + 2
    assert caught.value.errors == [(f"line {line}", f"duplicate key 'name' in one mapping (first on line {line - 1})")]
    assert str(caught.value) == f"project.yml is invalid: line {line}: duplicate key 'name' in one mapping (first on " \
                                f"line {line - 1})"


def test_a_billion_laughs_is_refused_in_well_under_a_second():
    started = time.perf_counter()
    with pytest.raises(SpecFileError) as caught:
        load_spec_text(billion_laughs(), source="project.yml")
    assert time.perf_counter() - started < 2
    assert caught.value.errors == [("line 5, column 25", "56,795 nodes by here once aliases are followed, over the "
                                                         "limit of 50,000 (GENESIS_YAML_MAX_NODES)")]


@pytest.mark.parametrize("text", [deep_flow_yaml(20_000), deep_block_yaml(20_000)])
def test_twenty_thousand_levels_are_refused_naming_the_depth_limit(text):
    with pytest.raises(SpecFileError) as caught:
        load_spec_text(text.encode(), source="project.yml")
    [(where, message)] = caught.value.errors
    assert where.startswith("line 1, column ")
    assert message == "lists and mappings nested 65 levels deep, over the limit of 64 (GENESIS_YAML_MAX_DEPTH)"


def test_a_spec_read_again_is_an_equal_copy_that_no_earlier_reader_changed(settings):
    first = load_spec_text(DEMO.read_bytes(), source="project.yml")
    pristine = copy.deepcopy(first)
    first["targets"]["tables"][0]["name"] = "CHANGED"
    first["sources"]["allowed_tables"].append("SECRETS")
    again = load_spec_text(DEMO.read_bytes(), source="project.yml")
    assert again == pristine and again is not first
    # The same text under a smaller limit is read again, and refused.
    settings.GENESIS_YAML_MAX_BYTES = 1000
    with pytest.raises(SpecFileError):
        load_spec_text(DEMO.read_bytes(), source="project.yml")


def test_a_spec_file_over_the_size_limit_is_refused_before_it_is_read(settings):
    load_spec_text(DEMO.read_bytes(), source="project.yml")
    settings.GENESIS_YAML_MAX_BYTES = 1000
    with pytest.raises(SpecFileError) as caught:
        load_spec_text(DEMO.read_bytes(), source="project.yml")
    size = len(DEMO.read_bytes())
    assert caught.value.errors == [("(file)", f"the file is {size:,} bytes, over the limit of 1,000 "
                                              "(GENESIS_YAML_MAX_BYTES)")]


def test_dates_are_kept_as_text_as_in_blueprint_files():
    # Read as a date before, which the schema then refused ("must be of type string, got date").
    text = DEMO.read_text().replace("name: Healthcare Data Pipeline", "name: 2024-01-31", 1)
    assert load_spec_text(text)["name"] == "2024-01-31"


def test_materialized_incremental_needs_a_period_a_month_holds_whole(spec):
    tables = spec["targets"]["tables"]
    tables[1]["materialized"] = "incremental"  # PROVIDER_SUMMARY: one row per provider and month
    assert validate_spec(spec)["targets"]["tables"][1]["materialized"] == "incremental"
    bad = copy.deepcopy(spec)
    bad["targets"]["tables"][0]["materialized"] = "incremental"
    bad["targets"]["tables"][0]["grain"].pop("period", None)
    bad["targets"]["tables"][0]["columns"] = [c for c in bad["targets"]["tables"][0]["columns"]
                                              if not set(c.get("rule") or {}) & {"year_of", "month_of", "period_start"}]
    bad["targets"]["tables"][1]["grain"]["period"] = {"year_of": "claim service date"}
    errors = _errors(bad)
    assert "its grain has no period" in errors["targets.tables[0].materialized"]
    assert "a year spans months" in errors["targets.tables[1].materialized"]
    spec["targets"]["tables"][2]["materialized"] = "view"
    assert _errors(spec) == {"targets.tables[2].materialized": "must be one of 'table', 'incremental', got 'view'"}
