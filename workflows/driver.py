"""Driving a mission from one process (``run_mission``, benchmarks, tests): run what is queued, decide what waits
for people when told to (``--auto-approve``), and say whether the mission waits on someone."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from missions.models import Mission
from tasks.choices import PhaseStatus, QuestionStatus, RunStatus, TaskStatus
from tasks.models import Question, Run, Task
from workflows.tasks import question_answer, task_approve


def pending_runs(mission: Mission) -> list[int]:
    now = timezone.now()
    return list(
        Run.objects.filter(task__mission=mission, status=RunStatus.QUEUED)
        .filter(Q(available_at__isnull=True) | Q(available_at__lte=now)).order_by("pk").values_list("pk", flat=True)
    )

def auto_decide(mission: Mission) -> int:
    """Approve what waits for approval and answer open questions with their default (``--auto-approve``),
    acting as the Mission Owner. Returns how many decisions were made."""
    decided = 0
    for task in Task.objects.filter(mission=mission, status=TaskStatus.WAITING_APPROVAL):
        task_approve(task=task, actor=mission.owner, note="Auto-approved (run_mission --auto-approve).")
        decided += 1
    for question in Question.objects.filter(mission=mission, status=QuestionStatus.OPEN):
        answer = question.default or (question.options[0] if question.options else "yes")
        question_answer(question=question, actor=mission.owner, answer=answer)
        decided += 1
    return decided

def waiting_on_people(mission: Mission) -> bool:
    return Task.objects.filter(
        mission=mission, status__in=[TaskStatus.WAITING_APPROVAL, TaskStatus.WAITING_INPUT]
    ).exists()

def phases_blocked(mission: Mission) -> bool:
    return mission.phases.filter(status=PhaseStatus.FAILED).exists()
