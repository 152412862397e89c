"""Fuzzing the parsers of genesis/documents.py and genesis/api/parsers.py with hypothesis: random nested YAML with
anchors and aliases (some undefined, some naming a node that holds them), random JSON wrapped in random nesting, and
random bytes. Each parser returns data within its limits or raises its own named error, never RecursionError nor
anything else, within a bounded time per example. The limits are set small so that both sides of each are met."""

import io
import json

from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError

from genesis.api.parsers import JSONParser
from genesis.documents import DocumentInvalid, DocumentTooLarge, JSONTooDeep, load_yaml, loads_json

LIMITS = {"GENESIS_YAML_MAX_BYTES": 4_000, "GENESIS_YAML_MAX_ALIASES": 8, "GENESIS_YAML_MAX_DEPTH": 6,
          "GENESIS_YAML_MAX_NODES": 60, "GENESIS_JSON_MAX_DEPTH": 12}
FUZZ = hypothesis_settings(max_examples=150, deadline=1_000, database=None,
                           suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=12))


# --- YAML -----------------------------------------------------------------------------------------------------

# A document as a tree: scalars, aliases (*aN, by number: defined, undefined or naming an open node), lists,
# mappings, and anchors (&aN) put on any node.
_LEAF = st.one_of(SCALARS.map(lambda value: ("scalar", value)), st.integers(0, 12).map(lambda n: ("alias", n)))
TREES = st.recursive(_LEAF, lambda children: st.one_of(
    st.lists(children, max_size=5).map(lambda items: ("list", items)),
    st.lists(st.tuples(st.text(max_size=6), children), max_size=5).map(lambda pairs: ("map", pairs)),
    children.map(lambda child: ("anchor", child)),
), max_leaves=40)


def render(node, anchors: list[int]) -> str:
    """The tree as flow-style YAML (JSON scalars are YAML scalars); anchors are numbered in document order."""
    kind, value = node
    if kind == "scalar":
        return json.dumps(value)
    if kind == "alias":
        return f"*a{value}"
    if kind == "anchor":
        anchors.append(len(anchors))
        return f"&a{anchors[-1]} {render(value, anchors)}"
    if kind == "list":
        return "[" + ", ".join(render(item, anchors) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(key)}: {render(item, anchors)}" for key, item in value) + "}"


def size_and_depth(value, enclosing: int = 0) -> tuple[int, int]:
    """Nodes (keys included) and levels of lists and mappings of loaded data, every shared part counted again."""
    if isinstance(value, list | dict):
        children = [item for pair in value.items() for item in pair] if isinstance(value, dict) else value
        measured = [size_and_depth(child, enclosing + 1) for child in children]
        return 1 + sum(nodes for nodes, _ in measured), max([enclosing + 1] + [depth for _, depth in measured])
    return 1, 0


def _load_within_limits(text):
    with override_settings(**LIMITS):
        try:
            data = load_yaml(text, filename="fuzz.yaml")
        except DocumentTooLarge as error:
            assert error.figure > error.limit and error.setting in LIMITS
            return None
        except DocumentInvalid:
            return None
    nodes, depth = size_and_depth(data)
    assert nodes <= LIMITS["GENESIS_YAML_MAX_NODES"] and depth <= LIMITS["GENESIS_YAML_MAX_DEPTH"]
    return data


@FUZZ
@given(tree=TREES)
def test_yaml_with_anchors_and_aliases_is_data_within_the_limits_or_a_named_refusal(tree):
    _load_within_limits(render(tree, []))


# JSON-shaped values that YAML reads as JSON does, written as JSON with its characters as they are: YAML 1.1 reads
# "1e5" as text, refuses control and unassigned characters, takes U+2028 for a line break, and reads "\ud800\udc00"
# as two characters.
_TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs", "Cn", "Zl", "Zp")), max_size=12)
_PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _TEXT),
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(_TEXT, children, max_size=5)),
    max_leaves=40)


@FUZZ
@given(value=_PLAIN, extra=st.integers(0, 8))
def test_yaml_without_aliases_reads_back_as_written_when_within_the_limits(value, extra):
    data = {"wrapped": json.loads("[" * extra + json.dumps(value) + "]" * extra)}
    text = json.dumps(data, ensure_ascii=False)
    loaded = _load_within_limits(text)
    nodes, depth = size_and_depth(data)
    if nodes <= LIMITS["GENESIS_YAML_MAX_NODES"] and depth <= LIMITS["GENESIS_YAML_MAX_DEPTH"] \
            and len(text.encode()) <= LIMITS["GENESIS_YAML_MAX_BYTES"]:
        assert loaded == data
    else:
        assert loaded is None


@FUZZ
@given(raw=st.one_of(st.binary(max_size=400), st.text(max_size=400),
                     st.text(alphabet="[]{}&*!|>-?:,#'\"\\\n a0", max_size=400)))
def test_random_bytes_and_text_are_data_or_a_named_refusal(raw):
    _load_within_limits(raw)


# --- JSON -----------------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)), max_leaves=30)


@hypothesis_settings(max_examples=200, deadline=500, database=None)
@given(value=JSON_VALUES, extra=st.integers(0, 30))
def test_json_is_read_back_within_the_depth_limit_and_refused_past_it(value, extra):
    text = "[" * extra + json.dumps(value) + "]" * extra
    depth = size_and_depth(json.loads(text))[1]
    with override_settings(**LIMITS):
        try:
            loaded = loads_json(text)
        except JSONTooDeep as error:
            assert depth > error.limit == LIMITS["GENESIS_JSON_MAX_DEPTH"]
            return
    assert depth <= LIMITS["GENESIS_JSON_MAX_DEPTH"] and loaded == json.loads(text)


@hypothesis_settings(max_examples=200, deadline=500, database=None)
@given(raw=st.one_of(st.binary(max_size=400), st.text(alphabet='[]{}",:\\ 0tfn', max_size=400)))
def test_random_json_bodies_are_data_or_a_parse_error(raw):
    body = raw.encode() if isinstance(raw, str) else raw
    with override_settings(**LIMITS):
        try:
            JSONParser().parse(io.BytesIO(body), "application/json", {})
        except ParseError as error:
            assert error.get_codes() in ("parse_error", "too_deep")
        try:
            loads_json(raw)
        except ValueError:  # JSONDecodeError, JSONTooDeep, or bytes that are not text
            pass
