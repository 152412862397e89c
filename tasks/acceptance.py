"""Acceptance of a task's work and success of a mission, computed by checks rather than declared.

The engine asks ``evaluate_acceptance`` after an agent reports success (a failing check fails the run with
its evidence) and ``evaluate_success`` when every task of a mission is finished (the mission completes only
if its success criteria pass). The ``blueprints`` app registers the check registry's evaluators in
``ready()``; with none registered, a task's or mission's criteria are plain statements and count as met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    """Whether criteria passed, with one evidence record per check (name, passed, message, evidence)."""

    passed: bool = True
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r.get("passed")]


TaskEvaluator = Callable[..., Verdict]  # (task=, run=, actor=) -> Verdict
MissionEvaluator = Callable[..., Verdict]  # (mission=, actor=) -> Verdict
_task_evaluators: list[TaskEvaluator] = []
_mission_evaluators: list[MissionEvaluator] = []


def register_acceptance_evaluator(evaluator: TaskEvaluator) -> None:
    if evaluator not in _task_evaluators:
        _task_evaluators.append(evaluator)


def register_success_evaluator(evaluator: MissionEvaluator) -> None:
    if evaluator not in _mission_evaluators:
        _mission_evaluators.append(evaluator)


def _combine(verdicts: list[Verdict]) -> Verdict:
    return Verdict(
        passed=all(v.passed for v in verdicts), results=[r for v in verdicts for r in v.results]
    )


def evaluate_acceptance(*, task, run=None, actor=None) -> Verdict:
    return _combine([evaluator(task=task, run=run, actor=actor) for evaluator in _task_evaluators])


def evaluate_success(*, mission, actor=None) -> Verdict:
    return _combine([evaluator(mission=mission, actor=actor) for evaluator in _mission_evaluators])
