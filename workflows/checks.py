"""The Mission Owner's verbs on a phase gate: run a phase's exit checks again, waive a failed one."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.db import transaction

from blueprints.models import CheckEvaluation
from blueprints.services import check_evaluation_waive
from genesis.exceptions import InvalidTransition
from history.services import Actor
from missions.models import Mission
from missions.permissions import can_manage
from tasks.choices import PHASE_TRANSITIONS, PhaseStatus
from tasks.dispatch import phase_boundary_crossed
from tasks.models import Phase
from tasks.phase_gate import Advance, phases_advance, recheck_exit_criteria
from tasks.services import phase_transition
from workflows.common import require

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _go_on(advance: Advance, *, mission: Mission, actor: Actor, left: list[Phase], how: str) -> Advance:
    """A re-check or a waiver let the mission go on: in step mode it pauses at the boundary, otherwise the tasks the
    opened phase made ready start now (instead of waiting for the periodic sweep)."""
    phase_boundary_crossed(mission=Mission.objects.get(pk=mission.pk), left=left, opened=advance.opened, how=how,
                           actor=actor)
    return advance


@transaction.atomic
def phase_recheck(*, phase: Phase, actor: Actor) -> Advance:
    """Run a phase's exit checks again (after a failure was fixed); if they pass it moves on like any pass."""
    require(can_manage, actor, phase.mission, doing="re-run a phase's checks",
            who_may=f"the Mission Owner of “{phase.mission.name}”")
    if phase.status not in {PhaseStatus.FAILED, PhaseStatus.PASSED, PhaseStatus.WAIVED}:
        # Its checks run when its tasks are done; the refusal says so as every refused transition does.
        raise InvalidTransition(entity="Phase", label=phase.name, from_status=phase.status,
                                to_status=PhaseStatus.CHECKING, allowed=sorted(PHASE_TRANSITIONS[phase.status]))
    advance = recheck_exit_criteria(phase=phase, actor=actor)
    phase.refresh_from_db(fields=["status"])
    left = [phase] if phase.status == PhaseStatus.PASSED else []
    return _go_on(advance, mission=phase.mission, actor=actor, left=[*left, *advance.passed], how="passed")


@transaction.atomic
def check_waive(*, result: CheckEvaluation, actor: User, reason: str) -> CheckEvaluation:
    """Accept a failed exit check with a reason. When every failure of the phase's latest evaluation is waived, the
    phase is waived and the next phase opens (in step mode the mission pauses there, as after a pass)."""
    require(can_manage, actor, result.mission, doing="waive a check",
            who_may=f"the Mission Owner of “{result.mission.name}”")
    still_failing = check_evaluation_waive(result=result, actor=actor, reason=reason)
    # The waiver above refused a check without a phase.
    phase = Phase.objects.select_for_update().get(pk=cast(int, result.phase_id))
    if not still_failing and phase.status == PhaseStatus.FAILED:
        phase_transition(phase=phase, to=PhaseStatus.WAIVED, actor=actor,
                         message=f"Every failed exit check of {phase.name} is waived.")
        advance = phases_advance(mission=phase.mission, actor=actor)
        _go_on(advance, mission=phase.mission, actor=actor, left=[phase, *advance.passed], how="waived")
    return result
