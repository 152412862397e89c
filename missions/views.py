"""Mission pages: the missions list, the cockpit, the history timeline, "My work" and the stakeholder
dashboard, the Mission Owner's controls (launch, pause, resume, cancel) and builds into the mission's
environments.

Every view reads the mission through ``Mission.objects.visible_to`` (another mission is 404) and checks the
person's role before any write (a stakeholder gets 403). One URL serves a page and its HTMX fragments.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from agents import llm
from blueprints import selectors as blueprint_selectors
from blueprints.models import CheckEvaluation
from genesis.exceptions import DomainError
from genesis.fragments import Built, FragmentCache
from genesis.htmx import go_to, is_fragment
from history.choices import ActorKind
from missions import selectors
from missions.choices import SIGNOFF_STATUSES, MissionStatus, Role, SignoffDecision
from missions.filtersets import MissionFilterSet
from missions.models import Mission
from missions.permissions import can_create_missions, can_manage, can_sign_off, can_work_on, role_of
from pipeline import reports
from pipeline.dbt.services import environment_build_roles
from pipeline.models import Environment
from pipeline.selectors import approval_cards, environments_of, mapping_lineage, question_tables
from tasks import selectors as task_selectors
from tasks.choices import PhaseStatus, TaskStatus
from tasks.filtersets import HistoryFilterSet
from tasks.models import Phase
from tasks.previews import render_text
from tasks.timeline import mission_timeline
from workflows import checks as check_workflows
from workflows import environments as environment_workflows
from workflows import missions as mission_workflows


def page_login_required(view):
    """``login_required`` pointing at the people's sign-in page (the admin keeps its own)."""
    return login_required(view, login_url="login")


def mission_for(request: HttpRequest, pk: int) -> Mission:
    """The mission if the person may read it; 404 otherwise (no enumeration of other missions)."""
    return get_object_or_404(Mission.objects.visible_to(request.user).select_related("owner"), pk=pk)


def manager_required(view):
    """A Mission Owner's write: 404 for outsiders, 403 for anyone else who can read the mission."""

    @wraps(view)
    def wrapper(request, pk, *args, **kwargs):
        mission = mission_for(request, pk)
        if not can_manage(request.user, mission):
            raise PermissionDenied("Only the Mission Owner can do this.")
        return view(request, mission, *args, **kwargs)

    return wrapper


# --- missions list -----------------------------------------------------------------------------------


@page_login_required
@require_GET
def mission_list(request: HttpRequest) -> HttpResponse:
    filterset = MissionFilterSet(request.GET or None, queryset=selectors.missions_visible(request.user))
    paginator = Paginator(filterset.qs, 25)
    page = paginator.get_page(request.GET.get("page"))
    missions = task_selectors.missions_with_progress(list(page.object_list))
    task_selectors.missions_with_attention(missions, user=request.user)
    roles = selectors.roles_map(request.user, missions)
    for mission in missions:
        mission.my_role = roles.get(mission.pk)
    _attach_signoffs(missions)
    context = {
        "filterset": filterset,
        "page": page,
        "missions": missions,
        "owners": selectors.mission_owners_visible(request.user) if not is_fragment(request) else [],
        "querystring": _querystring_without_page(request),
        "can_launch": _can_launch(request.user),
    }
    template = "missions/htmx/list_table.html" if is_fragment(request) else "missions/list.html"
    return render(request, template, context)


def _querystring_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _can_launch(user) -> bool:
    return can_create_missions(user)


# --- cockpit -----------------------------------------------------------------------------------------

DECISIONS_SHOWN = 8

# The cockpit's panels that follow the mission's state, each built by ``CockpitPanels`` and kept rendered in the page
# cache (``genesis.fragments``) under the mission's history version: a page, a fragment or the live poller's answer
# asked for while nothing changed is served from there. An htmx request naming one (``HX-Target``) gets it alone.
PANELS = {
    "board": "missions/htmx/board.html",
    "decisions": "missions/htmx/decisions.html",
    "phases": "missions/htmx/phases.html",
    "recent-history": "missions/htmx/recent_history.html",
    "artifacts": "missions/htmx/artifacts.html",
    "success-criteria": "missions/htmx/success_criteria.html",
    "signoff": "missions/htmx/signoff.html",
    "graph": "missions/inc/task_graph.html",
    # What of the graph follows the mission live: the critical path written out, each node's status and run time.
    "task-graph-state": "missions/htmx/graph_state.html",
}
# The panels the live poller swaps: the graph's picture is drawn once, by the page, and then follows its state.
LIVE_PANELS = [name for name in PANELS if name != "graph"]
# The page's panels (its graph includes the graph's state).
PAGE_PANELS = [name for name in PANELS if name != "task-graph-state"]
# Fragments served alone besides the panels: built on every request (their data moves without a history entry).
COCKPIT_FRAGMENTS = {**{name: PANELS[name] for name in LIVE_PANELS}, "environments": "missions/htmx/environments.html"}
# A panel that shows a running attempt's log tail or run time so far is kept this long at most: those move without
# a history entry.
MOVING_SECONDS = 3


