"""Task pages and the decisions people make in place: approve, reject with feedback, retry, answer a question;
artifact previews and downloads; a run's log tail while it runs.

Each view reaches its object through the missions the person may see (another mission's object is 404) and
checks the role before a write (a stakeholder gets 403). Writes call the engine's services and answer an HTMX
request with the updated fragment and an ``HX-Trigger`` so the board refreshes at once.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from genesis.exceptions import DomainError
from genesis.htmx import go_to, is_fragment
from missions.models import Mission
from missions.permissions import can_act_on_task, can_view
from missions.views import page_login_required
from pipeline.selectors import approval_cards, question_tables
from tasks import selectors
from tasks.forms import AnswerForm, RejectForm
from tasks.models import Artifact, Question, Run, Task
from tasks.previews import artifact_preview
from workflows import tasks as task_workflows

CHANGED = "genesis:changed"  # the event the board, the counters and the inbox listen to


def _task_for(request: HttpRequest, pk: int) -> Task:
    return get_object_or_404(
        Task.objects.select_related("mission__owner", "owner_user", "owner_agent", "phase").filter(
            mission__in=Mission.objects.visible_to(request.user)
        ),
        pk=pk,
    )


def _changed(response: HttpResponse) -> HttpResponse:
    response["HX-Trigger"] = CHANGED
    return response


# --- task page ---------------------------------------------------------------------------------------


@page_login_required
@require_GET
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk)
    runs = list(task.runs.order_by("-attempt").defer("log"))
    questions = [q for q in selectors.open_questions(mission=task.mission) if q.task_id == task.pk]
    question_tables(questions)
    context = {
        "task": task,
        "mission": task.mission,
        "runs": runs,
        "depends_on": list(task.depends_on.only("id", "key", "title", "status")),
        "dependents": list(task.dependents.only("id", "key", "title", "status")),
        "artifacts": list(task.artifacts.select_related("task").order_by("name", "-version")),
        "history": list(selectors.mission_history(task.mission).filter(task=task)[:100]),
        "can_act": can_act_on_task(request.user, task),
        "questions": questions,
    }
    return render(request, "tasks/detail.html", context)


# --- decisions ---------------------------------------------------------------------------------------


def _decision_response(request: HttpRequest, task: Task, *, done: str = "", error: DomainError | None = None,
                       form=None, error_question: int | None = None) -> HttpResponse:
    """The approval card again: with the outcome after a decision, or with the error next to its field."""
    if not is_fragment(request):
        if error:
            messages.error(request, error.message)
        return redirect(_next_url(request, reverse("missions:cockpit", args=[task.mission_id])))
    task.latest_run = selectors.latest_runs([task.pk]).get(task.pk)
    task.run_artifacts = selectors.artifacts_of_runs([task.latest_run.pk]).get(task.latest_run.pk, []) if (
        task.latest_run) else []
    card = approval_cards([task], user=request.user)[0]
    context = {"card": card, "done": done, "error": error, "form": form, "error_question": error_question}
    response = render(request, "tasks/htmx/approval_card.html", context, status=422 if error else 200)
    return response if error else _changed(response)


def _next_url(request: HttpRequest, default: str) -> str:
    """Where a plain form post goes back to: the page it came from, if it is on this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


@page_login_required
@require_POST
def task_approve(request: HttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk)
    if not can_act_on_task(request.user, task):
        raise PermissionDenied("Only the task's owner or the Mission Owner can approve it.")
    note = request.POST.get("feedback", "").strip()[:2000]  # a note typed in the feedback box goes with it
    try:
        task_workflows.task_approve(task=task, actor=request.user, note=note)
    except DomainError as error:
        return _decision_response(request, task, error=error)
    task.refresh_from_db(fields=["status"])
    return _decision_response(request, task, done=f"Approved by {request.user.get_username()}.")


@page_login_required
@require_POST
def task_reject(request: HttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk)
    if not can_act_on_task(request.user, task):
        raise PermissionDenied("Only the task's owner or the Mission Owner can reject it.")
    form = RejectForm(request.POST)
    if not form.is_valid():
        error = DomainError(" ".join(form.errors.get("feedback", ["Feedback is required."])), field="feedback")
        return _decision_response(request, task, error=error, form=form)
    try:
        task_workflows.task_reject(task=task, actor=request.user, feedback=form.cleaned_data["feedback"])
    except DomainError as error:
        return _decision_response(request, task, error=error, form=form)
    task.refresh_from_db(fields=["status"])
    return _decision_response(request, task, done="Rejected with feedback; the task runs again with it.")


