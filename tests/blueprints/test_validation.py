"""A blueprint file is refused whole, with every problem named by file, path and what is wrong."""

import textwrap
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.models import Agent
from blueprints.models import ActionTemplate, Blueprint, BlueprintVersion, PhaseTemplate
from blueprints.services import blueprint_import
from blueprints.validation import BlueprintInvalid, load_text, substitute
from tests.documents import billion_laughs_blueprint, deep_block_yaml, deep_flow_yaml

pytestmark = pytest.mark.django_db

GOOD = textwrap.dedent("""\
    slug: tiny
    name: Tiny
    parameters:
    - name: conn
      type: connection
      purpose: source
    - name: tables
      type: list
      default: [a, b]
    phases:
    - name: One
      actions:
      - key: first
        title: First on {{ conn }}
        owner: noop
      - key: second
        title: Second
        owner: mission_owner
        depends_on: [first]
      exit_criteria:
      - type: table_exists
        params: {connection: '{{ conn }}', tables: '{{ tables }}'}
    - name: Two
      actions:
      - key: third
        title: Third
        owner: noop
        depends_on: [second]
    """)


def problems(text: str, filename: str = "bp.yaml") -> list[str]:
    with pytest.raises(BlueprintInvalid) as caught:
        load_text(text, filename)
    assert caught.value.filename == filename
    return caught.value.lines()


def test_a_good_file_validates_into_its_normal_form():
    spec = load_text(GOOD, "good.yaml")
    assert spec["slug"] == "tiny"
    second = spec["phases"][0]["actions"][1]
    assert second == {
        "key": "second", "title": "Second", "description": "", "owner": "mission_owner", "depends_on": ["first"],
        "acceptance_criteria": [], "config": {}, "timeout": 3600, "max_attempts": 3,
    }
    assert spec["parameters"][0] == {"name": "conn", "type": "connection", "help": "", "required": True,
                                     "purpose": "source"}


def test_unknown_keys_are_named_with_their_path():
    text = GOOD.replace("  - key: second\n", "  - key: second\n    colour: red\n").replace(
        "name: Tiny\n", "name: Tiny\nauthor: me\n")
    assert problems(text) == [
        "bp.yaml: author: unknown key (allowed here: description, name, objective, parameters, phases, requires, "
        "scope, slug, success_criteria, tags, version)",
        "bp.yaml: phases[0].actions[1].colour: unknown key (allowed here: acceptance_criteria, config, "
        "depends_on, description, for_each, key, max_attempts, owner, timeout, title)",
    ]


def test_wrong_types_and_missing_keys_are_named():
    text = GOOD.replace("title: Second\n", "title: [Second]\n").replace(
        "    title: Third\n", "").replace("name: Two\n", "name: Two\n  description: 5\n")
    lines = problems(text)
    assert "bp.yaml: phases[0].actions[1].title: wrong type: expected string, got array" in lines
    assert "bp.yaml: phases[1].actions[0].title: required key is missing" in lines
    assert "bp.yaml: phases[1].description: wrong type: expected string, got integer" in lines
    assert len(lines) == 3


def test_an_unknown_agent_kind_is_named():
    lines = problems(GOOD.replace("owner: mission_owner", "owner: wizard"))
    assert len(lines) == 1
    assert lines[0].startswith("bp.yaml: phases[0].actions[1].owner: unknown agent kind 'wizard' (agent kinds: ")
    assert "field_mapping" in lines[0] and "roles: mission_owner, task_owner" in lines[0]


def test_an_unknown_check_type_and_bad_check_params_are_named():
    text = GOOD.replace("type: table_exists", "type: tables_exist")
    assert problems(text) == [
        "bp.yaml: phases[0].exit_criteria[0].type: unknown check type 'tables_exist' (known: all_tasks_done, "
        "approval_recorded, artifact_exists, dbt_succeeded, row_count, sql_assert, table_exists)"
    ]
    text = GOOD.replace("params: {connection: '{{ conn }}', tables: '{{ tables }}'}",
                        "params: {connection: '{{ conn }}', tables: ['ok', 'no way'], limit: 3}")
    assert problems(text) == [
        "bp.yaml: phases[0].exit_criteria[0].params.limit: unknown key (allowed here: connection, tables)",
        "bp.yaml: phases[0].exit_criteria[0].params.tables[1]: 'no way' has the wrong form "
        "(expected ^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$)",
    ]