@page_login_required
@require_GET
def mission_cockpit(request: HttpRequest, pk: int) -> HttpResponse:
    mission = mission_for(request, pk)
    context = _cockpit_context(request, mission)
    target = request.htmx.target if is_fragment(request) else None
    if target == "environments":
        context["environments"] = _environments(request, mission)
        return render(request, COCKPIT_FRAGMENTS[target], context)
    version = selectors.history_version(mission.pk)
    panels = CockpitPanels(request, mission, context, version)
    if target in PANELS:
        return panels.response(HttpResponse(panels.render(target)))
    context.update(panels=panels.render_all(PAGE_PANELS), live_version=version,
                   llm_usage=_llm_usage(mission), environments=_environments(request, mission))
    return panels.response(render(request, "missions/cockpit.html", context))


@never_cache
@page_login_required
@require_GET
def mission_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The cockpit's one live mechanism: its poller sends the version of the mission's history it has seen
    (``since``); while it is the same, the answer is an empty 204 (three queries: the session, the mission, the
    version); otherwise every panel that follows the mission's state comes back to be swapped out of band, with the
    poller carrying the new version. Every change of state writes history, so that version is the page's."""
    mission = mission_for(request, pk)
    version = selectors.history_version(mission.pk)
    if request.GET.get("since") == version:
        return HttpResponse(status=204)
    context = _cockpit_context(request, mission)
    context.update(live_version=version, oob=True)
    panels = CockpitPanels(request, mission, context, version)
    context.update(panels=panels.render_all(LIVE_PANELS), environments=_environments(request, mission))
    return panels.response(render(request, "missions/htmx/live.html", context))


def _llm_usage(mission: Mission) -> object:
    """What the mission spent on a language model (one query, none when no model is configured)."""
    return llm.mission_usage(mission.pk) if llm.settings().enabled else None


def _cockpit_context(request: HttpRequest, mission: Mission) -> dict:
    role = role_of(request.user, mission)
    return {
        "mission": mission,
        "role": role,
        "role_label": _role_label(role, request.user),
        "can_manage": can_manage(request.user, mission),
        "can_work": can_work_on(request.user, mission),
        "live": not mission.is_finished,
        # Where a decision's plain form post comes back to: the cockpit, also when the poller rendered the form.
        "return_to": reverse("missions:cockpit", args=[mission.pk]),
        "status_choices": TaskStatus.choices,
    }


