"""Documents read from users: the one strict YAML loader, JSON with a nesting limit, and schema problems with
their paths.

Blueprint files (blueprints/validation.py) and spec files (pipeline/specfile.py) are both read by ``load_yaml``:
safe YAML that refuses duplicate keys and keeps dates as text (both formats are JSON-shaped), and that refuses,
naming the file, the limit and the figure, a document that would hold a worker:

1. more than ``GENESIS_YAML_MAX_BYTES`` of text (checked before parsing);
2. more than ``GENESIS_YAML_MAX_ALIASES`` aliases (``*name``);
3. lists and mappings nested more than ``GENESIS_YAML_MAX_DEPTH`` levels deep, aliases followed;
4. more than ``GENESIS_YAML_MAX_NODES`` nodes once every alias is followed.

The last three are counted while the document is composed, each alias adding the size and height of the node it
names, which are known when that node is finished: nothing is expanded to be counted. A "billion laughs" file
(ten lists, each naming the one before ten times) is refused in milliseconds, before its last lines are read, and
a recursive walk of the data (schema validation, placeholders, JSON encoding) never meets more than the limits
allow.

JSON from requests and forms is decoded with ``LimitedJSONDecoder``: text nested more than
``GENESIS_JSON_MAX_DEPTH`` levels deep raises ``JSONTooDeep``, found by a scan of the text before the (recursive)
decoder starts. It is a ``json.JSONDecodeError``, so every existing "not valid JSON" answer covers it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from django.conf import settings
from jsonschema import Draft202012Validator, ValidationError
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent

from genesis.exceptions import DomainError

Path = list[str | int]


# --- YAML -----------------------------------------------------------------------------------------------------


class DocumentInvalid(DomainError):
    """A document the loader refused; ``problems`` lists ``(where, message)``, ``where`` a line or ``(file)``."""

    def __init__(self, filename: str, problems: list[tuple[str, str]]):
        self.filename = filename
        self.problems = problems
        super().__init__(f"{filename}: " + "; ".join(f"{where}: {message}" for where, message in problems),
                         field="file", code="invalid_document")


class DocumentTooLarge(DocumentInvalid):
    """A document past one of the loader's limits: ``setting`` names it, ``limit`` is its value and ``figure`` what
    the document has (for aliases, nodes and depth: where counting stopped, at the first step past the limit)."""

    def __init__(self, filename: str, where: str, *, setting: str, limit: int, figure: int, what: str):
        self.setting, self.limit, self.figure = setting, limit, figure
        super().__init__(filename, [(where, f"{what}, over the limit of {limit:,} ({setting})")])


def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys, keeps dates as text and counts what it composes (see the module)."""

    def __init__(self, stream, filename: str):
        super().__init__(stream)
        self.filename = filename
        self.duplicate_keys: list[tuple[int, str]] = []
        self.aliases = 0
        self.nodes = 0
        # For each list or mapping being composed, the deepest level reached inside it so far; for each finished
        # node, its size (nodes, aliases followed) and height (levels of lists and mappings): what an alias adds.
        self.open: list[int] = []
        self.sizes: dict[yaml.Node, int] = {}
        self.heights: dict[yaml.Node, int] = {}

    def _refuse(self, mark, **limit):
        raise DocumentTooLarge(self.filename, _where(mark), **limit)

    def _reach(self, level: int, mark) -> None:
        if level > settings.GENESIS_YAML_MAX_DEPTH:
            self._refuse(mark, setting="GENESIS_YAML_MAX_DEPTH", limit=settings.GENESIS_YAML_MAX_DEPTH, figure=level,
                         what=f"lists and mappings nested {level:,} levels deep")
        if self.open and level > self.open[-1]:
            self.open[-1] = level

    def _count(self, nodes: int, mark) -> None:
        self.nodes += nodes
        if self.nodes > settings.GENESIS_YAML_MAX_NODES:
            self._refuse(mark, setting="GENESIS_YAML_MAX_NODES", limit=settings.GENESIS_YAML_MAX_NODES,
                         figure=self.nodes,
                         what=f"{self.nodes:,} nodes by here once aliases are followed")

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is the composer's own error
                self.aliases += 1
                if self.aliases > settings.GENESIS_YAML_MAX_ALIASES:
                    self._refuse(event.start_mark, setting="GENESIS_YAML_MAX_ALIASES",
                                 limit=settings.GENESIS_YAML_MAX_ALIASES, figure=self.aliases,
                                 what=f"{self.aliases:,} aliases (*name) by here")
                if target not in self.sizes:
                    raise yaml.composer.ComposerError(
                        None, None, f"the alias *{event.anchor} is inside the node it names (a recursive document)",
                        event.start_mark)
                self._reach(len(self.open) + self.heights[target], event.start_mark)
                self._count(self.sizes[target], event.start_mark)
            return super().compose_node(parent, index)
        nodes_before = self.nodes
        self._count(1, event.start_mark)
        if not isinstance(event, SequenceStartEvent | MappingStartEvent):
            node = super().compose_node(parent, index)
            self.sizes[node], self.heights[node] = 1, 0
            return node
        level = len(self.open) + 1
        self._reach(level, event.start_mark)
        self.open.append(level)
        node = super().compose_node(parent, index)
        deepest = self.open.pop()
        if self.open and deepest > self.open[-1]:
            self.open[-1] = deepest
        self.sizes[node], self.heights[node] = self.nodes - nodes_before, deepest - level + 1
        return node

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # a list, mapping or set as a key: not JSON-shaped, and refused by every schema
                continue
            if first is None:
                seen[key] = line
            else:
                self.duplicate_keys.append((line, f"duplicate key {key!r} in one mapping (first on line {first})"))
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError as error:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise yaml.constructor.ConstructorError(None, None, f"not a usable whole number ({error})",
                                                    node.start_mark) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str | bytes, *, filename: str) -> Any:
    """One YAML document, read strictly (see the module). Raises ``DocumentInvalid`` with every duplicate key or
    the first syntax error by line, or ``DocumentTooLarge`` naming the limit passed."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > settings.GENESIS_YAML_MAX_BYTES:
        raise DocumentTooLarge(filename, "(file)", setting="GENESIS_YAML_MAX_BYTES",
                               limit=settings.GENESIS_YAML_MAX_BYTES, figure=size, what=f"the file is {size:,} bytes")
    try:
        # The reader checks the characters as it is built, so building it belongs inside the try too.
        loader = _StrictLoader(text, filename)
    except yaml.YAMLError as error:
        raise DocumentInvalid(filename, [("(file)", f"not valid YAML: {error}")]) from None
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        raise DocumentInvalid(filename, [(_where(error.problem_mark), f"not valid YAML: {error.problem}")]) from None
    except yaml.YAMLError as error:
        raise DocumentInvalid(filename, [("(file)", f"not valid YAML: {error}")]) from None
    finally:
        loader.dispose()
    if loader.duplicate_keys:
        raise DocumentInvalid(filename, [(f"line {line}", message) for line, message in sorted(loader.duplicate_keys)])
    return data


# --- JSON -----------------------------------------------------------------------------------------------------

# A string (skipped whole, escapes included; an unterminated one runs to the end) or a bracket.
_JSON_PIECE = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')
_OPENING, _CLOSING = frozenset("[{"), frozenset("]}")


class JSONTooDeep(json.JSONDecodeError):
    """JSON whose lists and objects nest more than ``GENESIS_JSON_MAX_DEPTH`` levels deep; ``pos`` is where."""

    def __init__(self, doc: str, pos: int, limit: int):
        self.limit = limit
        super().__init__(f"lists and objects nested more than {limit:,} levels deep (GENESIS_JSON_MAX_DEPTH)",
                         doc, pos)


def check_json_depth(text: str) -> None:
    """Raise ``JSONTooDeep`` if the JSON text nests deeper than the limit. Linear in the text, never recursive."""
    limit = settings.GENESIS_JSON_MAX_DEPTH
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    for match in _JSON_PIECE.finditer(text):
        piece = match.group()
        if piece in _OPENING:
            depth += 1
            if depth > limit:
                raise JSONTooDeep(text, match.start(), limit)
        elif piece in _CLOSING:
            depth -= 1


class LimitedJSONDecoder(json.JSONDecoder):
    """``json.JSONDecoder`` that refuses text nested deeper than ``GENESIS_JSON_MAX_DEPTH`` before decoding it
    (give it as ``cls=`` or ``decoder=``, as Django's and DRF's JSON fields take one)."""

    def decode(self, s, *args, **kwargs):
        check_json_depth(s)
        return super().decode(s, *args, **kwargs)


def loads_json(text: str | bytes, **kwargs) -> Any:
    """``json.loads`` with the nesting limit: ``JSONTooDeep`` (a ``ValueError``) when nested too deep."""
    return json.loads(text, cls=LimitedJSONDecoder, **kwargs)


# --- schema problems and their paths --------------------------------------------------------------------------


def format_path(path: Path, *, top: str = "(top level)") -> str:
    """``["phases", 2, "actions", 0]`` as ``phases[2].actions[0]``; the empty path as ``top``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or top


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
               type(None): "null"}


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


