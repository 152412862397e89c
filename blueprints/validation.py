"""Reading and validating a blueprint file: every problem is reported with the file, the path inside it
(``phases[2].actions[0].depends_on[1]``) and what is wrong; nothing is stored unless there are none.

Structure (unknown keys, types, required keys) is checked with a JSON schema (``jsonschema``); meaning
(agent kinds, check types and their params, action keys, dependencies and cycles, parameters) in Python.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from agents import registry
from blueprints.checks import check_types
from blueprints.choices import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_SECONDS, ROLE_OWNERS, ParamType
from genesis.documents import DocumentInvalid, Path, format_path, json_type, load_yaml, schema_problems
from genesis.exceptions import DomainError
from genesis.graphs import loops

# --- the file format ------------------------------------------------------------------------------------

_SLUG = r"^[a-z0-9][a-z0-9_-]*$"
REQUIREMENTS = ["spec_file"]
FOR_EACH = ["target"]
# Placeholders a launch fills from the spec file (when the blueprint requires one), besides the parameters:
# ``targets`` (the target names), ``target_count``, ``source_tables`` (the spec's allowed tables); and, in a
# ``for_each: target`` action, ``target``.
SPEC_PLACEHOLDERS = {"targets": ["SAMPLE"], "target_count": 1, "source_tables": ["SAMPLE"]}
EACH_PLACEHOLDERS = {"target": "SAMPLE"}
_CHECK = {
    "type": "object", "additionalProperties": False, "required": ["type"],
    "properties": {
        "type": {"type": "string", "minLength": 1},
        "params": {"type": "object"},
        "description": {"type": "string", "maxLength": 300},
    },
}
# A task's acceptance criterion or a mission's success criterion: a statement (text) or a check.
_STATEMENT_OR_CHECK = {"if": {"type": "object"}, "then": _CHECK, "else": {"type": "string", "minLength": 1}}
_PARAMETER = {
    "type": "object", "additionalProperties": False, "required": ["name", "type"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$", "maxLength": 64},
        "type": {"enum": ParamType.values},
        "default": {},
        "help": {"type": "string"},
        "required": {"type": "boolean"},
        "purpose": {"enum": ["source", "target", "validation"]},
    },
}
_ACTION = {
    "type": "object", "additionalProperties": False, "required": ["key", "title", "owner"],
    "properties": {
        "key": {"type": "string", "pattern": _SLUG, "maxLength": 64},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string"},
        "owner": {"type": "string", "minLength": 1},
        "depends_on": {"type": "array", "items": {"type": "string"}},
        "acceptance_criteria": {"type": "array", "items": _STATEMENT_OR_CHECK},
        "config": {"type": "object"},
        "timeout": {"type": "integer", "minimum": 1, "description": "seconds"},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
        # One task per target of the mission's spec file, keyed ``<key>_<target>``; ``{{ target }}`` is its name.
        "for_each": {"enum": FOR_EACH},
    },
}
_PHASE = {
    "type": "object", "additionalProperties": False, "required": ["name", "actions"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string"},
        "actions": {"type": "array", "items": _ACTION, "minItems": 1},
        "exit_criteria": {"type": "array", "items": _CHECK},
    },
}
BLUEPRINT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False, "required": ["slug", "name", "phases"],
    "properties": {
        "slug": {"type": "string", "pattern": _SLUG, "maxLength": 100},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "version": {"type": "integer", "minimum": 1},
        "description": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "parameters": {"type": "array", "items": _PARAMETER},
        # What a launch must bring besides parameters: ``spec_file`` when the steps read the targets from it.
        "requires": {"type": "array", "uniqueItems": True, "items": {"enum": REQUIREMENTS}},
        "objective": {"type": "string"},
        "scope": {"type": "string"},
        "success_criteria": {"type": "array", "items": _STATEMENT_OR_CHECK},
        "phases": {"type": "array", "items": _PHASE, "minItems": 1},
    },
}
Draft202012Validator.check_schema(BLUEPRINT_SCHEMA)


# --- errors ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlueprintError:
    """One problem in a blueprint file: where (a path like ``phases[0].actions[1].owner``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class BlueprintInvalid(DomainError):
    """A refused blueprint file, with every problem found in it."""

    def __init__(self, filename: str, errors: list[BlueprintError]):
        self.filename = filename
        self.errors = errors
        super().__init__(
            f"{filename}: {len(errors)} problem(s):\n" + "\n".join(f"{filename}: {e}" for e in errors),
            field="file", code="invalid_blueprint",
        )

    def lines(self) -> list[str]:
        return [f"{self.filename}: {error}" for error in self.errors]


# --- YAML -----------------------------------------------------------------------------------------------


def parse_yaml(text: str, filename: str) -> Any:
    """The file's data, read by the one strict loader (genesis/documents.py: duplicate keys, dates kept as text,
    and the size, alias, depth and node limits), with text the database cannot store refused by path."""
    try:
        data = load_yaml(text, filename=filename)
    except DocumentInvalid as error:
        raise BlueprintInvalid(filename, [BlueprintError(where, message) for where, message in error.problems]) \
            from None
    unstorable = list(_unstorable_text(data, ""))
    if unstorable:
        raise BlueprintInvalid(filename, unstorable)
    return data


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_text(value: Any, path: str):
    """Text the database (and any JSON answer) cannot hold, which YAML's escapes can make: "\\0" is a NUL character,
    "\\ud800" a lone surrogate. Named by path; the text itself is not repeated."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            yield BlueprintError(path or "(top level)", "contains a NUL character or a lone surrogate (U+D800 to "
                                                        "U+DFFF), which cannot be stored")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _UNSTORABLE.search(key):
                yield BlueprintError(path or "(top level)", "a key contains a NUL character or a lone surrogate "
                                                            "(U+D800 to U+DFFF), which cannot be stored")
                continue
            yield from _unstorable_text(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_text(item, f"{path}[{index}]")


# --- parameters and placeholders ------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SAMPLES = {
    ParamType.STRING: "sample", ParamType.TEXT: "sample", ParamType.INTEGER: 1, ParamType.NUMBER: 1.0,
    ParamType.BOOLEAN: True, ParamType.LIST: ["sample"], ParamType.CONNECTION: "sample",
}


def placeholders_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, list):
        return set().union(*(placeholders_in(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(placeholders_in(v) for v in value.values())) if value else set()
    return set()


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_as_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(value: Any, values: dict[str, Any]) -> Any:
    """Put parameter values into ``{{ name }}`` placeholders, in strings, lists and dicts.

    A string that is exactly one placeholder takes the value itself (a list stays a list, a number a
    number); inside longer text the value is written out.
    """
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole and whole.group(1) in values:
            return copy.deepcopy(values[whole.group(1)])
        return PLACEHOLDER.sub(
            lambda m: _as_text(values[m.group(1)]) if m.group(1) in values else m.group(0), value
        )
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    return value


def value_fits(param_type: str, value: Any) -> bool:
    checks = {
        ParamType.STRING: lambda v: isinstance(v, str),
        ParamType.TEXT: lambda v: isinstance(v, str),
        ParamType.CONNECTION: lambda v: isinstance(v, str) and bool(v),
        ParamType.INTEGER: lambda v: isinstance(v, int) and not isinstance(v, bool),
        ParamType.NUMBER: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        ParamType.BOOLEAN: lambda v: isinstance(v, bool),
        ParamType.LIST: lambda v: isinstance(v, list) and all(isinstance(i, str | int | float) for i in v),
    }
    return checks[param_type](value)


# --- normal form ----------------------------------------------------------------------------------------


def _criterion(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out = {"type": item["type"], "params": dict(item.get("params") or {})}
    if item.get("description"):
        out["description"] = item["description"]
    return out


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """The blueprint with every default spelled out: what is stored, hashed and compared in a round trip."""
    parameters = []
    for p in data.get("parameters") or []:
        param = {"name": p["name"], "type": p["type"], "help": p.get("help", ""),
                 "required": p.get("required", "default" not in p)}
        if "default" in p:
            param["default"] = p["default"]
        if p.get("purpose"):
            param["purpose"] = p["purpose"]
        parameters.append(param)
    phases = []
    for phase in data["phases"]:
        actions = [
            {
                "key": a["key"], "title": a["title"], "description": a.get("description", ""),
                "owner": a["owner"], "depends_on": list(a.get("depends_on") or []),
                "acceptance_criteria": [_criterion(c) for c in a.get("acceptance_criteria") or []],
                "config": dict(a.get("config") or {}),
                "timeout": a.get("timeout", DEFAULT_TIMEOUT_SECONDS),
                "max_attempts": a.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
                **({"for_each": a["for_each"]} if a.get("for_each") else {}),
            }
            for a in phase["actions"]
        ]
        phases.append({
            "name": phase["name"], "description": phase.get("description", ""), "actions": actions,
            "exit_criteria": [_criterion(c) for c in phase.get("exit_criteria") or []],
        })
    out = {
        "slug": data["slug"], "name": data["name"], "description": data.get("description", ""),
        "tags": list(data.get("tags") or []), "parameters": parameters, "objective": data.get("objective", ""),
        "scope": data.get("scope", ""),
        "success_criteria": [_criterion(c) for c in data.get("success_criteria") or []],
        "phases": phases,
    }
    if data.get("requires"):
        out["requires"] = list(data["requires"])
    if data.get("version") is not None:
        out["version"] = data["version"]
    return out


# --- meaning --------------------------------------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.errors: list[BlueprintError] = []

    def add(self, path: Path, message: str) -> None:
        self.errors.append(BlueprintError(format_path(path), message))


def _items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


def _check_placeholders(value: Any, path: Path, declared: set[str], out: _Collector) -> None:
    if isinstance(value, str):
        for name in PLACEHOLDER.findall(value):
            if name not in declared:
                out.add(path, f"unknown parameter {name!r} in {{{{ {name} }}}} (declared: "
                              f"{', '.join(sorted(declared)) or 'none'})")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_placeholders(v, path + [i], declared, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_placeholders(v, path + [k], declared, out)


def _check_criterion(criterion: Any, path: Path, samples: dict[str, Any], keys: set[str], out: _Collector,
                     *, own_key: str | None = None) -> None:
    if not isinstance(criterion, dict) or not isinstance(criterion.get("type"), str):
        return
    known = check_types()
    cls = known.get(criterion["type"])
    if cls is None:
        out.add(path + ["type"], f"unknown check type {criterion['type']!r} (known: {', '.join(known)})")
        return
    params = criterion.get("params") or {}
    if not isinstance(params, dict):
        return
    params = substitute(params, samples)
    if own_key and "task" in cls.task_params and "task" not in params:
        params = {**params, "task": own_key}  # an acceptance check is about its own task unless told
    for sub_path, message in schema_problems(cls.params_schema, params):
        out.add(path + ["params"] + sub_path, message)
    for name in cls.task_params:
        raw = (criterion.get("params") or {}).get(name)
        for i, key in ([(None, raw)] if isinstance(raw, str) else _items(raw)):
            if isinstance(key, str) and not PLACEHOLDER.search(key) and key not in keys:
                where = path + ["params", name] + ([] if i is None else [i])
                out.add(where, f"no action has key {key!r}")


def _actions(data: dict[str, Any]):
    """Every (phase index, action index, action) of the document that is a mapping."""
    for p, phase in _items(data.get("phases")):
        if isinstance(phase, dict):
            for a, action in _items(phase.get("actions")):
                if isinstance(action, dict):
                    yield p, a, action


def _check_parameters(data: dict[str, Any], out: _Collector) -> dict[str, Any]:
    """Unique names, defaults of the declared type, purposes only on connections; returns a sample value for each
    parameter, to check the criteria with their placeholders filled in."""
    declared: dict[str, dict[str, Any]] = {}
    for i, param in _items(data.get("parameters")):
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            continue
        name = param["name"]
        if name in declared:
            out.add(["parameters", i, "name"], f"duplicate parameter {name!r}")
            continue
        declared[name] = param
        ptype = param.get("type")
        if "default" in param and ptype in ParamType.values and param["default"] is not None \
                and not value_fits(ptype, param["default"]):
            out.add(["parameters", i, "default"],
                    f"wrong type: parameter {name!r} is a {ptype}, the default is a {json_type(param['default'])}")
        if param.get("purpose") and ptype != ParamType.CONNECTION:
            out.add(["parameters", i, "purpose"], "only a connection parameter has a purpose")
    requires_spec = "spec_file" in (data.get("requires") or [])
    reserved = {**SPEC_PLACEHOLDERS, **EACH_PLACEHOLDERS}
    for name in sorted(set(declared) & set(reserved) if requires_spec else ()):
        index = next(i for i, p in _items(data.get("parameters")) if isinstance(p, dict) and p.get("name") == name)
        out.add(["parameters", index, "name"], f"{name!r} is filled from the spec file at launch; name the "
                                               "parameter otherwise")
    known = set(declared) | (set(SPEC_PLACEHOLDERS) if requires_spec else set())
    body = {k: v for k, v in data.items() if k not in ("parameters", "phases")}
    _check_placeholders(body, [], known, out)
    for p, phase in _items(data.get("phases")):
        if not isinstance(phase, dict):
            continue
        for key, value in phase.items():
            if key != "actions":
                _check_placeholders(value, ["phases", p, key], known, out)
        for a, action in _items(phase.get("actions")):
            each = isinstance(action, dict) and bool(action.get("for_each"))
            _check_placeholders(action, ["phases", p, "actions", a],
                                known | (set(EACH_PLACEHOLDERS) if each else set()), out)
            if each and not requires_spec:
                out.add(["phases", p, "actions", a, "for_each"],
                        "a for_each: target action needs the spec file: add 'requires: [spec_file]'")
    samples = {
        name: p["default"] if p.get("type") in ParamType.values and p.get("default") is not None
        and value_fits(p["type"], p["default"]) else _SAMPLES.get(p.get("type"), "sample")
        for name, p in declared.items()
    }
    return {**samples, **SPEC_PLACEHOLDERS, **EACH_PLACEHOLDERS} if requires_spec else samples


def _check_actions(data: dict[str, Any], out: _Collector) -> dict[str, tuple[int, Path]]:
    """Unique keys and known owners; returns each key's phase index and the path of its key."""
    where: dict[str, tuple[int, Path]] = {}
    roles_and_kinds = None
    for p, a, action in _actions(data):
        path: Path = ["phases", p, "actions", a]
        key = action.get("key")
        if isinstance(key, str):
            if key in where:
                out.add(path + ["key"], f"duplicate action key {key!r} (first at {format_path(where[key][1])})")
            else:
                where[key] = (p, path + ["key"])
        owner = action.get("owner")
        if isinstance(owner, str) and owner not in ROLE_OWNERS and not registry.is_registered(owner):
            roles_and_kinds = roles_and_kinds or ", ".join(sorted(registry.kinds()))
            out.add(path + ["owner"], f"unknown agent kind {owner!r} (agent kinds: {roles_and_kinds}; "
                                      f"roles: {', '.join(sorted(ROLE_OWNERS))})")
    return where


def _dependency_problem(data: dict[str, Any], where: dict[str, tuple[int, Path]], key: str, dep: str,
                        p: int) -> str | None:
    if dep == key:
        return "an action cannot depend on itself"
    if dep not in where:
        return f"depends on {dep!r}, which is no action of this blueprint"
    if where[dep][0] > p:
        later = data["phases"][where[dep][0]]
        return (f"depends on {dep!r} of a later phase ({later.get('name')!r}); an action may only wait for actions "
                "of its own or earlier phases")
    return None


def _check_dependencies(data: dict[str, Any], where: dict[str, tuple[int, Path]], out: _Collector) -> None:
    """Each dependency names an earlier-or-same-phase action once, and none closes a loop."""
    edges: dict[str, list[str]] = {key: [] for key in where}
    dep_paths: dict[tuple[str, str], Path] = {}
    for p, a, action in _actions(data):
        key = action.get("key")
        if not isinstance(key, str):
            continue
        listed: set[str] = set()
        for d, dep in _items(action.get("depends_on")):
            path = ["phases", p, "actions", a, "depends_on", d]
            if not isinstance(dep, str):
                continue
            if dep in listed:
                out.add(path, f"{dep!r} is listed twice")
                continue
            listed.add(dep)
            problem = _dependency_problem(data, where, key, dep, p)
            if problem:
                out.add(path, problem)
            elif where.get(key, (None, path))[1] == ["phases", p, "actions", a, "key"]:
                edges[key].append(dep)
                dep_paths[(key, dep)] = path
    for loop in loops(edges):
        out.add(dep_paths[(loop[-2], loop[0])], f"dependency cycle: {' → '.join(loop)}")


def _check_criteria(data: dict[str, Any], samples: dict[str, Any], keys: set[str], out: _Collector) -> None:
    for p, phase in _items(data.get("phases")):
        if isinstance(phase, dict):
            for c, criterion in _items(phase.get("exit_criteria")):
                _check_criterion(criterion, ["phases", p, "exit_criteria", c], samples, keys, out)
    for p, a, action in _actions(data):
        own_key = action.get("key") if isinstance(action.get("key"), str) else None
        for c, criterion in _items(action.get("acceptance_criteria")):
            _check_criterion(criterion, ["phases", p, "actions", a, "acceptance_criteria", c], samples, keys, out,
                             own_key=own_key)
    for c, criterion in _items(data.get("success_criteria")):
        _check_criterion(criterion, ["success_criteria", c], samples, keys, out)


def _semantic_errors(data: dict[str, Any], out: _Collector) -> None:
    """What the schema cannot say: parameters, action keys and owners, dependencies and loops, check params."""
    samples = _check_parameters(data, out)
    where = _check_actions(data, out)
    _check_dependencies(data, where, out)
    _check_criteria(data, samples, set(where), out)


def validate_document(data: Any, filename: str) -> dict[str, Any]:
    """Check a parsed blueprint completely; return its normal form, or raise with every problem found."""
    out = _Collector()
    for path, message in schema_problems(BLUEPRINT_SCHEMA, data):
        out.add(path, message)
    if isinstance(data, dict):
        _semantic_errors(data, out)
    if out.errors:
        raise BlueprintInvalid(filename, sorted(_dedupe(out.errors), key=_path_order))
    return normalize(data)


def _path_order(error: BlueprintError) -> list[tuple[int, int | str]]:
    """Sort errors by where they are: list items in document order, keys alphabetically."""
    return [(0, int(part[1:-1])) if part.startswith("[") else (1, part)
            for part in re.findall(r"\[\d+\]|[^.\[\]]+", error.path)]


def _dedupe(errors: list[BlueprintError]) -> list[BlueprintError]:
    seen, unique = set(), []
    for error in errors:
        if error not in seen:
            seen.add(error)
            unique.append(error)
    return unique


def load_text(text: str, filename: str) -> dict[str, Any]:
    """Parse and validate blueprint YAML; the normal form, or ``BlueprintInvalid`` with all problems."""
    return validate_document(parse_yaml(text, filename), filename)