def test_check_params_that_name_a_missing_action_are_named():
    text = GOOD.replace("  exit_criteria:\n", "  exit_criteria:\n  - type: approval_recorded\n"
                                               "    params: {task: sceond}\n")
    assert problems(text) == ["bp.yaml: phases[0].exit_criteria[0].params.task: no action has key 'sceond'"]


def test_a_dependency_on_a_missing_key_is_named():
    text = GOOD.replace("depends_on: [second]", "depends_on: [second, fourth]")
    assert problems(text) == [
        "bp.yaml: phases[1].actions[0].depends_on[1]: depends on 'fourth', which is no action of this blueprint"
    ]


def test_duplicate_action_keys_are_named():
    text = GOOD.replace("key: third", "key: first").replace("depends_on: [second]", "depends_on: []")
    assert problems(text) == [
        "bp.yaml: phases[1].actions[0].key: duplicate action key 'first' (first at phases[0].actions[0].key)"
    ]


def test_duplicate_yaml_keys_are_refused_with_their_line():
    text = GOOD.replace("    title: Second\n", "    title: Second\n    title: Again\n")
    assert problems(text) == ["bp.yaml: line 18: duplicate key 'title' in one mapping (first on line 17)"]


def test_a_dependency_cycle_is_named_with_its_path():
    text = GOOD.replace("    title: First on {{ conn }}\n",
                        "    title: First on {{ conn }}\n    depends_on: [second]\n")
    assert problems(text) == ["bp.yaml: phases[0].actions[1].depends_on[0]: dependency cycle: first → second → first"]


def test_a_longer_cycle_and_a_self_dependency():
    text = textwrap.dedent("""\
        slug: loop
        name: Loop
        phases:
        - name: Only
          actions:
          - {key: a, title: A, owner: noop, depends_on: [c]}
          - {key: b, title: B, owner: noop, depends_on: [a]}
          - {key: c, title: C, owner: noop, depends_on: [b]}
          - {key: d, title: D, owner: noop, depends_on: [d]}
        """)
    assert problems(text, "loop.yaml") == [
        "loop.yaml: phases[0].actions[1].depends_on[0]: dependency cycle: a → c → b → a",
        "loop.yaml: phases[0].actions[3].depends_on[0]: an action cannot depend on itself",
    ]


def test_a_dependency_on_a_later_phase_is_refused():
    text = GOOD.replace(
        "depends_on: [first]", "depends_on: [first, third]").replace("depends_on: [second]", "depends_on: []")
    assert problems(text) == [
        "bp.yaml: phases[0].actions[1].depends_on[1]: depends on 'third' of a later phase ('Two'); an action may "
        "only wait for actions of its own or earlier phases"
    ]


def test_unknown_parameters_and_bad_defaults_are_named():
    text = GOOD.replace("title: Second", "title: Second for {{ team }}").replace("default: [a, b]", "default: 7")
    assert problems(text) == [
        "bp.yaml: parameters[1].default: wrong type: parameter 'tables' is a list, the default is a integer",
        "bp.yaml: phases[0].actions[1].title: unknown parameter 'team' in {{ team }} (declared: conn, tables)",
    ]


def test_every_problem_is_reported_not_only_the_first():
    text = (GOOD.replace("owner: mission_owner", "owner: wizard")
            .replace("depends_on: [second]", "depends_on: [nothing]")
            .replace("type: table_exists", "type: nope")
            .replace("name: Tiny\n", "name: Tiny\nextra: 1\n"))
    lines = problems(text)
    assert [line.split(":")[1].strip() for line in lines] == [
        "extra", "phases[0].actions[1].owner", "phases[0].exit_criteria[0].type", "phases[1].actions[0].depends_on[0]",
    ]


def test_yaml_syntax_errors_name_line_and_column():
    lines = problems("slug: x\nname: [unclosed\n", "broken.yaml")
    assert len(lines) == 1 and lines[0].startswith("broken.yaml: line 3, column 1: not valid YAML")


def test_a_document_that_is_not_a_mapping():
    assert problems("- just\n- a list\n") == ["bp.yaml: (top level): wrong type: expected object, got array"]


def test_a_refused_file_creates_nothing():
    bad = GOOD.replace("owner: mission_owner", "owner: wizard")
    with pytest.raises(BlueprintInvalid):
        blueprint_import(text=bad, filename="bad.yaml")
    assert not Blueprint.objects.exists()
    assert not BlueprintVersion.objects.exists() and not PhaseTemplate.objects.exists()
    assert not ActionTemplate.objects.exists() and not Agent.objects.exists()