class SchemaWording:
    """The words ``schema_problems`` gives each kind of problem. A file format that has always put some of them its
    own way (spec files, pipeline/specfile.py) overrides those methods; the walk, paths and order stay one."""

    def unknown_keys(self, path: Path, unknown: list, allowed: list[str]) -> list[tuple[Path, str]]:
        return [(path + [key], f"unknown key (allowed here: {', '.join(allowed)})") for key in unknown]

    def missing_keys(self, path: Path, missing: list[str]) -> list[tuple[Path, str]]:
        return [(path + [key], "required key is missing") for key in missing]

    def wrong_type(self, expected: str | list[str], value: Any) -> str:
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return f"wrong type: expected {wanted}, got {json_type(value)}"

    def not_allowed(self, value: Any, choices: list) -> str:
        return f"{value!r} is not allowed; choose one of: {', '.join(map(str, choices))}"

    def wrong_form(self, value: Any, pattern: str) -> str:
        return f"{value!r} has the wrong form (expected {pattern})"

    def other(self, error: ValidationError) -> str:
        if error.validator == "minItems" and error.validator_value == 1:
            return "must not be empty"
        if error.validator == "anyOf" and all(set(sub) == {"required"} for sub in error.validator_value):
            options = [" and ".join(sub["required"]) for sub in error.validator_value]
            return f"needs at least one of: {', '.join(options)}"
        return error.message