@page_login_required
@require_POST
def task_retry(request: HttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk)
    if not can_act_on_task(request.user, task):
        raise PermissionDenied("Only the task's owner or the Mission Owner can retry it.")
    try:
        task_workflows.task_retry(task=task, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    response = go_to(request, reverse("tasks:detail", args=[task.pk]))
    return _changed(response) if request.htmx else response


def _question_for(request: HttpRequest, pk: int):
    return get_object_or_404(
        Question.objects.select_related("task__mission", "mission", "addressed_to").filter(
            mission__in=Mission.objects.visible_to(request.user)
        ),
        pk=pk,
    )


@page_login_required
@require_POST
def question_answer(request: HttpRequest, pk: int) -> HttpResponse:
    question = _question_for(request, pk)
    if not (question.addressed_to_id == request.user.pk or can_act_on_task(request.user, question.task)):
        raise PermissionDenied("Only the person asked, the task's owner or the Mission Owner can answer.")
    form = AnswerForm(request.POST, question=question)
    error = None
    if form.is_valid():
        try:
            task_workflows.question_answer(question=question, actor=request.user, answer=form.cleaned_data["answer"])
            question.refresh_from_db()
        except DomainError as exc:
            error = exc
    else:
        error = DomainError(" ".join(form.errors.get("answer", ["An answer is required."])), field="answer")
    if not is_fragment(request):
        if error:
            messages.error(request, error.message)
        return redirect(_next_url(request, reverse("missions:cockpit", args=[question.mission_id])))
    if error:
        question_tables([question])  # the card again as it was shown, its table with it
    context = {"question": question, "error": error, "form": form, "can_work": True,
               "done": "" if error else f"Answered: {question.answer} (by {request.user.get_username()})."}
    response = render(request, "tasks/htmx/question_card.html", context, status=422 if error else 200)
    return response if error else _changed(response)


@page_login_required
@require_POST
def card_answer(request: HttpRequest, pk: int, question_pk: int) -> HttpResponse:
    """Answer a question shown on an approval card (an offered option, or free text the answer verb judges) and
    show the card again."""
    task = _task_for(request, pk)
    question = _question_for(request, question_pk)
    if question.mission_id != task.mission_id:
        raise Http404
    if not (question.addressed_to_id == request.user.pk or can_act_on_task(request.user, question.task)):
        raise PermissionDenied("Only the person asked, the task's owner or the Mission Owner can answer.")
    answer = (request.POST.get("answer_text", "").strip() or request.POST.get("answer", "").strip())[:5000]
    try:
        task_workflows.question_answer(question=question, actor=request.user, answer=answer)
    except DomainError as error:
        return _decision_response(request, task, error=error, error_question=question.pk)
    return _decision_response(request, task, done=f"Answered: {answer} (by {request.user.get_username()}).")


@page_login_required
@require_POST
def approve_all(request: HttpRequest) -> HttpResponse:
    """Approve every task shown (``task`` ids) through the one "approve all" verb, which approves each in its own
    transaction, and say which were approved and which were refused, and why. 403 when the person may approve none
    of them."""
    ids = []
    for value in request.POST.getlist("task")[:200]:
        if not value.isdigit():
            return HttpResponse(f"task: {value!r} is not a task id.", status=400)
        ids.append(int(value))
    visible = Task.objects.filter(mission__in=Mission.objects.visible_to(request.user))
    shown = visible.filter(pk__in=ids).select_related("mission")
    if not any(can_act_on_task(request.user, task) for task in shown):
        raise PermissionDenied("You may approve none of these tasks.")
    outcomes = task_workflows.tasks_approve_all(tasks=visible, actor=request.user, refs=ids)
    approved = [(o.ref, o.task.pk) for o in outcomes if o.approved and o.task is not None]
    refused = [(o.ref, o.reason) for o in outcomes if not o.approved]
    if not is_fragment(request):
        if approved:
            messages.success(request, f"Approved: {', '.join(key for key, _ in approved)}.")
        for key, reason in refused:
            messages.error(request, f"{key} not approved: {reason}")
        return redirect(_next_url(request, reverse("missions:my_work")))
    response = render(request, "tasks/htmx/approve_all_report.html", {"approved": approved, "refused": refused})
    return _changed(response) if approved else response


# --- runs and artifacts ------------------------------------------------------------------------------


@page_login_required
@require_GET
def run_log(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(
        Run.objects.select_related("task__mission").filter(
            task__mission__in=Mission.objects.visible_to(request.user)
        ),
        pk=pk,
    )
    lines = (run.log or "").splitlines()
    context = {"run": run, "tail": "\n".join(lines[-200:]), "skipped": max(0, len(lines) - 200),
               "live": run.status in {"queued", "running"}}
    template = "tasks/htmx/run_log.html" if is_fragment(request) else "tasks/run.html"
    return render(request, template, context)


def _artifact_for(request: HttpRequest, pk: int) -> Artifact:
    artifact = get_object_or_404(
        Artifact.objects.select_related("mission", "task", "run", "created_by_user", "created_by_agent"), pk=pk
    )
    if not can_view(request.user, artifact.mission):
        raise Http404
    return artifact


@page_login_required
@require_GET
def artifact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    artifact = _artifact_for(request, pk)
    context = {"artifact": artifact, "mission": artifact.mission, "preview": artifact_preview(artifact)}
    return render(request, "tasks/artifact.html", context)


@page_login_required
@require_GET
def artifact_download(request: HttpRequest, pk: int) -> HttpResponse:
    artifact = _artifact_for(request, pk)
    if artifact.url:
        return HttpResponseRedirect(artifact.url)
    try:
        handle = artifact.file.open("rb")
    except (OSError, ValueError):
        raise Http404("The file is missing from storage.") from None
    response = FileResponse(handle, as_attachment=True, filename=artifact.name,
                            content_type=artifact.content_type or "application/octet-stream")
    response["X-Content-Type-Options"] = "nosniff"
    return response
