"""Phases gate a mission: one phase is worked on at a time, and it is left only when its exit criteria pass.

The engine calls ``phases_advance`` whenever a task finishes (and at launch). Exit criteria are evaluated
by the evaluators registered here (the ``blueprints`` app registers its check registry in ``ready()``), so
this module, like the rest of ``tasks``, never imports ``blueprints``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from history.services import Actor
from tasks.choices import TASK_FINISHED, PhaseStatus
from tasks.models import Phase, Task
from tasks.services import phase_transition

# An evaluator runs a phase's exit criteria, stores and records the results, and says whether all passed
# (waived failures count as passed). With no evaluator registered a phase passes when its tasks are done.
Evaluator = Callable[[Phase, Actor], bool]
_evaluators: list[Evaluator] = []

# A phase whose tasks may run: reached, and not waiting for its checks.
WORKABLE = frozenset({PhaseStatus.OPEN, PhaseStatus.PASSED, PhaseStatus.WAIVED})
LEFT = frozenset({PhaseStatus.PASSED, PhaseStatus.WAIVED})


def register_evaluator(evaluator: Evaluator) -> None:
    if evaluator not in _evaluators:
        _evaluators.append(evaluator)


def evaluate_exit_criteria(phase: Phase, actor: Actor = None) -> bool:
    return all(evaluator(phase, actor) for evaluator in _evaluators)


@dataclass
class Advance:
    """What ``phases_advance`` did: phases it opened, passed and failed."""

    opened: list[Phase] = field(default_factory=list)
    passed: list[Phase] = field(default_factory=list)
    failed: list[Phase] = field(default_factory=list)


@transaction.atomic
def phases_advance(*, mission, actor: Actor = None) -> Advance:
    """Check the open phase; when it is left, open the next. Idempotent: safe to call at every completion."""
    result = Advance()
    phases = list(Phase.objects.select_for_update().filter(mission=mission).order_by("order"))
    for phase in phases:
        if phase.status in LEFT:
            continue
        if phase.status == PhaseStatus.PENDING:
            phase_transition(phase=phase, to=PhaseStatus.OPEN, actor=actor, message=f"Phase {phase.name} opened.")
            result.opened.append(phase)
        if phase.status == PhaseStatus.OPEN and _all_tasks_finished(phase):
            phase_transition(phase=phase, to=PhaseStatus.CHECKING, actor=actor,
                             message=f"All tasks of {phase.name} are finished; checking its exit criteria.")
            passed = evaluate_exit_criteria(phase, actor)
            phase_transition(
                phase=phase, to=PhaseStatus.PASSED if passed else PhaseStatus.FAILED, actor=actor,
                message=f"Exit criteria of {phase.name} " + ("passed." if passed else "failed: later phases wait."),
            )
            (result.passed if passed else result.failed).append(phase)
            if passed:
                continue
        break  # this phase is being worked on, checked, or failed: later phases wait
    return result


def recheck_exit_criteria(*, phase: Phase, actor: Actor = None) -> Advance:
    """Run a phase's exit criteria again, then move on if they pass (the verb, with its permission and what follows
    a pass, is ``workflows.checks.phase_recheck``)."""
    with transaction.atomic():
        phase_transition(phase=phase, to=PhaseStatus.CHECKING, actor=actor, message="Checks re-run.")
        passed = evaluate_exit_criteria(phase, actor)
        phase_transition(phase=phase, to=PhaseStatus.PASSED if passed else PhaseStatus.FAILED, actor=actor,
                         message="Exit criteria passed." if passed else "Exit criteria still fail.")
    return phases_advance(mission=phase.mission, actor=actor)


def _all_tasks_finished(phase: Phase) -> bool:
    return not Task.objects.filter(phase=phase).exclude(status__in=TASK_FINISHED).exists()


def task_is_workable(task: Task) -> bool:
    """A task's phase lets it run (no phase, or a phase that has been reached and is not being checked)."""
    return task.phase_id is None or task.phase.status in WORKABLE