def _document_order(path: Path) -> list[tuple[int, Any]]:
    """List items in order, keys alphabetically (a key that is not text, e.g. YAML's ``null:``, by its text)."""
    return [(0, part) if isinstance(part, int) else (1, str(part)) for part in path]


def schema_problems(schema: dict[str, Any], instance: Any, *,
                    wording: SchemaWording | None = None) -> list[tuple[Path, str]]:
    """Every way ``instance`` breaks ``schema``, as (path, readable message), in document order, each once."""
    wording = wording or SchemaWording()
    problems: list[tuple[Path, str]] = []
    for error in Draft202012Validator(schema).iter_errors(instance):
        path: Path = list(error.absolute_path)
        validator, expected = error.validator, error.validator_value
        if validator == "additionalProperties":
            known = error.schema.get("properties", {})
            problems += wording.unknown_keys(path, [key for key in error.instance if key not in known], sorted(known))
        elif validator == "required":
            problems += wording.missing_keys(path, [key for key in expected if key not in error.instance])
        elif validator == "type":
            problems.append((path, wording.wrong_type(expected, error.instance)))
        elif validator == "enum":
            problems.append((path, wording.not_allowed(error.instance, expected)))
        elif validator == "pattern":
            problems.append((path, wording.wrong_form(error.instance, expected)))
        else:
            problems.append((path, wording.other(error)))
    unique = list({(tuple(path), message): (path, message) for path, message in problems}.values())
    return sorted(unique, key=lambda item: _document_order(item[0]))
