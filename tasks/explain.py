"""Plain-language explanations of failures, when a language model is configured (``agents.llm``).

A failed task's last attempt, or a phase whose exit checks failed, is explained after the fact by a background job:
the engine only enqueues it (after its transaction commits), so a slow or absent model never holds a worker that
runs tasks, and without a model nothing at all happens. The explanation is a history entry beside the evidence
(``run.explained``, ``check.explained``) and the whole exchange an artifact; it never changes a status."""

from __future__ import annotations

import json
import logging
from typing import Any

import django_q.tasks
from django.db import transaction

from agents.llm import Assistant, settings
from history.services import history_record
from tasks.models import Run
from tasks.services import artifact_create

logger = logging.getLogger(__name__)

EXPLANATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["explanation"],
    "properties": {
        "explanation": {"type": "string", "minLength": 1, "maxLength": 1200},
        "likely_cause": {"type": "string", "maxLength": 400},
        "next_step": {"type": "string", "maxLength": 400},
    },
}
SYSTEM = ("You explain failures of a data pipeline to the data engineer who owns it, in plain language, in two to "
          "four sentences, from the evidence given and nothing else. Say what failed, the likely cause, and one "
          "next step. If the evidence does not say, say so. Answer with a JSON object: "
          '{"explanation": "...", "likely_cause": "...", "next_step": "..."}.')


def explain_later(job: str, pk: int) -> None:
    """Enqueue ``job`` (a dotted path: ``tasks.jobs.run_explain``, ``blueprints.jobs.phase_explain``) for ``pk``
    once the current transaction commits, if a model is configured."""
    if not settings().enabled:
        return

    def enqueue() -> None:
        try:
            django_q.tasks.async_task(job, pk, task_name=f"{job.rsplit('.', 1)[-1]}-{pk}")
        except Exception:  # an explanation is a nicety: a queue fault must not fail the engine's step
            logger.exception("could not enqueue %s for %s", job, pk)

    transaction.on_commit(enqueue)


def explanation_text(data: dict[str, Any]) -> str:
    parts = [str(data.get("explanation") or "").strip()]
    for label, key in (("Likely cause", "likely_cause"), ("Next step", "next_step")):
        if data.get(key):
            parts.append(f"{label}: {str(data[key]).strip()}")
    return "\n".join(p for p in parts if p)


def run_explain(run_id: int) -> str:
    """Explain why an attempt failed, from its error, the end of its log and what the task was to do."""
    run = Run.objects.select_related("task__mission").filter(pk=run_id).first()
    if run is None or not run.error:
        return "nothing to explain"
    task, mission = run.task, run.task.mission
    log_tail = "\n".join((run.log or "").splitlines()[-40:])[-6000:]
    evidence = (f"Task {task.key}: {task.title}\nWhat it must do: {task.description[:1500]}\n"
                f"Acceptance criteria: {task.acceptance_criteria}\nAttempt {run.attempt} failed with: "
                f"{run.error[:3000]}\nEnd of its log:\n{log_tail}")
    assistant = Assistant(mission_id=mission.pk, task_id=task.pk, run_id=run.pk)
    exchange = assistant.ask("explain a failed run", [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": evidence}], EXPLANATION_SCHEMA)
    store_exchange(exchange.record(), mission=mission, task=task, run=run, name=f"llm-explain-run-{run.pk}.json")
    if not exchange.ok or exchange.data is None:
        return exchange.outcome
    with transaction.atomic():
        history_record(mission=mission, task=task, run=run, event="run.explained",
                       message=explanation_text(exchange.data),
                       data={"model": exchange.model, "tokens": exchange.tokens, "suggested_by": "language model"})
    return "explained"


def store_exchange(record: dict[str, Any], **where: Any) -> None:
    if record["outcome"] == "disabled":
        return
    artifact_create(kind="report", file=json.dumps(record, indent=2, default=str).encode(),
                    content_type="application/json", on_finished_mission=True, **where)
