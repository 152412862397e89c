"""People in the loop: approve, reject, retry, cancel a task; answer an agent's question.

A person approves or rejects an agent's proposal (or their own task); a rejection re-runs the task with the
feedback in its context and re-opens the finished work downstream of it, without restarting the mission.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from agents import registry
from agents.models import Agent
from genesis.exceptions import DomainError
from history.services import Actor, history_record
from missions.permissions import can_act_on_task
from pipeline.expressions import ExpressionError, parse_expression
from pipeline.mapping import sql_answer
from tasks import services
from tasks.choices import QuestionStatus, RunStatus, TaskStatus
from tasks.dispatch import after_task_done, mission_reopen, task_rerun
from tasks.models import Question, Run, Task


def _require_person(*, task: Task, actor: Actor, verb: str) -> None:
    if actor is None or isinstance(actor, Agent) or not can_act_on_task(actor, task):
        who = getattr(actor, "get_username", lambda: "the system")()
        raise DomainError(f"{who} may not {verb} task {task.key}: only its owner or the Mission Owner may.",
                          field="actor", code="forbidden")


@transaction.atomic
def task_approve(*, task: Task, actor: Actor, note: str = "") -> Task:
    """A person accepts the task's work (an agent's proposal, or their own task): it is done, the mission moves on."""
    task = Task.objects.select_for_update(of=("self",)).select_related("mission", "owner_agent").get(pk=task.pk)
    _require_person(task=task, actor=actor, verb="approve")
    if task.status != TaskStatus.WAITING_APPROVAL:
        raise DomainError(f"Task {task.key} is {task.status}; only a task waiting for approval can be approved.",
                          field="status", code="invalid_transition")
    run = services.task_waiting_run(task)
    if run is not None:
        services.run_transition(run=run, to=RunStatus.SUCCEEDED, actor=actor, message=note or "Approved.")
    history_record(mission=task.mission, task=task, run=run, event="task.approved", actor=actor,
                   message=note or "Approved.", data={"note": note})
    services.task_transition(task=task, to=TaskStatus.DONE, actor=actor, run=run, message=note or "Approved.")
    agent = task.owner_agent
    if agent is not None and registry.is_registered(agent.kind):
        registry.get(agent.kind)().approved(task=task, run=run, actor=actor)
    after_task_done(task=task, actor=actor)
    return task


# How many tasks one "approve all" may name: a page shows far fewer; a bound keeps one request's work bounded.
APPROVE_ALL_MAX = 500


@dataclass(frozen=True)
class ApprovalOutcome:
    """What approving one task of an "approve all" came to: approved, or refused with the reason and its code."""

    ref: str  # the task as it was asked for: its key, or ``#id`` when no task answers to the id
    task: Task | None
    approved: bool
    reason: str = ""
    code: str = ""


def tasks_approve_all(*, tasks: QuerySet[Task], actor: Actor, refs: Sequence[int | str] | None = None,
                      note: str = "") -> list[ApprovalOutcome]:
    """Approve several tasks at once, each through ``task_approve`` in its own transaction, so that one refused (no
    longer waiting, not the actor's to approve) neither stops nor undoes the others; each refusal comes back with its
    reason. ``tasks`` is the scope the caller may see (one mission's tasks, or every visible mission's); ``refs``
    names the tasks, by id (an int) or by key (a str, when the scope is one mission), in the order they are
    reported. Without ``refs``: every task of the scope waiting for approval that the actor may approve."""
    if refs is None:
        waiting = tasks.filter(status=TaskStatus.WAITING_APPROVAL).select_related("mission", "owner_agent")
        chosen: list[tuple[str, Task | None]] = [
            (task.key, task) for task in waiting.order_by("mission_id", "position", "id")[:APPROVE_ALL_MAX]
            if actor is not None and not isinstance(actor, Agent) and can_act_on_task(actor, task)]
    else:
        unique = list(dict.fromkeys(refs))
        if len(unique) > APPROVE_ALL_MAX:
            raise DomainError(f"At most {APPROVE_ALL_MAX} tasks at once ({len(unique)} given).", field="tasks",
                              code="too_many")
        ids = [ref for ref in unique if isinstance(ref, int)]
        keys = [ref for ref in unique if isinstance(ref, str)]
        found = list(tasks.filter(pk__in=ids).select_related("mission", "owner_agent")) if ids else []
        found += list(tasks.filter(key__in=keys).select_related("mission", "owner_agent")) if keys else []
        by_id = {task.pk: task for task in found}
        by_key = {task.key: task for task in found if task.key in keys}
        chosen = [(f"#{ref}", by_id.get(ref)) if isinstance(ref, int) else (ref, by_key.get(ref)) for ref in unique]
    outcomes = []
    for ref, task in chosen:
        if task is None:
            outcomes.append(ApprovalOutcome(ref=ref, task=None, approved=False, code="not_found",
                                            reason="no such task waiting for you."))
            continue
        try:
            task_approve(task=task, actor=actor, note=note)
        except DomainError as error:
            outcomes.append(ApprovalOutcome(ref=task.key, task=task, approved=False, reason=error.message,
                                            code=error.code or "invalid"))
        else:
            outcomes.append(ApprovalOutcome(ref=task.key, task=task, approved=True))
    return outcomes


@transaction.atomic
def task_reject(*, task: Task, actor: Actor, feedback: str) -> Task:
    """A person rejects the task's work with written feedback: it runs again as a new attempt with the feedback in
    its context, and the finished work downstream of it re-opens. The mission is not restarted."""
    feedback = (feedback or "").strip()
    if not feedback:
        raise DomainError("Feedback is required: say what is wrong so the next attempt can fix it.",
                          field="feedback", code="required")
    task = Task.objects.select_for_update(of=("self",)).select_related("mission", "owner_agent").get(pk=task.pk)
    _require_person(task=task, actor=actor, verb="reject")
    if task.status not in {TaskStatus.WAITING_APPROVAL, TaskStatus.DONE}:
        raise DomainError(f"Task {task.key} is {task.status}; only work waiting for approval or done can be "
                          "rejected.", field="status", code="invalid_transition")
    run = services.task_waiting_run(task)
    if run is not None:
        services.run_transition(run=run, to=RunStatus.REJECTED, actor=actor, message=feedback)
    history_record(mission=task.mission, task=task, run=run, event="task.rejected", actor=actor,
                   message=feedback, data={"feedback": feedback})
    reason = f"Re-opened: upstream task {task.key} was rejected ({feedback})."
    reopened = services.tasks_reopen_downstream(task=task, actor=actor, reason=reason)
    services.phases_reopen(mission=task.mission, keys=[task.key, *reopened], actor=actor,
                           reason=f"Task {task.key} was rejected: the phase's exit criteria are checked again once "
                                  "its tasks are done.")
    mission_reopen(mission=task.mission, actor=actor, reason=f"Task {task.key} was rejected; work resumes.")
    task_rerun(task=task, actor=actor, message=f"Rejected: {feedback}")
    if reopened:
        history_record(mission=task.mission, task=task, event="task.downstream_reopened", actor=actor,
                       message=f"Re-opened downstream of {task.key}: {', '.join(reopened)}.",
                       data={"reopened": reopened})
    return task


@transaction.atomic
def task_retry(*, task: Task, actor: Actor) -> Task:
    """A person retries a failed (or cancelled) task: a new attempt with a fresh attempt budget."""
    task = Task.objects.select_for_update(of=("self",)).select_related("mission").get(pk=task.pk)
    _require_person(task=task, actor=actor, verb="retry")
    if task.status not in {TaskStatus.FAILED, TaskStatus.CANCELLED}:
        raise DomainError(f"Task {task.key} is {task.status}; only a failed or cancelled task can be retried.",
                          field="status", code="invalid_transition")
    mission_reopen(mission=task.mission, actor=actor, reason=f"Task {task.key} is retried.")
    if task.status == TaskStatus.CANCELLED:
        services.task_transition(task=task, to=TaskStatus.READY, actor=actor, message="Retried.")
    task_rerun(task=task, actor=actor, message="Retried by a person.")
    return task


@transaction.atomic
def task_cancel(*, task: Task, actor: Actor, reason: str = "") -> Task:
    """Stop a task: its live run is cancelled (the worker sees it at its next heartbeat and stops), questions close."""
    task = Task.objects.select_for_update(of=("self",)).select_related("mission").get(pk=task.pk)
    if actor is not None:
        _require_person(task=task, actor=actor, verb="cancel")
    reason = reason or "Cancelled."
    services.task_stop_live_work(task=task, actor=actor, reason=reason)
    services.task_transition(task=task, to=TaskStatus.CANCELLED, actor=actor, message=reason)
    return task


def answer_check(answer: str) -> None:
    """An answer written as SQL (``sql: ...``) must parse as one expression within the limits; the agent checks its
    columns and dry-runs it when the task runs again."""
    text = sql_answer(answer)
    if text is not None:
        try:
            parse_expression(text, dialect="sqlite", path="answer")
        except ExpressionError as error:
            raise DomainError(error.message, field="answer", code="invalid_expression") from None


@transaction.atomic
def question_answer(*, question: Question, actor: Actor, answer: str) -> Question:
    """A person answers an agent's question: the task runs again as a new attempt with the answer in context."""
    question = Question.objects.select_for_update(of=("self",)).select_related("task__mission").get(pk=question.pk)
    task = question.task
    answer = "" if answer is None else str(answer).strip()
    if not answer:
        raise DomainError("An answer is required.", field="answer", code="required")
    if question.options and answer not in question.options and not question.allows_free_answer:
        raise DomainError(f"Choose one of the offered answers: {', '.join(question.options)}.", field="answer",
                          code="invalid_choice")
    if question.allows_free_answer:
        answer_check(answer)
    if actor is None or isinstance(actor, Agent) or not (
        actor.pk == question.addressed_to_id or can_act_on_task(actor, task)
    ):
        raise DomainError("Only the person asked, the task's owner or the Mission Owner may answer.",
                          field="actor", code="forbidden")
    if question.status != QuestionStatus.OPEN:
        raise DomainError(f"This question is already {question.status}.", field="status", code="invalid_transition")
    services.question_transition(question=question, to=QuestionStatus.ANSWERED, actor=actor, message=answer,
                                 answer=answer, answered_by=actor, answered_at=timezone.now())
    locked_task = Task.objects.select_for_update(of=("self",)).select_related("mission").get(pk=task.pk)
    if question.run_id:
        run = Run.objects.get(pk=question.run_id)
        if run.status == RunStatus.WAITING:
            services.run_transition(run=run, to=RunStatus.ANSWERED, actor=actor, message=answer)
    if locked_task.status == TaskStatus.WAITING_INPUT and not locked_task.questions.filter(
        status=QuestionStatus.OPEN
    ).exists():
        task_rerun(task=locked_task, actor=actor, message=f"Answered: {answer}")
    return question
