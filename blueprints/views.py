"""Launch a mission from a blueprint: suggested blueprints first, parameters pre-filled, a hint when the
objective reads like a title rather than an outcome."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from agents import llm
from blueprints import selectors
from blueprints.assist import suggest_launch
from blueprints.forms import PARAM_PREFIX, LaunchForm, objective_warning
from blueprints.models import LaunchSuggestion
from genesis.exceptions import DomainError
from genesis.htmx import is_fragment
from missions.views import _can_launch, page_login_required
from pipeline.selectors import missions_with_approved_mappings
from workflows.missions import mission_create_from_blueprint


def _model_on() -> bool:
    return llm.settings().enabled


@page_login_required
def mission_launch(request: HttpRequest) -> HttpResponse:
    if not _can_launch(request.user):
        raise PermissionDenied("You may not launch missions.")
    versions = selectors.blueprint_latest_versions()
    source = request.POST if request.method == "POST" else request.GET
    objective = source.get("objective", "")
    suggestions = selectors.blueprints_suggested_for(objective) if objective.strip() else []
    version = None
    wanted = source.get("version") or source.get("blueprint")
    if wanted:
        version = versions.filter(pk=wanted).first() if str(wanted).isdigit() else versions.filter(
            blueprint__slug=wanted).first()
    # Asking the model costs tokens and is recorded: a POST (a reload or a prefetch never asks again).
    asking = request.method == "POST" and bool(request.POST.get("suggest"))
    asked = suggest_launch(objective, list(versions), user=request.user) if asking else None
    proposed = asked if asked is not None and asked.version is not None else None
    if proposed is not None:
        version = proposed.version
    if version is None and suggestions:
        version = next((v for v in versions if v.pk == suggestions[0].version.pk), None)
    if version is None:
        version = versions.first()

    if is_fragment(request) and request.htmx.target == "objective-help":
        return render(request, "blueprints/htmx/objective_help.html", {
            "warning": objective_warning(objective), "suggestions": suggestions, "selected": version})

    initial_params = selectors.launch_initial_params(version=version) if version else {}
    if proposed is not None:
        initial_params.update(proposed.params)
    reusable = missions_with_approved_mappings(user=request.user)
    if request.method == "POST" and request.POST.get("change") != "blueprint" and not asking:
        form = LaunchForm(request.POST, request.FILES, versions=versions, version=version,
                          initial_params=initial_params, reusable=reusable)
        if form.is_valid():
            try:
                mission = mission_create_from_blueprint(
                    version=form.cleaned_data["version"], name=form.cleaned_data["name"],
                    objective=form.cleaned_data["objective"], owner=request.user, mode=form.cleaned_data["mode"],
                    params=form.params(), actor=request.user, start=form.cleaned_data["start_now"],
                    spec_file=form.cleaned_data.get("spec_file"),
                    from_mission=form.cleaned_data.get("from_mission") or None,
                    suggestion=form.cleaned_data.get("suggestion"),
                )
            except DomainError as error:
                field = (error.field or "").replace("params.", PARAM_PREFIX)
                shown = field in form.fields and not form.fields[field].widget.is_hidden
                form.add_error(field if shown else None, error.message)
            else:
                return redirect(reverse("missions:cockpit", args=[mission.pk]))
    else:
        kept = source.get("suggestion", "")
        initial = {"version": version.pk if version else None, "mode": "step", "start_now": True,
                   "objective": objective, "name": source.get("name", "") or (proposed.name if proposed else ""),
                   "suggestion": proposed.record.pk if proposed and proposed.record else (
                       int(kept) if kept.isdigit() else None)}
        form = LaunchForm(initial=initial, versions=versions, version=version, initial_params=initial_params,
                          reusable=reusable)
    suggested_ids = [s.version.pk for s in suggestions]
    ordered = [v for pk in suggested_ids for v in versions if v.pk == pk] + [
        v for v in versions if v.pk not in suggested_ids]
    context = {
        "form": form,
        "versions": ordered,
        "suggested": {s.version.pk: s for s in suggestions},
        "selected": version,
        "suggestions": suggestions,
        "warning": objective_warning(objective),
        "proposed": proposed,
        "suggest_asked": asking,
        "suggest_refused": asked.detail if asked is not None and asked.outcome == LaunchSuggestion.BUDGET_SPENT else "",
        "model_on": _model_on(),
    }
    status = 422 if request.method == "POST" and form.errors else 200
    return render(request, "blueprints/launch.html", context, status=status)