class CockpitPanels:
    """The cockpit's panels for one request, each rendered once per key and then served from the page cache. A key
    names the mission, its history version, whether the panel is swapped out of band, and what the viewer may do
    that the panel shows: whether they manage the mission (the waive and sign-off forms), and for the decisions,
    who they are (the cards they may decide, the questions addressed to them)."""

    def __init__(self, request: HttpRequest, mission: Mission, context: dict, version: str) -> None:
        self.request, self.mission, self.context, self.version = request, mission, context, version
        self.cache = FragmentCache(request, lifetime=settings.GENESIS_COCKPIT_CACHE_SECONDS,
                                   prefix=f"cockpit:{mission.pk}:{version}")
        self._board: task_selectors.Board | None = None
        self._phases: list[Phase] | None = None
        self._graph: dict | None = None

    def _viewer(self, name: str) -> str:
        user = self.request.user
        if name == "decisions":
            return f"u{user.pk}.{int(user.is_staff)}.{self.context['role'] or ''}"
        if name in {"phases", "signoff"}:
            return f"m{int(self.context['can_manage'])}"
        return ""

    def render(self, name: str) -> SafeString:
        key = f"{name}:{int(bool(self.context.get('oob')))}:{self._viewer(name)}"

        def build() -> Built:
            data, lifetime = self._build(name)
            return PANELS[name], {**self.context, **data}, lifetime

        return self.cache.render(key, build)

    def render_all(self, names: list[str]) -> dict[str, SafeString]:
        return {name.replace("-", "_"): self.render(name) for name in names}

    def response(self, response: HttpResponse) -> HttpResponse:
        response["X-Genesis-Cache"] = self.cache.outcome
        return response

    def _board_once(self) -> task_selectors.Board:
        if self._board is None:
            self._board = task_selectors.mission_board(self.mission)
        return self._board

    def _build(self, name: str) -> tuple[dict, int | None]:
        """The data of one panel, and a shorter lifetime if it shows what moves without history (its queries run
        only when the cache does not hold the panel)."""
        request, mission = self.request, self.mission
        if name == "board":
            board = self._board_once()
            # Task links are built from one reversed prefix, not one {% url %} per card.
            return ({"board": board, "task_prefix": reverse("tasks:detail", args=[0])[:-2]},
                    MOVING_SECONDS if board.running_runs else None)
        if name in {"graph", "task-graph-state"}:
            board = self._board_once()
            if self._graph is None:
                phases = self._phases if self._phases is not None else task_selectors.mission_phases(mission)
                self._graph = task_selectors.mission_graph(board, task_selectors.mission_edges(mission),
                                                           task_selectors.task_run_times(mission), phases)
            data = {"board": board, "graph": self._graph}
            if name == "task-graph-state":
                data["graph_state"] = task_selectors.graph_state(self._graph)
            return data, MOVING_SECONDS if board.running_runs else None
        if name == "decisions":
            # The cockpit shows the first few decisions; "My work" and the board list them all.
            approvals = task_selectors.approvals_waiting(mission=mission, limit=DECISIONS_SHOWN + 1)
            questions = task_selectors.open_questions(mission=mission, limit=DECISIONS_SHOWN + 1)
            cards = _cards(request, approvals[:DECISIONS_SHOWN])
            return {
                **cards,
                "questions": _with_tables(_not_on_cards(questions[:DECISIONS_SHOWN], cards["cards"])),
                "more_decisions": len(approvals) > DECISIONS_SHOWN or len(questions) > DECISIONS_SHOWN,
            }, None
        if name == "phases":
            self._phases = blueprint_selectors.phases_with_checks(mission)
            return {"phases": self._phases, "waive_enabled": True}, None
        if name == "artifacts":
            groups, cut = task_selectors.mission_artifact_groups(mission)
            return {"artifact_groups": groups, "artifacts_cut": cut}, None
        if name == "recent-history":
            return {"recent_history": list(task_selectors.mission_history(mission)[:25])}, None
        if name == "success-criteria":
            return {"success": blueprint_selectors.success_state(mission)}, None
        if name == "signoff":
            return _signoff_part(mission), None
        raise ValueError(f"No cockpit panel {name!r}.")


def _signoff_part(mission: Mission) -> dict:
    latest = selectors.latest_signoffs([mission.pk])[mission.pk]
    return {
        "signoffs": latest,
        "signoffs_missing": selectors.signoffs_missing(mission, latest),
        "signoff_open": mission.status in SIGNOFF_STATUSES,
        "closing": selectors.closing_entry(mission) if mission.status == "closed" else None,
    }


def _cards(request: HttpRequest, approvals: list) -> dict:
    """Approval cards of the tasks shown (the spec, its diff, the dry run, the questions about it), and the ones this
    person may decide, which "Approve all shown" approves."""
    cards = approval_cards(approvals, user=request.user)
    return {"cards": cards, "decidable_cards": [c for c in cards if c.can_decide]}


def _with_tables(questions: list) -> list:
    """A mapping agent's questions with the spec table they are about, the asked row marked (as on the cards)."""
    question_tables(questions)
    return questions


def _not_on_cards(questions: list, cards: list) -> list:
    """The questions not already asked on an approval card (each is answered in one place)."""
    shown = {q.pk for card in cards for q in card.open_questions}
    return [q for q in questions if q.pk not in shown]


def _environments(request: HttpRequest, mission: Mission) -> list:
    """The mission's environments (one query), each marked with whether this person may build in it."""
    role = role_of(request.user, mission)
    environments = list(environments_of(mission=mission))
    for environment in environments:
        environment.can_build = request.user.is_staff or role in environment_build_roles(environment.name)
    return environments


def _role_label(role: str | None, user) -> str:
    if role:
        return Role(role).label
    return "Staff (read)" if user.is_staff else ""


# --- history timeline and replay ---------------------------------------------------------------------


