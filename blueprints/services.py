"""Blueprint services: import (validated, versioned), export, launching a mission, waiving and re-running checks."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

import yaml
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents import registry
from agents.access import connection_names_in, require_grant
from agents.llm import Exchange
from agents.llm.assistant import EVENT as LLM_CALL
from agents.models import Agent, Connection
from agents.services import connections_grant
from blueprints.checks import check_types, is_check, params_errors
from blueprints.choices import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_SECONDS, ROLE_OWNERS, CheckScope, ParamType
from blueprints.models import (
    ActionTemplate,
    Blueprint,
    BlueprintVersion,
    CheckEvaluation,
    LaunchSuggestion,
    MissionOrigin,
    PhaseTemplate,
)
from blueprints.selectors import launch_initial_params
from blueprints.validation import BlueprintError, BlueprintInvalid, load_text, substitute
from genesis.documents import format_path, loads_json
from genesis.exceptions import DomainError
from history.services import Actor, history_record
from missions.choices import Role
from missions.models import Mission
from missions.services import membership_set, mission_create
from tasks.services import artifact_create, dependency_add, phase_create, task_create

# --- import and export ----------------------------------------------------------------------------------


def content_hash(spec: dict[str, Any]) -> str:
    body = {k: v for k, v in spec.items() if k != "version"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _search_text(spec: dict[str, Any]) -> str:
    words = [spec["slug"].replace("-", " "), spec["name"], spec["description"], " ".join(spec["tags"]),
             spec["objective"]]
    for phase in spec["phases"]:
        words += [phase["name"], phase["description"]]
        words += [f"{a['title']} {a['description']}" for a in phase["actions"]]
    return " ".join(w for w in words if w)


@transaction.atomic
def blueprint_import(*, text: str, filename: str, actor: Actor = None) -> BlueprintVersion:
    """Validate a blueprint file and store it as a version. The same content again returns the existing
    version (``created`` False); changed content makes a new version, the stored ones never change.

    Raises ``BlueprintInvalid`` with every problem; then nothing is stored.
    """
    spec = load_text(text, filename)
    digest = content_hash(spec)
    blueprint = Blueprint.objects.select_for_update().filter(slug=spec["slug"]).first()
    if blueprint is None:
        blueprint = Blueprint.objects.create(slug=spec["slug"], name=spec["name"])
    versions = dict(blueprint.versions.values_list("number", "content_hash"))
    wanted = spec.get("version")
    if wanted is not None and wanted in versions:
        if versions[wanted] != digest:
            raise BlueprintInvalid(filename, [BlueprintError(
                "version", f"version {wanted} of {spec['slug']!r} is already stored with other content, and a "
                           f"stored version never changes: remove 'version' or use {max(versions) + 1}")])
        existing = blueprint.versions.get(number=wanted)
        existing.created = False  # type: ignore[attr-defined]  # the importer says whether it was new
        return existing
    if wanted is None:
        latest = max(versions, default=None)
        if latest is not None and versions[latest] == digest:
            existing = blueprint.versions.get(number=latest)
            existing.created = False  # type: ignore[attr-defined]  # the importer says whether it was new
            return existing
        number = (latest or 0) + 1
    else:
        if versions and wanted < max(versions):
            raise BlueprintInvalid(filename, [BlueprintError(
                "version", f"version {wanted} is older than the latest stored version {max(versions)}; "
                           f"use {max(versions) + 1} or remove 'version'")])
        number = wanted
    user = actor if isinstance(actor, AbstractBaseUser) and actor.is_authenticated else None
    version = BlueprintVersion.objects.create(
        blueprint=blueprint, number=number, name=spec["name"], description=spec["description"],
        tags=spec["tags"], parameters=spec["parameters"], objective=spec["objective"], scope=spec["scope"],
        success_criteria=spec["success_criteria"], requires=spec.get("requires", []),
        source_name=filename[:255], source_text=text,
        content_hash=digest, search_text=_search_text(spec), created_by=user,
    )
    for order, phase in enumerate(spec["phases"], 1):
        template = PhaseTemplate.objects.create(
            version=version, order=order, name=phase["name"], description=phase["description"],
            exit_criteria=phase["exit_criteria"],
        )
        ActionTemplate.objects.bulk_create([
            ActionTemplate(
                phase=template, position=position, key=a["key"], title=a["title"], description=a["description"],
                owner=a["owner"], acceptance_criteria=a["acceptance_criteria"], config=a["config"],
                depends_on=a["depends_on"], timeout_seconds=a["timeout"], max_attempts=a["max_attempts"],
                for_each=a.get("for_each", ""),
            )
            for position, a in enumerate(phase["actions"], 1)
        ])
    Blueprint.objects.filter(pk=blueprint.pk).update(
        name=spec["name"], description=spec["description"], tags=spec["tags"], updated_at=timezone.now()
    )
    version.created = True  # type: ignore[attr-defined]  # the importer says whether it was new
    return version


def _export_criterion(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out: dict[str, Any] = {"type": item["type"]}
    if item.get("params"):
        out["params"] = item["params"]
    if item.get("description"):
        out["description"] = item["description"]
    return out


def _set(doc: dict[str, Any], key: str, value: Any, *, unless: Any = None) -> None:
    """Put ``value`` in the exported document unless it is empty or the default (``unless``)."""
    if value and value != unless:
        doc[key] = value


def _export_parameter(p: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"name": p["name"], "type": p["type"]}
    if "default" in p:
        item["default"] = p["default"]
    _set(item, "help", p.get("help"))
    if p.get("required", "default" not in p) != ("default" not in p):
        item["required"] = p["required"]
    _set(item, "purpose", p.get("purpose"))
    return item


def _export_action(a: ActionTemplate) -> dict[str, Any]:
    action: dict[str, Any] = {"key": a.key, "title": a.title}
    _set(action, "description", a.description)
    action["owner"] = a.owner
    _set(action, "depends_on", list(a.depends_on))
    _set(action, "acceptance_criteria", [_export_criterion(c) for c in a.acceptance_criteria])
    _set(action, "config", a.config)
    _set(action, "timeout", a.timeout_seconds, unless=DEFAULT_TIMEOUT_SECONDS)
    _set(action, "max_attempts", a.max_attempts, unless=DEFAULT_MAX_ATTEMPTS)
    _set(action, "for_each", a.for_each)
    return action


def _export_phase(phase: PhaseTemplate) -> dict[str, Any]:
    item: dict[str, Any] = {"name": phase.name}
    _set(item, "description", phase.description)
    item["actions"] = [_export_action(a) for a in phase.actions.all()]
    _set(item, "exit_criteria", [_export_criterion(c) for c in phase.exit_criteria])
    return item


def blueprint_document(*, blueprint_version: BlueprintVersion) -> dict[str, Any]:
    """The version as a blueprint document, built from the stored rows, defaults left out."""
    v = blueprint_version
    doc: dict[str, Any] = {"slug": v.blueprint.slug, "name": v.name, "version": v.number}
    _set(doc, "description", v.description)
    _set(doc, "tags", list(v.tags))
    _set(doc, "parameters", [_export_parameter(p) for p in v.parameters])
    _set(doc, "requires", list(v.requires))
    _set(doc, "objective", v.objective)
    _set(doc, "scope", v.scope)
    _set(doc, "success_criteria", [_export_criterion(c) for c in v.success_criteria])
    doc["phases"] = [_export_phase(phase) for phase in v.phases.prefetch_related("actions").order_by("order")]
    return doc


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line text as literal blocks so descriptions read like the original file."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value.strip() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def blueprint_export(*, blueprint_version: BlueprintVersion) -> str:
    """YAML of the version; importing it gives the same version back (same content, same number)."""
    return yaml.dump(
        blueprint_document(blueprint_version=blueprint_version), Dumper=_Dumper, sort_keys=False,
        allow_unicode=True, default_flow_style=False, width=110,
    )


# --- launch ---------------------------------------------------------------------------------------------

_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


def _as_text(name: str, field: str, value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise DomainError(f"Parameter {name} must be text.", field=field)
    return str(value)


def _as_integer(name: str, field: str, value: Any) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise DomainError(f"Parameter {name} must be a whole number, not {value!r}.", field=field) from None


def _as_number(name: str, field: str, value: Any) -> int | float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise DomainError(f"Parameter {name} must be a number, not {value!r}.", field=field) from None
    return int(number) if number.is_integer() and not (isinstance(value, str) and "." in value) else number


def _as_boolean(name: str, field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in _TRUE:
        return True
    if str(value).strip().lower() in _FALSE:
        return False
    raise DomainError(f"Parameter {name} must be yes or no (true/false), not {value!r}.", field=field)


def _as_list(name: str, field: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = loads_json(text)
            except json.JSONDecodeError:
                raise DomainError(f"Parameter {name}: {text!r} is not a JSON list.", field=field) from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise DomainError(f"Parameter {name} must be a list of values.", field=field)
    return value


def _as_connection(name: str, field: str, value: Any) -> str:
    if isinstance(value, Connection):
        return value.name
    if not isinstance(value, str) or not Connection.objects.filter(name=value).exists():
        known = ", ".join(Connection.objects.order_by("name").values_list("name", flat=True)) or "none"
        raise DomainError(f"Parameter {name}: no connection is named {value!r} (connections: {known}).",
                          field=field)
    return value


_COERCE = {
    ParamType.STRING: _as_text, ParamType.TEXT: _as_text, ParamType.INTEGER: _as_integer,
    ParamType.NUMBER: _as_number, ParamType.BOOLEAN: _as_boolean, ParamType.LIST: _as_list,
    ParamType.CONNECTION: _as_connection,
}


def _coerce(param: dict[str, Any], value: Any) -> Any:
    """A given parameter value in its declared type (text from a form or the command line is converted)."""
    ptype, name = param["type"], param["name"]
    coerce = _COERCE.get(ptype)
    if coerce is None:  # pragma: no cover - the blueprint's schema allows only the types above
        raise DomainError(f"Parameter {name} has an unknown type {ptype!r}.", field=f"params.{name}")
    return coerce(name, f"params.{name}", value)


def param_value(*, version: BlueprintVersion, name: str, value: Any) -> Any:
    """One given parameter's value in its declared type; refused (naming it) if the blueprint has no such parameter
    or the value does not fit."""
    declared = {p["name"]: p for p in version.parameters}
    if name not in declared:
        raise DomainError(f"{version} has no parameter {name}.", field=f"params.{name}")
    return _coerce(declared[name], value)


def resolve_params(*, version: BlueprintVersion, params: dict[str, Any] | None) -> dict[str, Any]:
    """Every declared parameter's value: the given one (converted to its type), else the pre-filled one
    (default, or what the context makes obvious), else refused if required."""
    given = dict(params or {})
    declared = {p["name"]: p for p in version.parameters}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DomainError(
            f"{version} has no parameter(s) {', '.join(unknown)}; it declares: {', '.join(declared) or 'none'}.",
            field=f"params.{unknown[0]}",
        )
    initial = launch_initial_params(version=version)
    values: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given and given[name] not in (None, ""):
            values[name] = _coerce(param, given[name])
        elif initial.get(name) is not None:
            values[name] = _coerce(param, initial[name])
        elif param.get("required", True):
            raise DomainError(f"Parameter {name} is required: {(param.get('help') or param['type']).rstrip('.')}.",
                              field=f"params.{name}")
        else:
            values[name] = None
    return values


def _agent_for(kind: str, cache: dict[str, Agent]) -> Agent:
    """The agent that owns tasks of this kind: the first enabled one, created (named after the kind) if none."""
    if kind in cache:
        return cache[kind]
    agent = Agent.objects.filter(kind=kind, enabled=True).order_by("id").first()
    if agent is None:
        cls = registry.get(kind)
        name = getattr(cls, "name", "") or "".join(part.title() for part in re.split(r"[_\W]+", kind)) + "Agent"
        if Agent.objects.filter(name=name).exists():
            name = f"{name} ({kind})"
        agent = Agent.objects.create(name=name, kind=kind, description=cls.description or "")
    cache[kind] = agent
    return agent


def _check_substituted(criteria: list[Any], where: str, *, own_key: str | None = None) -> None:
    known = check_types()
    for i, criterion in enumerate(criteria):
        if not is_check(criterion):
            continue
        params = criterion.get("params") or {}
        cls = known.get(criterion["type"])
        if cls is None:
            raise DomainError(f"{where}[{i}]: unknown check type {criterion['type']!r}.", field="params")
        if own_key and "task" in cls.task_params and "task" not in params:
            params = {**params, "task": own_key}
        problems = params_errors(criterion["type"], params)
        if problems:
            path, message = problems[0]
            raise DomainError(
                f"{where}[{i}].params{'.' + format_path(path) if path else ''}: {message} "
                "(after putting in the parameter values).", field="params",
            )


@transaction.atomic
def blueprint_launch(
    *,
    version: BlueprintVersion,
    name: str,
    objective: str,
    owner: User,
    mode: str = "step",
    params: dict[str, Any] | None = None,
    actor: Actor = None,
    task_owner: User | None = None,
    connections: Iterable[str] = (),
    spec: dict[str, Any] | None = None,
    task_config: Any = None,
    **mission_fields: Any,
) -> Mission:
    """Create a draft mission from a blueprint version: phases, tasks with owners and acceptance criteria,
    and dependencies, all or nothing; the connections it uses (its parameters, its checks' and configs', and the
    names in ``connections``, e.g. its spec file's) granted to it. It does not start execution
    (``workflows.missions.mission_launch`` does).

    Actions owned by ``task_owner`` go to ``task_owner`` (who gets that role), else to the Mission Owner.
    ``spec`` is the validated spec file (its targets fill ``{{ targets }}`` and expand ``for_each: target``
    actions); a blueprint that requires one refuses to launch without it. ``task_config(action, config)`` may
    return settings added to a task's config (e.g. the mapping specs to reuse).
    """
    # The connections the mission will read and write are granted to it here, checked against whoever launches:
    # a person must be allowed to grant each one; no ``actor`` means the system itself launches (a command).
    grantor = actor
    actor = actor or owner
    values = resolve_params(version=version, params=params)
    fill = {**values, **spec_values(version=version, spec=spec)}
    # Everything substituted and checked before the first row is written.
    planned, expanded = _plan(version=version, fill=fill)
    success = substitute(version.success_criteria, fill)
    _check_substituted(success, "success_criteria")
    used = _connections_used(version=version, values=values, planned=planned, success=success,
                             mission_fields=mission_fields, also=connections)
    require_grant(grantor, used, field="params")

    fields = dict(mission_fields)
    for param in version.parameters:
        target = {"source": "source_connection", "target": "target_connection"}.get(param.get("purpose", ""))
        if param["type"] == ParamType.CONNECTION and target and target not in fields and values.get(param["name"]):
            fields[target] = Connection.objects.get(name=values[param["name"]])
    if version.scope and "scope" not in fields:
        fields["scope"] = substitute(version.scope, fill)
    mission = mission_create(
        name=name, objective=objective or substitute(version.objective, fill), owner=owner, actor=actor,
        success_criteria=success, mode=mode, grantor=grantor, **fields,
    )
    if task_owner is not None and task_owner.pk != owner.pk:
        membership_set(mission=mission, user=task_owner, role=Role.TASK_OWNER, actor=actor)
    person_for_role = {"mission_owner": owner, "task_owner": task_owner or owner}
    connections_grant(mission=mission, connections=used, actor=grantor,
                      reason=f"used by blueprint {version.blueprint.slug}")
    MissionOrigin.objects.create(mission=mission, blueprint_version=version, params=values)
    history_record(
        mission=mission, event="mission.from_blueprint", actor=actor,
        message=f"Launched from blueprint {version.blueprint.slug} version {version.number}.",
        data={"blueprint": version.blueprint.slug, "version": version.number, "params": values},
    )
    agents: dict[str, Agent] = {}
    tasks_by_key = {}
    position = 0
    for phase, exit_criteria, actions in planned:
        mission_phase = phase_create(
            mission=mission, order=phase.order, name=substitute(phase.name, fill),
            description=substitute(phase.description, fill), exit_criteria=exit_criteria, actor=actor,
        )
        for a, key, own, criteria in actions:
            position += 1
            owner_user = person_for_role[a.owner] if a.owner in ROLE_OWNERS else None
            owner_agent = None if owner_user is not None else _agent_for(a.owner, agents)
            config = substitute(a.config, own)
            if task_config:
                config = {**config, **task_config(a, config)}
            tasks_by_key[key] = task_create(
                mission=mission, key=key, title=substitute(a.title, own)[:200],
                description=substitute(a.description, own), acceptance_criteria=criteria,
                config=config, max_attempts=a.max_attempts,
                timeout_seconds=a.timeout_seconds, position=position, phase=mission_phase, actor=actor,
                owner_user=owner_user, owner_agent=owner_agent,
            )
    for _phase, _exit, actions in planned:
        for a, key, _own, _criteria in actions:
            for dep in a.depends_on:
                for dep_key in expanded.get(dep, [dep]):
                    dependency_add(task=tasks_by_key[key], depends_on=tasks_by_key[dep_key], actor=actor)
    return mission


def _plan(*, version: BlueprintVersion, fill: dict[str, Any]) -> tuple[list[Any], dict[str, list[str]]]:
    """Each phase with its exit criteria and its tasks to be (action, key, placeholder values, acceptance criteria),
    substituted and checked; and the task keys each action became."""
    planned = []
    expanded: dict[str, list[str]] = {}
    for phase in version.phases.prefetch_related("actions").order_by("order"):
        exit_criteria = substitute(phase.exit_criteria, fill)
        _check_substituted(exit_criteria, f"phases[{phase.order - 1}].exit_criteria")
        actions = []
        for a in phase.actions.all():
            if a.owner not in ROLE_OWNERS and not registry.is_registered(a.owner):
                raise DomainError(f"Action {a.key} is owned by agent kind {a.owner!r}, which is not registered.",
                                  field="owner")
            for key, own in _instances(a, fill):
                criteria = substitute(a.acceptance_criteria, own)
                _check_substituted(criteria, f"{key}.acceptance_criteria", own_key=key)
                actions.append((a, key, own, [_with_task(c, key) for c in criteria]))
                expanded.setdefault(a.key, []).append(key)
        planned.append((phase, exit_criteria, actions))
    return planned, expanded


def spec_values(*, version: BlueprintVersion, spec: dict[str, Any] | None) -> dict[str, Any]:
    """What a launch fills in from the spec file besides the parameters (``targets``, ``target_count``,
    ``source_tables``); refused
    naming the requirement when the blueprint requires a spec file and none is given."""
    if "spec_file" in (version.requires or []) and spec is None:
        raise DomainError(
            f"Blueprint {version.blueprint.slug} requires a spec file (requires: [spec_file]): its steps read the "
            "targets from it. Attach one (launch_mission --spec-file FILE, the launch page's spec file, or the "
            "API's spec_file).", field="spec_file", code="spec_file_required")
    if spec is None:
        return {}
    names = [t["name"] for t in spec["targets"]["tables"]]
    return {"targets": names, "target_count": len(names), "source_tables": list(spec["sources"]["allowed_tables"])}


def _instances(action: ActionTemplate, fill: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The task keys an action becomes, with the values its placeholders take: one for a plain action; one per
    target of the spec file (``<key>_<target>``, ``{{ target }}`` its name) for a ``for_each: target`` one."""
    if action.for_each != "target":
        return [(action.key, fill)]
    instances = []
    for name in fill.get("targets") or []:
        key = f"{action.key}_{name.lower()}"
        if len(key) > 64:
            raise DomainError(f"Action {action.key} for target {name}: the task key {key!r} is longer than 64 "
                              "characters; shorten the target's name or the action's key.", field="spec_file")
        instances.append((key, {**fill, "target": name}))
    return instances


def _connections_used(*, version: BlueprintVersion, values: dict[str, Any], planned: list[Any], success: list[Any],
                      mission_fields: dict[str, Any], also: Iterable[str]) -> list[Connection]:
    """Every registered connection the launched mission would use: its connection parameters, the connections its
    checks and task configs name, and ``also`` (e.g. those its spec file names)."""
    names = {values[p["name"]] for p in version.parameters
             if p["type"] == ParamType.CONNECTION and values.get(p["name"])}
    names |= connection_names_in(success)
    for _phase, exit_criteria, actions in planned:
        names |= connection_names_in(exit_criteria)
        for action, _key, own, criteria in actions:
            names |= connection_names_in(criteria) | connection_names_in(substitute(action.config, own))
    for field in ("source_connection", "target_connection"):
        if mission_fields.get(field) is not None:
            names.add(mission_fields[field].name)
    names |= set(also)
    # A name no connection has is left to the check that uses it, which fails saying so.
    return list(Connection.objects.filter(name__in=names).order_by("name"))


def _with_task(criterion: Any, key: str) -> Any:
    """An acceptance check that names no task is about its own task: say so in the stored criterion."""
    if is_check(criterion):
        cls = check_types().get(criterion["type"])
        params = criterion.get("params") or {}
        if cls and "task" in cls.task_params and "task" not in params:
            return {**criterion, "params": {**params, "task": key}}
    return criterion


# --- waivers ----------------------------------------------------------------------------------------------


@transaction.atomic
def check_evaluation_waive(*, result: CheckEvaluation, actor: User | None, reason: str) -> bool:
    """Record a waiver (with its reason) on a failed exit check of a phase's latest evaluation. Returns whether the
    phase still has failures nobody waived. Who may waive, and what follows, is the workflow's (``workflows``)."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("A waiver needs a reason.", field="reason")
    evaluation = (CheckEvaluation.objects.select_for_update(of=("self",)).select_related("phase", "mission")
                  .get(pk=result.pk))
    phase = evaluation.phase
    if evaluation.scope != CheckScope.EXIT or phase is None:
        raise DomainError("Only a phase's exit checks can be waived.", field="result")
    if evaluation.passed:
        raise DomainError("This check passed: there is nothing to waive.", field="result")
    if evaluation.waived:
        raise DomainError(f"This check was already waived by {evaluation.waived_by}.", field="result")
    latest_round = CheckEvaluation.objects.filter(phase=phase).aggregate(m=Max("round"))["m"]
    if evaluation.round != latest_round:
        raise DomainError("The checks of this phase ran again since: waive the latest result.", field="result")
    evaluation.waived_at = timezone.now()
    evaluation.waived_by = actor
    evaluation.waiver_reason = reason
    evaluation.save(update_fields=["waived_at", "waived_by", "waiver_reason"])
    history_record(
        mission=evaluation.mission, event="check.waived", actor=actor,
        message=f"Exit check {evaluation.description or evaluation.check_type} of {phase.name} waived: {reason}",
        data={"evaluation": evaluation.pk, "phase": phase.pk, "type": evaluation.check_type, "reason": reason,
              "failure": evaluation.message},
    )
    result.waived_at, result.waived_by, result.waiver_reason = evaluation.waived_at, actor, reason
    return CheckEvaluation.objects.filter(
        phase=phase, round=latest_round, passed=False, waived_at__isnull=True
    ).exists()


# --- language-model launch suggestions ------------------------------------------------------------------


def launch_suggestion_record(*, user: User, objective: str, exchange: Exchange,
                             version: BlueprintVersion | None, outcome: str = "") -> LaunchSuggestion:
    """Store one launch suggestion asked of the language model, tied to who asked: no mission exists yet, and the
    person's daily budget and the staff's list read these rows."""
    return LaunchSuggestion.objects.create(
        user=user, objective=objective[:4000], outcome=(outcome or exchange.outcome)[:20], model=exchange.model[:200],
        prompt_tokens=exchange.prompt_tokens, completion_tokens=exchange.completion_tokens,
        latency_ms=exchange.latency_ms, blueprint_version=version, exchange=exchange.record())


def launch_suggestion_refused(*, user: User, objective: str, reason: str, model: str) -> LaunchSuggestion:
    """Store a launch suggestion refused before any call because ``user``'s daily budget is spent: no tokens, the
    reason kept, so staff see the refusals beside the calls (the budget does not count them)."""
    outcome = LaunchSuggestion.BUDGET_SPENT
    return LaunchSuggestion.objects.create(
        user=user, objective=objective[:4000], outcome=outcome, model=model[:200],
        exchange={"purpose": "suggest a blueprint", "outcome": outcome, "detail": reason, "sent": False})


@transaction.atomic
def launch_suggestion_attach(*, suggestion_id: int, mission: Mission, user: AbstractBaseUser,
                             actor: Actor = None) -> LaunchSuggestion:
    """The mission ``user`` launched from their suggestion: it takes the exchange as an artifact and an ``llm.call``
    history entry, so the suggestion's tokens count toward the mission's total and budget. Only the person who asked
    may launch from it, and only once (a second launch would count the same tokens twice)."""
    suggestion = LaunchSuggestion.objects.select_for_update().filter(pk=suggestion_id, user_id=user.pk).first()
    if suggestion is None:
        raise DomainError(f"Suggestion {suggestion_id} is not one you asked for; launch without it.",
                          field="suggestion")
    if suggestion.outcome == LaunchSuggestion.BUDGET_SPENT:
        raise DomainError(f"Suggestion {suggestion_id} was refused (your daily budget was spent) and suggests nothing; "
                          "launch without it.", field="suggestion")
    if suggestion.mission_id is not None:
        raise DomainError(f"Suggestion {suggestion_id} already launched a mission; ask for a new suggestion or "
                          "launch without it.", field="suggestion")
    origin = MissionOrigin.objects.filter(mission=mission).values_list("blueprint_version_id", flat=True).first()
    followed = suggestion.blueprint_version_id is not None and suggestion.blueprint_version_id == origin
    suggestion.mission, suggestion.launched_at = mission, timezone.now()
    suggestion.save(update_fields=["mission", "launched_at"])
    artifact_create(mission=mission, kind="report", name=f"llm-launch-suggestion-{suggestion.pk}.json",
                    file=json.dumps(suggestion.exchange, indent=2, default=str).encode(),
                    content_type="application/json", actor=actor)
    history_record(
        mission=mission, event=LLM_CALL, actor=actor,
        message=f"Language model asked to suggest a blueprint before the launch: {suggestion.outcome}"
                + ("; the suggested blueprint was launched." if followed else
                   "; another blueprint was launched than the one suggested."),
        data={"purpose": "suggest a blueprint", "outcome": suggestion.outcome, "model": suggestion.model,
              "tokens": suggestion.tokens, "latency_ms": suggestion.latency_ms, "task": None, "run": None,
              "suggestion": suggestion.pk, "followed": followed},
    )
    return suggestion
