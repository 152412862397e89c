"""The one strict YAML loader and the JSON nesting limit (genesis/documents.py): documents that would hold a worker
or crash it are refused fast, naming the file, the limit and the figure."""

import json
import time

import pytest

from genesis.documents import (
    DocumentInvalid,
    DocumentTooLarge,
    JSONTooDeep,
    LimitedJSONDecoder,
    SchemaWording,
    load_yaml,
    loads_json,
    schema_problems,
)
from tests.documents import billion_laughs, deep_block_yaml, deep_flow_yaml, deep_json


def _refused(text, filename="doc.yaml") -> DocumentInvalid:
    with pytest.raises(DocumentInvalid) as caught:
        load_yaml(text, filename=filename)
    assert caught.value.filename == filename
    return caught.value


# --- YAML: what it reads ----------------------------------------------------------------------------------------

def test_a_document_is_read_with_dates_kept_as_text():
    assert load_yaml("when: 2024-01-31\nat: [1, x, {k: true}]\n", filename="doc.yaml") == {
        "when": "2024-01-31", "at": [1, "x", {"k": True}]}


def test_every_duplicate_key_is_refused_by_line():
    error = _refused("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert error.problems == [
        ("line 4", "duplicate key 'c' in one mapping (first on line 3)"),
        ("line 5", "duplicate key 'a' in one mapping (first on line 1)"),
    ]


def test_aliases_within_the_limits_are_followed():
    assert load_yaml("base: &b {x: 1}\nuses: [*b, *b]\n", filename="doc.yaml") == {
        "base": {"x": 1}, "uses": [{"x": 1}, {"x": 1}]}


# --- YAML: the limits -------------------------------------------------------------------------------------------

def test_a_billion_laughs_is_refused_in_milliseconds_naming_the_node_limit(settings):
    text = billion_laughs()  # 590 bytes; ten billion strings once followed
    started = time.perf_counter()
    with pytest.raises(DocumentTooLarge) as caught:
        load_yaml(text, filename="laughs.yaml")
    elapsed = time.perf_counter() - started
    assert elapsed < 2, f"took {elapsed:.2f} s"
    error = caught.value
    assert (error.setting, error.limit, error.figure) == ("GENESIS_YAML_MAX_NODES", 50_000, 56_795)
    assert error.problems == [("line 5, column 25", "56,795 nodes by here once aliases are followed, over the limit "
                                                    "of 50,000 (GENESIS_YAML_MAX_NODES)")]
    assert str(error).startswith("laughs.yaml: line 5, column 25: 56,795 nodes")


def test_aliases_are_refused_past_their_limit(settings):
    settings.GENESIS_YAML_MAX_ALIASES = 3
    assert load_yaml("a: &a 1\nb: [*a, *a, *a]\n", filename="doc.yaml") == {"a": 1, "b": [1, 1, 1]}
    error = _refused("a: &a 1\nb: [*a, *a, *a]\nc: *a\n")
    assert (error.setting, error.limit, error.figure) == ("GENESIS_YAML_MAX_ALIASES", 3, 4)
    assert error.problems == [("line 3, column 4", "4 aliases (*name) by here, over the limit of 3 "
                                                   "(GENESIS_YAML_MAX_ALIASES)")]


def test_nodes_are_counted_with_their_aliases_followed(settings):
    settings.GENESIS_YAML_MAX_NODES = 13
    # The mapping, a, [x, y] (3), b, [*a, *a] (1 + 3 + 3): 13 nodes once followed, though 9 are written.
    assert load_yaml("a: &a [x, y]\nb: [*a, *a]\n", filename="doc.yaml") == {"a": ["x", "y"], "b": [["x", "y"]] * 2}
    error = _refused("a: &a [x, y]\nb: [*a, *a, *a]\n")
    assert (error.setting, error.figure) == ("GENESIS_YAML_MAX_NODES", 16)
    assert error.problems == [("line 2, column 13", "16 nodes by here once aliases are followed, over the limit of 13 "
                                                    "(GENESIS_YAML_MAX_NODES)")]


@pytest.mark.parametrize("text", [deep_flow_yaml(20_000), deep_block_yaml(20_000), "a: " + "{a: " * 20_000 + "1"
                                  + "}" * 20_000])
def test_twenty_thousand_levels_are_refused_naming_the_depth_limit_not_a_recursion_error(text):
    started = time.perf_counter()
    error = _refused(text)
    assert time.perf_counter() - started < 2
    assert (error.setting, error.limit, error.figure) == ("GENESIS_YAML_MAX_DEPTH", 64, 65)
    assert error.problems[0][1] == "lists and mappings nested 65 levels deep, over the limit of 64 " \
                                   "(GENESIS_YAML_MAX_DEPTH)"