@page_login_required
@require_GET
def mission_history(request: HttpRequest, pk: int) -> HttpResponse:
    mission = mission_for(request, pk)
    valid_kinds = {k for k, _ in task_selectors.HISTORY_KINDS}
    kinds = [k for k in request.GET.getlist("kind") if k in valid_kinds]
    replay = request.GET.get("view") == "replay"
    entries = task_selectors.mission_history(mission, kinds=kinds, replay=replay, newest_first=not replay)
    # The API's filters, with the API's parameter names (task_key, actor_kind, actor, event, created_after, ...).
    filters = HistoryFilterSet(request.GET, queryset=entries)
    if filters.is_valid():
        entries = filters.qs
    else:
        entries = entries.none()
    page = Paginator(entries, 100).get_page(request.GET.get("page"))
    context = {
        "mission": mission,
        "page": page,
        "kinds": task_selectors.HISTORY_KINDS,
        "selected_kinds": kinds,
        "actor_kinds": ActorKind.choices,
        "filters": filters,
        "replay": replay,
        "querystring": _querystring_without_page(request),
    }
    if replay and not is_fragment(request):
        context["timeline"] = mission_timeline(mission)
    template = "missions/htmx/history_list.html" if is_fragment(request) else "missions/history.html"
    return render(request, template, context)


# --- column-level lineage -----------------------------------------------------------------------------


@page_login_required
@require_GET
def mission_lineage(request: HttpRequest, pk: int) -> HttpResponse:
    """Each target column of the mission's mapping specs traced back to its bronze source columns."""
    mission = mission_for(request, pk)
    specs = mapping_lineage(mission=mission)
    for spec in specs:
        spec.sql_preview = render_text(name="spec.sql", text=spec.sql or "", kind="sql") if spec.sql else None
    return render(request, "missions/lineage.html", {"mission": mission, "specs": specs})


# --- Mission Owner controls --------------------------------------------------------------------------

CONTROLS = {
    "launch": (mission_workflows.mission_launch, "Mission launched."),
    "pause": (mission_workflows.mission_pause, "Mission paused."),
    "resume": (mission_workflows.mission_resume, "Mission resumed."),
    "cancel": (mission_workflows.mission_cancel, "Mission cancelled."),
    "close": (mission_workflows.mission_close, "Mission closed: signed off."),
}


@page_login_required
@require_POST
@manager_required
def mission_control(request: HttpRequest, mission: Mission, action: str) -> HttpResponse:
    if action not in CONTROLS:
        raise PermissionDenied("Unknown action.")
    verb, done = CONTROLS[action]
    arguments = {"note": request.POST.get("note", "")} if action == "close" else {}
    try:
        verb(mission=mission, actor=request.user, **arguments)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return go_to(request, reverse("missions:cockpit", args=[mission.pk]))


