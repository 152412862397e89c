"""Reads of blueprints: lists, the launch form's pre-filled parameters, suggestions for an objective."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Count, F, OuterRef, QuerySet, Subquery, Sum

from agents.models import Connection
from blueprints.choices import ParamType
from blueprints.models import Blueprint, BlueprintVersion, CheckEvaluation, LaunchSuggestion
from history.models import HistoryEntry
from tasks import selectors as task_selectors
from tasks.models import Phase

if TYPE_CHECKING:
    from datetime import datetime

    from django.contrib.auth.models import User

    from missions.models import Mission


def blueprint_list() -> QuerySet[Blueprint]:
    """Blueprints with their latest version number and how many missions were launched from them."""
    latest = BlueprintVersion.objects.filter(blueprint=OuterRef("pk")).order_by("-number")
    return Blueprint.objects.annotate(
        latest_number=Subquery(latest.values("number")[:1]),
        version_count=Count("versions", distinct=True),
        mission_count=Count("versions__origins", distinct=True),
    ).order_by("slug")


def blueprint_version_get(*, slug: str, number: int | None = None) -> BlueprintVersion:
    """A version by slug and number (the latest if no number); ``BlueprintVersion.DoesNotExist`` if none."""
    versions = BlueprintVersion.objects.select_related("blueprint").filter(blueprint__slug=slug)
    if number is not None:
        return versions.get(number=number)
    version = versions.order_by("-number").first()
    if version is None:
        raise BlueprintVersion.DoesNotExist(f"No blueprint {slug!r} is loaded.")
    return version


def launch_initial_params(*, version: BlueprintVersion) -> dict[str, Any]:
    """What the launch form and command pre-fill: each parameter's default, or for a connection parameter
    without one, the only connection of its purpose (or the only connection at all)."""
    values: dict[str, Any] = {}
    connections = None
    for param in version.parameters:
        if param.get("default") is not None:
            values[param["name"]] = param["default"]
        elif param["type"] == ParamType.CONNECTION:
            if connections is None:
                connections = list(Connection.objects.values_list("name", "purpose"))
            fitting = [n for n, purpose in connections if purpose == param["purpose"]] if param.get("purpose") \
                else [n for n, _ in connections]
            if len(fitting) == 1:
                values[param["name"]] = fitting[0]
    return values


def check_evaluations_of_phase(phase: Phase) -> QuerySet[CheckEvaluation]:
    return CheckEvaluation.objects.filter(phase=phase).select_related("waived_by").order_by("-round",
                                                                                          "criterion_index")


# --- suggestions ----------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be by for from in into is it of on or that the their this to with we our will be are "
    "all each every new daily data table tables".split()
)


def _terms(text: str) -> set[str]:
    words = set()
    for word in _WORD.findall(text.lower().replace("_", " ")):
        if len(word) < 3 or word in _STOP:
            continue
        words.add(word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word)
    return words


@dataclass
class Suggestion:
    """A blueprint that fits an objective: its latest version, a score and the words that matched."""

    blueprint: Blueprint
    version: BlueprintVersion
    score: float
    matched: list[str] = field(default_factory=list)


def blueprint_latest_versions() -> QuerySet[BlueprintVersion]:
    """The latest version of every blueprint, by slug, one query: what the launch page and the API offer (and what a
    language-model suggestion may choose from)."""
    latest = BlueprintVersion.objects.filter(blueprint=OuterRef("blueprint")).order_by("-number").values("pk")[:1]
    return BlueprintVersion.objects.filter(pk=Subquery(latest)).select_related("blueprint").order_by(
        "blueprint__slug")


def blueprints_suggested_for(objective: str, *, limit: int = 5) -> list[Suggestion]:
    """Blueprints whose latest version matches the objective's words, best first; none if nothing matches.

    Words in the blueprint's tags and name weigh most, then its description and objective, then its phase and
    action titles. One query, whatever the number of blueprints.
    """
    wanted = _terms(objective)
    if not wanted:
        return []
    latest = BlueprintVersion.objects.filter(blueprint=OuterRef("blueprint")).order_by("-number").values("pk")[:1]
    versions = BlueprintVersion.objects.select_related("blueprint").filter(pk=Subquery(latest))
    suggestions = []
    for version in versions:
        strong = _terms(" ".join(version.tags) + " " + version.name + " " + version.blueprint.slug)
        middle = _terms(version.description + " " + version.objective)
        weak = _terms(version.search_text)
        matched = wanted & (strong | middle | weak)
        if not matched:
            continue
        score = sum(3.0 if w in strong else 2.0 if w in middle else 1.0 for w in matched) / len(wanted)
        suggestions.append(Suggestion(version.blueprint, version, round(score, 3), sorted(matched)))
    suggestions.sort(key=lambda s: (-s.score, s.blueprint.slug))
    return suggestions[:limit]


# --- check results of phases and missions, as the pages show them ---------------------------------------------

OUTCOME_LABELS = {"passed": "Passed", "failed": "Failed", "waived": "Failed, waived", "none": "Not checked yet"}


def _decorate_check(check: Any) -> None:
    check.state = "passed" if check.passed else ("waived" if check.waived_at else "failed")
    check.state_label = OUTCOME_LABELS[check.state]
    evidence = check.evidence
    check.evidence_text = json.dumps(evidence, indent=2, ensure_ascii=False, default=str) if evidence else ""


def _latest_round(evaluations: Iterable[CheckEvaluation], key: Callable[[CheckEvaluation], Any],
                  ) -> dict[Any, list[Any]]:
    """Keep, for each group (a phase, or the mission), only the evaluations of its latest round."""
    latest: dict[Any, Any] = {}
    for check in evaluations:
        group = key(check)
        best = latest.get(group)
        if best is None or check.round > best[0]:
            latest[group] = (check.round, [check])
        elif check.round == best[0]:
            best[1].append(check)
    return {group: sorted(items, key=lambda c: c.criterion_index) for group, (_, items) in latest.items()}


def _explanations(mission: Mission, phase_ids: list[int]) -> dict[int, HistoryEntry]:
    """The newest plain-language explanation of each failed phase's checks (``check.explained``), one query, none
    when no phase has failed."""
    if not phase_ids:
        return {}
    newest: dict[int, HistoryEntry] = {}
    for entry in HistoryEntry.objects.filter(mission=mission, event="check.explained").order_by("-id")[:50]:
        phase_id = (entry.data or {}).get("phase")
        if phase_id in phase_ids:
            newest.setdefault(phase_id, entry)
    return newest


def phases_with_checks(mission: Mission) -> list[Phase]:
    """The mission's phases, each with ``checks``: its exit criteria's latest results, evidence and waivers."""
    phases = task_selectors.mission_phases(mission)
    by_phase: dict[Any, list[Any]] = {}
    if phases:
        evaluations = CheckEvaluation.objects.filter(mission=mission, scope="exit").select_related("waived_by")
        by_phase = _latest_round(evaluations, key=lambda c: c.phase_id)
    explained = _explanations(mission, [phase.pk for phase in phases if phase.status == "failed"])
    for phase in phases:
        phase.explanation = explained.get(phase.pk)  # type: ignore[attr-defined]  # shown by the page
        checks = by_phase.get(phase.pk, [])
        phase.checks = checks  # type: ignore[attr-defined]  # shown by the page
        for check in checks:
            _decorate_check(check)
    return phases


def checks_for_missions(mission_ids: list[int], scope: str = "exit") -> dict[int, list[Any]]:
    """Latest check results of several missions (the dashboard's data-quality results), one query."""
    if not mission_ids:
        return {}
    evaluations = (CheckEvaluation.objects.filter(mission_id__in=mission_ids, scope=scope)
                   .select_related("phase", "waived_by"))
    latest = _latest_round(evaluations, key=lambda c: (c.mission_id, c.phase_id))
    grouped: dict[int, list[Any]] = {}
    for (mission_id, _), checks in sorted(latest.items(), key=lambda kv: (kv[0][0], kv[1][0].phase.order
                                                                         if kv[1][0].phase_id else 0)):
        for check in checks:
            _decorate_check(check)
            grouped.setdefault(mission_id, []).append(check)
    return grouped


def success_state(mission: Mission) -> list[dict[str, Any]]:
    """Each success criterion with the state of its latest check (a plain statement has none)."""
    latest: dict[int, Any] = {}
    if any(isinstance(c, dict) for c in mission.success_criteria or []):
        evaluations = CheckEvaluation.objects.filter(mission=mission, scope="success")
        for check in _latest_round(evaluations, key=lambda c: 0).get(0, []):
            _decorate_check(check)
            latest[check.criterion_index] = check
    items = []
    for index, criterion in enumerate(mission.success_criteria or []):
        if isinstance(criterion, dict):
            text = criterion.get("description") or criterion.get("name") or criterion.get("type") or str(criterion)
        else:
            text = str(criterion)
        check = latest.get(index)
        items.append({
            "text": text,
            "outcome": check.state if check else "",
            "outcome_label": check.state_label if check else "",
            "message": check.message if check else "",
        })
    return items



def launch_suggestion_usage(*, user: User, since: datetime) -> tuple[int, int]:
    """The launch suggestions ``user`` asked of the language model since ``since``: (calls, tokens), one query.
    Requests refused for a spent budget made no call and are not counted (else asking again would keep it spent)."""
    totals = LaunchSuggestion.objects.filter(user=user, created_at__gte=since).exclude(
        outcome=LaunchSuggestion.BUDGET_SPENT).aggregate(
        calls=Count("id"), tokens=Sum(F("prompt_tokens") + F("completion_tokens")))
    return int(totals["calls"] or 0), int(totals["tokens"] or 0)