def test_the_command_prints_every_error_exits_non_zero_and_loads_nothing(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("slug: tiny", "slug: other").replace("owner: mission_owner", "owner: wizard")
                   .replace("depends_on: [second]", "depends_on: [nothing]"))
    with pytest.raises(CommandError, match="2 problem"):
        call_command("load_blueprint", str(good), str(bad))
    err = capsys.readouterr().err
    assert f"{bad}: phases[0].actions[1].owner: unknown agent kind 'wizard'" in err
    assert f"{bad}: phases[1].actions[0].depends_on[0]: depends on 'nothing'" in err
    assert not Blueprint.objects.exists()  # the good file is not loaded either: all or nothing


def test_substitution_keeps_types_for_whole_placeholders_and_writes_text_inside_sentences():
    values = {"tables": ["a", "b"], "n": 3, "name": "claims"}
    assert substitute({"t": "{{ tables }}", "n": "{{n}}", "s": "Load {{ name }} ({{ tables }}) x{{ n }}",
                       "keep": "{{ other }}"}, values) == {
        "t": ["a", "b"], "n": 3, "s": "Load claims (a, b) x3", "keep": "{{ other }}"}


def test_a_file_with_control_characters_is_refused_not_a_crash():
    from blueprints.validation import BlueprintInvalid, parse_yaml

    with pytest.raises(BlueprintInvalid) as error:
        parse_yaml("name: caf\u00e9\u008b", "bad.yaml")
    assert "bad.yaml: (file): not valid YAML: unacceptable character #x008b" in str(error.value)


@pytest.mark.parametrize(("text", "where"), [
    ('name: "a\\ud800b"', "name"),
    ('phases:\n- name: "x\\0y"', "phases[0].name"),
    ('{"k\\udfff": 1}', "(top level): a key"),
])
def test_escapes_that_make_text_the_database_cannot_hold_are_refused_by_path(text, where):
    # Found by schemathesis: "\ud8d2" in a double-quoted YAML string became a lone surrogate, and the refusal that
    # repeated it could not be encoded as JSON (a 500).
    from blueprints.validation import BlueprintInvalid, parse_yaml

    with pytest.raises(BlueprintInvalid) as error:
        parse_yaml(text, "odd.yaml")
    assert error.value.lines()[0].startswith(f"odd.yaml: {where}")
    assert "cannot be stored" in error.value.message
    error.value.message.encode("utf-8")  # the message itself is plain text


# --- files that held or crashed a worker (the loader's limits, genesis/documents.py) --------------------------------

LAUGHS = ("laughs.yaml: line 14, column 31: 56,815 nodes by here once aliases are followed, over the limit of 50,000 "
          "(GENESIS_YAML_MAX_NODES)")


def test_a_billion_laughs_is_refused_by_the_service_in_well_under_a_second():
    started = time.perf_counter()
    with pytest.raises(BlueprintInvalid) as caught:
        blueprint_import(text=billion_laughs_blueprint(), filename="laughs.yaml")
    assert time.perf_counter() - started < 2
    assert caught.value.lines() == [LAUGHS]
    assert not Blueprint.objects.exists()


def test_a_billion_laughs_is_refused_by_the_command_in_well_under_a_second(tmp_path, capsys):
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs_blueprint())
    started = time.perf_counter()
    with pytest.raises(CommandError, match="1 problem"):
        call_command("load_blueprint", str(path))
    assert time.perf_counter() - started < 2
    assert capsys.readouterr().err.strip() == LAUGHS.replace("laughs.yaml", str(path))
    assert not Blueprint.objects.exists()


@pytest.mark.parametrize("text", [deep_flow_yaml(20_000), deep_block_yaml(20_000)])
def test_twenty_thousand_levels_are_refused_naming_the_depth_limit(text):
    [line] = problems(text, "deep.yaml")
    assert line.endswith(": lists and mappings nested 65 levels deep, over the limit of 64 (GENESIS_YAML_MAX_DEPTH)")


def test_keys_that_are_not_text_are_named_not_a_crash():
    # YAML makes null and a number keys: the problems are sorted by path, which used to compare them with text.
    lines = problems(GOOD.replace("name: Tiny\n", "name: Tiny\n~: 1\n2.5: 2\n"))
    assert [line.split(": unknown key")[0] for line in lines] == ["bp.yaml: 2.5", "bp.yaml: None"]
