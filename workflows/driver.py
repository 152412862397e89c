"""Driving a mission from one process (``run_mission``, benchmarks, tests): run what is queued, decide what waits
for people when told to (``--auto-approve``), and say whether the mission waits on someone."""

from __future__ import annotations

from django.db.models import Max, Q
from django.utils import timezone

from history.models import HistoryEntry
from missions.models import Mission
from tasks.choices import PhaseStatus, QuestionStatus, RunStatus, TaskStatus
from tasks.models import Question, Run, Task
from workflows.tasks import question_answer, task_approve


def change_mark(mission: Mission) -> int | None:
    """The mission's newest history entry. Every change to the mission, its tasks, runs and questions writes one in
    the change's own transaction, so while the mark stays the same there is nothing new to start or decide, except a
    run whose delay has passed since (``available_at``), or an entry whose transaction committed after a newer one's
    (ids are handed out before commit): ``run_mission`` also looks at everything twice a second for those."""
    last: int | None = HistoryEntry.objects.filter(mission=mission).aggregate(last=Max("id"))["last"]
    return last


def pending_runs(mission: Mission, *, kept: bool = True) -> list[int]:
    """The mission's queued runs that are due, oldest first. ``kept=False`` leaves out those never handed to the
    queue (``enqueued_at`` unset): a worker that recorded the run before them keeps such a run for itself and claims
    it next (``tasks`` point 4), so a driver with runs in flight leaves them to it."""
    now = timezone.now()
    runs = Run.objects.filter(task__mission=mission, status=RunStatus.QUEUED)
    if not kept:
        runs = runs.filter(enqueued_at__isnull=False)
    return list(runs.filter(Q(available_at__isnull=True) | Q(available_at__lte=now)).order_by("pk")
                .values_list("pk", flat=True))

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

def question_key(question: Question) -> str:
    """The key an answers file uses for a question: ``TARGET.COLUMN`` (or ``CHILD->PARENT``), from its context, else
    the text before the first colon."""
    key = (question.context or {}).get("column") if isinstance(question.context, dict) else None
    return str(key or question.text.split(":", 1)[0]).strip()


def answers_text(value: object) -> str:
    """An answers file's value as the answer text: ``{sql: "..."}`` travels as ``sql: ...``."""
    if isinstance(value, dict) and set(value) == {"sql"} and isinstance(value["sql"], str):
        return f"sql: {value['sql'].strip()}"
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value).strip()
    raise ValueError('an answer is TABLE.COLUMN, {sql: "..."}, TABLE_A.col = TABLE_B.col or none')


def answer_key(key: str, keys: dict[str, str] | set[str]) -> str:
    """The file's key for a question keyed ``key``: itself, else, for a question about one part of a column
    (``TARGET.COLUMN.sum``: which source column a sum adds up), the column's ``TARGET.COLUMN`` as the documented
    form says. Relationship keys (``CHILD->PARENT``) are only ever matched whole."""
    if key in keys or "->" in key:
        return key
    parts = key.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else key


def question_line(question: Question) -> str:
    """A question as one line naming its key, for a person to write an answers file from."""
    key, text = question_key(question), question.text.strip()
    return text if text.upper().startswith(key.upper() + ":") else f"{key}: {text}"


def answer_from(mission: Mission, answers: dict[str, str], used: dict[str, int]) -> tuple[int, list[Question]]:
    """Answer the mission's open questions from ``answers`` (keys matched case-insensitively), as the Mission
    Owner. Returns how many were answered and the questions the file cannot answer: no key for them, or their key
    asked again after its answer was given twice (the answer was not usable)."""
    by_key = {k.upper(): v for k, v in answers.items()}
    answered, unanswerable = 0, []
    for question in Question.objects.filter(mission=mission, status=QuestionStatus.OPEN).order_by("pk"):
        key = answer_key(question_key(question).upper(), by_key)
        if key not in by_key or used.get(key, 0) >= 2:
            unanswerable.append(question)
            continue
        used[key] = used.get(key, 0) + 1
        question_answer(question=question, actor=mission.owner, answer=by_key[key])
        answered += 1
    return answered, unanswerable


def waiting_on_people(mission: Mission) -> bool:
    return Task.objects.filter(
        mission=mission, status__in=[TaskStatus.WAITING_APPROVAL, TaskStatus.WAITING_INPUT]
    ).exists()

def phases_blocked(mission: Mission) -> bool:
    return mission.phases.filter(status=PhaseStatus.FAILED).exists()