def test_the_depth_limit_itself_is_allowed():
    data = load_yaml(deep_block_yaml(64), filename="doc.yaml")
    for _level in range(64):
        (data,) = data
    assert data == 1
    assert _refused(deep_block_yaml(65)).figure == 65


def test_depth_reached_through_aliases_counts(settings):
    settings.GENESIS_YAML_MAX_DEPTH = 8
    # Each line is 4 levels as written, but c holds b, which holds a: 10 levels once followed.
    error = _refused("a: &a [[[1]]]\nb: &b [[[*a]]]\nc: &c [[[*b]]]\n")
    assert (error.setting, error.figure) == ("GENESIS_YAML_MAX_DEPTH", 10)
    assert error.problems[0][0] == "line 3, column 10"


@pytest.mark.parametrize("text", ["&a [*a]", "a: &a {b: [1, *a]}"])
def test_a_document_that_contains_itself_is_refused(text):
    error = _refused(text)
    assert "is inside the node it names (a recursive document)" in error.problems[0][1]


def test_a_file_over_the_byte_limit_is_refused_before_it_is_parsed(settings):
    settings.GENESIS_YAML_MAX_BYTES = 100
    assert load_yaml("a: " + "é" * 48, filename="doc.yaml") == {"a": "é" * 48}  # 99 bytes
    for text in ("a: " + "é" * 50, ("a: " + "é" * 50).encode()):  # 53 characters, 103 bytes
        error = _refused(text)
        assert (error.setting, error.limit, error.figure) == ("GENESIS_YAML_MAX_BYTES", 100, 103)
        assert error.problems == [("(file)", "the file is 103 bytes, over the limit of 100 (GENESIS_YAML_MAX_BYTES)")]
    assert _refused("[" * 101).setting == "GENESIS_YAML_MAX_BYTES"  # not read: its syntax is never looked at


# --- YAML: what used to escape as another exception (a 500) -----------------------------------------------------

def test_a_number_longer_than_python_converts_is_a_named_error():
    error = _refused("a: " + "1" * 5000)
    assert error.problems[0][0] == "line 1, column 4"
    assert error.problems[0][1].startswith("not valid YAML: not a usable whole number (Exceeds the limit")


def test_a_set_as_a_key_is_refused_not_a_type_error():
    error = _refused("? !!set {a: null}\n: 1\n")
    assert error.problems[0][1].startswith("not valid YAML: found unhashable key")


# --- JSON -------------------------------------------------------------------------------------------------------

def test_json_nested_past_the_limit_is_refused_before_decoding():
    with pytest.raises(JSONTooDeep) as caught:
        loads_json(deep_json(5_000))
    error = caught.value
    assert isinstance(error, json.JSONDecodeError)  # every "not valid JSON" answer covers it
    assert (error.limit, error.pos) == (64, 69)  # the object and 63 lists are the first 64 levels
    assert str(error) == "lists and objects nested more than 64 levels deep (GENESIS_JSON_MAX_DEPTH): line 1 " \
                         "column 70 (char 69)"


def test_json_at_the_limit_and_brackets_inside_strings_are_fine():
    assert loads_json("[" * 64 + "]" * 64) is not None
    text = json.dumps({"a": "[" * 1000, "b": ['{"\\' * 300, {"c": "]" * 10}]})
    assert loads_json(text) == json.loads(text)
    with pytest.raises(JSONTooDeep):
        json.loads("[" * 65 + "]" * 65, cls=LimitedJSONDecoder)  # as Django's and DRF's JSON fields use it


# --- schema problems --------------------------------------------------------------------------------------------

def test_schema_problems_come_in_document_order_whatever_the_keys():
    schema = {"type": "object", "additionalProperties": False, "properties": {
        "items": {"type": "array", "items": {"type": "string"}}}}
    # YAML can make keys that are not text (null, numbers): they are named, not a TypeError while sorting.
    instance = {"items": ["a"] * 2 + [1] * 9, None: 1, 2.5: 0, "zed": 0}
    problems = schema_problems(schema, instance)
    assert [path for path, _message in problems] == [
        [2.5], [None], ["items", 2], ["items", 3], ["items", 4], ["items", 5], ["items", 6], ["items", 7],
        ["items", 8], ["items", 9], ["items", 10], ["zed"]]
    assert problems[2][1] == "wrong type: expected string, got integer"


def test_a_file_format_may_reword_schema_problems():
    class Terse(SchemaWording):
        def wrong_type(self, expected, value):
            return f"not {expected}"

    schema = {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "string"}}}
    assert schema_problems(schema, {"a": 1}, wording=Terse()) == [(["a"], "not string"),
                                                                  (["b"], "required key is missing")]