@page_login_required
@require_POST
@manager_required
def phase_recheck(request: HttpRequest, mission: Mission, phase_pk: int) -> HttpResponse:
    phase = get_object_or_404(Phase, pk=phase_pk, mission=mission)
    if phase.status != PhaseStatus.FAILED:
        messages.error(request, f"Phase {phase.name} is {phase.get_status_display().lower()}; only a failed phase's "
                                "checks can be re-run.")
        return go_to(request, reverse("missions:cockpit", args=[mission.pk]))
    try:
        check_workflows.phase_recheck(phase=phase, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        phase.refresh_from_db(fields=["status"])
        messages.success(request, f"Checks of {phase.name} re-run: {phase.get_status_display().lower()}.")
    return go_to(request, reverse("missions:cockpit", args=[mission.pk]))


@page_login_required
@require_POST
@manager_required
def check_waive(request: HttpRequest, mission: Mission, check_pk: int) -> HttpResponse:
    result = get_object_or_404(CheckEvaluation, pk=check_pk, mission=mission)
    reason = request.POST.get("reason", "").strip()
    if not reason:
        messages.error(request, "reason: say why this check may be waived.")
        return go_to(request, reverse("missions:cockpit", args=[mission.pk]))
    try:
        check_workflows.check_waive(result=result, actor=request.user, reason=reason[:2000])
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Check waived; the reason is recorded in the history.")
    return go_to(request, reverse("missions:cockpit", args=[mission.pk]))


@page_login_required
@require_POST
def mission_signoff(request: HttpRequest, pk: int) -> HttpResponse:
    """A stakeholder's sign-off on the delivered outputs, from the dashboard: approve, or raise a concern with a
    note. 404 for another mission, 403 for anyone who is not one of its stakeholders."""
    mission = mission_for(request, pk)
    if not can_sign_off(request.user, mission):
        raise PermissionDenied("Only a stakeholder of this mission can sign off on it.")
    decision = request.POST.get("decision", "")
    try:
        signoff = mission_workflows.mission_signoff(mission=mission, actor=request.user, decision=decision,
                                                    note=request.POST.get("note", ""))
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Sign-off recorded on “{mission.name}”: {signoff.get_decision_display().lower()}.")
    return go_to(request, reverse("missions:dashboard") + f"#dash-{mission.pk}")


# --- environments -----------------------------------------------------------------------------------


@page_login_required
@require_POST
def environment_build(request: HttpRequest, pk: int, environment_pk: int) -> HttpResponse:
    """Build the mission's dbt project in one of its environments (a background job): 404 for another mission's
    environment, 403 for a stakeholder (and for a Task Owner in prod); the panel again, saying what happened."""
    mission = mission_for(request, pk)
    environment = get_object_or_404(Environment.objects.select_related("target"), pk=environment_pk, mission=mission)
    environment.mission = mission
    if not can_work_on(request.user, mission):
        raise PermissionDenied("Only the Mission Owner or a Task Owner can build in an environment.")
    message, error = "", None
    try:
        environment_workflows.environment_build(environment=environment, actor=request.user)
    except DomainError as refused:
        if refused.code == "permission_denied":
            raise PermissionDenied(refused.message) from None
        error = refused
    else:
        message = (f"Build of the dbt project in {environment.name} ({environment.target.name}) requested: it runs "
                   "in the background and its outcome appears in the history.")
    if not is_fragment(request):
        if error:
            messages.error(request, error.message)
        else:
            messages.success(request, message)
        return redirect(reverse("missions:cockpit", args=[mission.pk]))
    context = {"mission": mission, "environments": _environments(request, mission), "build_message": message,
               "build_error": error, "can_manage": can_manage(request.user, mission), "live": not mission.is_finished}
    response = render(request, "missions/htmx/environments.html", context, status=422 if error else 200)
    if not error:
        response["HX-Trigger"] = "genesis:changed"  # the recent history shows the request at once
    return response


# --- My work and the stakeholder dashboard -----------------------------------------------------------


@page_login_required
@require_GET
def my_work(request: HttpRequest) -> HttpResponse:
    cards = _cards(request, task_selectors.approvals_waiting(user=request.user))
    context = {
        **cards,
        "questions": _with_tables(_not_on_cards(task_selectors.open_questions(user=request.user), cards["cards"])),
        "assigned": task_selectors.tasks_assigned(request.user),
    }
    template = "missions/htmx/my_work_items.html" if is_fragment(request) else "missions/my_work.html"
    return render(request, template, context)


@page_login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Read-only: the missions the person follows as a stakeholder, their progress, check results, per-target data
    quality and reconciliation, freshness and deliverables. A fixed number of queries whatever the number of
    missions."""
    missions = task_selectors.missions_with_progress(list(selectors.missions_followed(request.user)))
    ids = [m.pk for m in missions]
    phases = task_selectors.phases_for_missions(ids)
    checks = blueprint_selectors.checks_for_missions(ids)
    artifacts = task_selectors.artifacts_for_missions(ids)
    outcomes = reports.mission_reports(ids)
    for mission in missions:
        mission.dash_phases = phases.get(mission.pk, [])
        by_phase: dict[int, list] = {}
        for check in checks.get(mission.pk, []):
            by_phase.setdefault(check.phase_id, []).append(check)
        for phase in mission.dash_phases:
            phase.dash_checks = by_phase.get(phase.pk, [])
        mission.deliverables = reports.deliverables([a for a in artifacts if a.mission_id == mission.pk])
        mission.reports = outcomes[mission.pk]
        mission.charts = [t.chart(f"rows-chart-{mission.pk}-{i}")
                          for i, t in enumerate(mission.reports.reconciliation) if t.months]
    _attach_signoffs(missions, user=request.user)
    return render(request, "missions/dashboard.html", {"missions": missions, "signoff_decisions": SignoffDecision})


def _attach_signoffs(missions: list[Mission], *, user=None) -> None:
    """Each mission's latest sign-off per stakeholder (one query, none when no mission has come as far as a
    sign-off) and, on a stakeholder's dashboard, who must sign, their own latest sign-off and whether they may
    sign now."""
    signed = [m.pk for m in missions if m.completed_at or m.status in {*SIGNOFF_STATUSES, MissionStatus.CLOSED}]
    latest = selectors.latest_signoffs(signed) if signed else {}
    required = selectors.signoffs_required([m.pk for m in missions]) if user is not None else {}
    for mission in missions:
        mission.latest_signoffs = latest.get(mission.pk, [])
        if user is not None:
            mission.signoffs_required = required.get(mission.pk, [])
            mission.my_signoff = next((s for s in mission.latest_signoffs if s.user_id == user.pk), None)
            mission.signoff_open = mission.status in SIGNOFF_STATUSES
            mission.my_signoff_required = user.get_username() in mission.signoffs_required

