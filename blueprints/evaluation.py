"""The evaluators ``BlueprintsConfig.ready`` registers with the phase gate and the acceptance hooks.

Each evaluation is stored (``CheckEvaluation``) with its evidence and written to history, in the caller's
transaction. Failed exit checks are summed up in one history entry for the Mission Owner; the engine notifies
the owner through the mission's escalation channels when the phase gate reports the failure.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from blueprints.checks import CheckContext, CheckResult, criterion_label, is_check, run_check
from blueprints.choices import CheckScope
from blueprints.models import CheckEvaluation
from history.services import Actor, history_record
from tasks.acceptance import Verdict
from tasks.models import Phase


def _next_round(**filters: Any) -> int:
    return (CheckEvaluation.objects.filter(**filters).aggregate(m=Max("round"))["m"] or 0) + 1


def _store(*, criterion: dict[str, Any], index: int, round_: int, result: CheckResult, scope: str,
           context: CheckContext, actor: Actor, waiver: CheckEvaluation | None = None) -> CheckEvaluation:
    label = criterion_label(criterion)
    evaluation = CheckEvaluation.objects.create(
        mission=context.mission, phase=context.phase if scope == CheckScope.EXIT else None, task=context.task,
        run=context.run, scope=scope, criterion_index=index, round=round_, check_type=criterion["type"],
        description=label[:300], params=criterion.get("params") or {}, passed=result.passed,
        message=result.message, evidence=result.evidence,
        waived_at=waiver.waived_at if waiver else None, waived_by=waiver.waived_by if waiver else None,
        waiver_reason=waiver.waiver_reason if waiver else "",
    )
    outcome = "passed" if result.passed else ("failed_waived" if waiver else "failed")
    where = f"phase {context.phase.name}" if scope == CheckScope.EXIT else (
        f"task {context.task.key}" if context.task else "the mission")
    said = {"passed": "passed", "failed": "failed", "failed_waived": "failed (waived)"}[outcome]
    message = f"{scope.title()} check {label} of {where} {said}: {result.message}"
    if waiver:
        message += f" Waiver by {waiver.waived_by} stands: {waiver.waiver_reason}"
    history_record(
        mission=context.mission, task=context.task, run=context.run, event=f"check.{outcome}", actor=actor,
        message=message,
        data={"evaluation": evaluation.pk, "scope": scope, "type": criterion["type"], "label": label,
              "phase": context.phase.pk if context.phase else None, "passed": result.passed,
              "evidence": result.evidence},
    )
    return evaluation


def _standing_waiver(phase: Phase, index: int, criterion: dict[str, Any]) -> CheckEvaluation | None:
    """A waiver of the same criterion of this phase from an earlier round still holds when it fails again."""
    return (
        CheckEvaluation.objects.filter(
            phase=phase, scope=CheckScope.EXIT, criterion_index=index, check_type=criterion["type"],
            waived_at__isnull=False,
        ).select_related("waived_by").order_by("-round").first()
    )


def evaluate_phase_exit(phase: Phase, actor: Actor = None) -> bool:
    """Run the phase's exit criteria; True when each passed or its failure is waived."""
    criteria = [(i, c) for i, c in enumerate(phase.exit_criteria or []) if is_check(c)]
    if not criteria:
        return True
    mission = phase.mission
    context = CheckContext(mission=mission, phase=phase)
    round_ = _next_round(phase=phase, scope=CheckScope.EXIT)
    failures = []
    for index, criterion in criteria:
        result = run_check(criterion, context)
        waiver = None
        if not result.passed:
            waiver = _standing_waiver(phase, index, criterion)
            if waiver is not None and waiver.params != (criterion.get("params") or {}):
                waiver = None
        _store(criterion=criterion, index=index, round_=round_, result=result, scope=CheckScope.EXIT,
               context=context, actor=actor, waiver=waiver)
        if not result.passed and waiver is None:
            failures.append(f"{criterion_label(criterion)}: {result.message}")
    if failures:
        _record_failures(phase, failures, actor)
    return not failures


def _record_failures(phase: Phase, failures: list[str], actor: Actor) -> None:
    """One history entry naming every failed check, addressed to the Mission Owner. (The engine sends the
    notification itself, through the mission's escalation channels, when ``phases_advance`` reports the
    phase failed; sending it here too would tell the owner twice.)"""
    mission = phase.mission
    history_record(
        mission=mission, event="phase.checks_failed", actor=actor,
        message=f"Exit checks of {phase.name} failed; later phases wait until the Mission Owner "
                f"({mission.owner.get_username()}) re-runs them once fixed, or waives the failures. "
                + " ".join(f"[{line}]" for line in failures),
        data={"phase": phase.pk, "owner": mission.owner.get_username(), "failures": failures},
    )


def _verdict(items: list[tuple[dict[str, Any], CheckResult, CheckEvaluation]]) -> Verdict:
    return Verdict(
        passed=all(result.passed for _c, result, _e in items),
        results=[
            {"name": criterion_label(c), "type": c["type"], "passed": r.passed, "message": r.message,
             "evidence": r.evidence, "evaluation": e.pk}
            for c, r, e in items
        ],
    )


def evaluate_task_acceptance(*, task, run=None, actor: Actor = None) -> Verdict:
    """The check-type acceptance criteria of a task (plain text criteria are statements, not checks)."""
    criteria = [(i, c) for i, c in enumerate(task.acceptance_criteria or []) if is_check(c)]
    if not criteria:
        return Verdict()
    context = CheckContext(mission=task.mission, phase=task.phase, task=task, run=run)
    round_ = _next_round(task=task, scope=CheckScope.ACCEPTANCE)
    items = []
    for index, criterion in criteria:
        result = run_check(criterion, context)
        evaluation = _store(criterion=criterion, index=index, round_=round_, result=result,
                            scope=CheckScope.ACCEPTANCE, context=context, actor=actor)
        items.append((criterion, result, evaluation))
    return _verdict(items)


def evaluate_mission_success(*, mission, actor: Actor = None) -> Verdict:
    """The check-type success criteria of a mission: it is completed only if these pass."""
    criteria = [(i, c) for i, c in enumerate(mission.success_criteria or []) if is_check(c)]
    if not criteria:
        return Verdict()
    context = CheckContext(mission=mission)
    round_ = _next_round(mission=mission, scope=CheckScope.SUCCESS)
    items = []
    for index, criterion in criteria:
        result = run_check(criterion, context)
        evaluation = _store(criterion=criterion, index=index, round_=round_, result=result,
                            scope=CheckScope.SUCCESS, context=context, actor=actor)
        items.append((criterion, result, evaluation))
    return _verdict(items)
