"""One function per workflow verb: each verb driven through the admin, the pages and the API records the same history
events and leaves the mission in the same state (tasks dispatched, runs cancelled, phases opened).

Every scenario is built afresh for each surface; the verb is done by the Mission Owner on the pages and the API, by
a staff member in the admin. What is compared is the sequence of (event, task, from, to) the verb recorded, and the
statuses of the mission, its phases, tasks and runs afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from blueprints.models import CheckEvaluation
from history.models import HistoryEntry
from missions import services as mission_services
from missions.choices import MissionStatus
from missions.models import Mission
from pipeline.dbt.services import environment_set
from pipeline.models import Environment
from tasks import services as task_services
from tasks.choices import PhaseStatus, TaskStatus
from tasks.models import Phase, Question, Run, Task
from tests.factories import AgentFactory, ConnectionFactory
from workflows import missions as mission_workflows
from workflows import tasks as task_workflows

pytestmark = pytest.mark.django_db

NEVER = {"type": "artifact_exists", "params": {"name": "never-*.txt"}, "description": "A never-made artifact"}


@dataclass
class Scene:
    mission: Mission
    target: object  # what the verb acts on: the mission, a task, a question, a check result, a phase, an environment


def _mission(lead, *, tasks: dict[str, dict], edges=(), phases=(("Work", []),), launch=False, run_inline=None):
    mission = mission_services.mission_create(name="Verbs", objective="Each verb does the same everywhere.",
                                              owner=lead)
    agent = AgentFactory(name="NoopAgent", kind="noop")
    phase_rows = [task_services.phase_create(mission=mission, order=i + 1, name=name, exit_criteria=criteria)
                  for i, (name, criteria) in enumerate(phases)]
    made = {}
    for key, spec in tasks.items():
        owner = {"owner_user": lead} if spec.get("person") else {"owner_agent": agent}
        made[key] = task_services.task_create(mission=mission, key=key, title=key, config=spec.get("config", {}),
                                              phase=phase_rows[spec.get("phase", 0)],
                                              max_attempts=spec.get("max_attempts", 3), **owner)
    for child, parent in edges:
        task_services.dependency_add(task=made[child], depends_on=made[parent])
    if launch:
        run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    return mission, made


def _state(mission: Mission) -> dict:
    mission.refresh_from_db()
    return {
        "mission": mission.status,
        "phases": list(Phase.objects.filter(mission=mission).order_by("order").values_list("name", "status")),
        "tasks": dict(Task.objects.filter(mission=mission).values_list("key", "status")),
        "runs": sorted(Run.objects.filter(task__mission=mission).values_list("task__key", "attempt", "status")),
        "questions": sorted(Question.objects.filter(mission=mission).values_list("task__key", "status")),
    }


def _events_since(mission: Mission, mark: int) -> list[tuple]:
    return list(HistoryEntry.objects.filter(mission=mission, pk__gt=mark).order_by("pk")
                .values_list("event", "task__key", "from_status", "to_status"))


def _api(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _admin_action(client, model, action: str, ids: list[int], **extra):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return client.post(url, {"action": action, "_selected_action": ids, **extra}, follow=True)


# --- the scenarios: how to reach the state a verb starts from ---------------------------------------------------

def draft(lead, run_inline):
    mission, _ = _mission(lead, tasks={"a": {}, "b": {"person": True}}, edges=[("b", "a")])
    return Scene(mission, mission)


def active(lead, run_inline):
    mission, _ = _mission(lead, tasks={"a": {"config": {"needs_approval": "Look at this"}}}, launch=True,
                          run_inline=run_inline)
    return Scene(mission, mission)


def paused(lead, run_inline):
    scene = active(lead, run_inline)
    run_inline(mission_workflows.mission_pause, mission=scene.mission, actor=lead)
    return scene


def completed(lead, run_inline):
    mission, made = _mission(lead, tasks={"review": {"person": True}}, launch=True, run_inline=run_inline)
    run_inline(task_workflows.task_approve, task=made["review"], actor=lead)
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.COMPLETED
    return Scene(mission, mission)


def proposal(lead, run_inline):
    """An agent proposes and waits for approval; a dependent waits behind it."""
    mission, made = _mission(lead, tasks={"map": {"config": {"needs_approval": "Mapping v1"}}, "build": {}},
                             edges=[("build", "map")], launch=True, run_inline=run_inline)
    assert Task.objects.get(pk=made["map"].pk).status == TaskStatus.WAITING_APPROVAL
    return Scene(mission, made["map"])


def question(lead, run_inline):
    mission, made = _mission(lead, tasks={"ask": {"config": {"ask": "Which key?", "options": ["A", "B"]}}},
                             launch=True, run_inline=run_inline)
    return Scene(mission, Question.objects.get(task=made["ask"]))


def failed_task(lead, run_inline):
    """A task that failed its only attempt; a retry gets a fresh attempt budget, and succeeds."""
    mission, made = _mission(lead, tasks={"flaky": {"config": {"fail_attempts": 1}, "max_attempts": 1}},
                             launch=True, run_inline=run_inline)
    flaky = Task.objects.get(pk=made["flaky"].pk)
    assert flaky.status == TaskStatus.FAILED
    return Scene(mission, flaky)


def failed_gate(lead, run_inline):
    """Phase one's only task is done but its exit check fails: the gate is closed, phase two waits."""
    mission, _ = _mission(lead, tasks={"a": {}, "b": {"phase": 1}}, edges=[("b", "a")],
                          phases=(("Load", [NEVER]), ("Ship", [])), launch=True, run_inline=run_inline)
    assert Phase.objects.get(mission=mission, order=1).status == PhaseStatus.FAILED
    return Scene(mission, CheckEvaluation.objects.get(mission=mission, passed=False))


def environment(lead, run_inline):
    mission, _ = _mission(lead, tasks={"a": {}})
    env = environment_set(mission=mission, name="dev", target=ConnectionFactory(purpose="target"),
                          actor=lead)
    return Scene(mission, env)


# --- the verbs, each through every surface it has ------------------------------------------------------------------

def _page(path: Callable[[Scene], str], data=None):
    def do(scene, *, client, **_):
        return client.post(path(scene), data or {})
    return do


def _rest(path: Callable[[Scene], str], data=None):
    def do(scene, *, api, **_):
        return api.post(path(scene), data or {}, format="json")
    return do


def _admin(model, action, ids: Callable[[Scene], list[int]], **extra):
    def do(scene, *, admin_client, **_):
        return _admin_action(admin_client, model, action, ids(scene), **extra)
    return do


def _mission_verb(verb):
    return {
        "page": _page(lambda s: f"/missions/{s.mission.pk}/{verb}/"),
        "api": _rest(lambda s: f"/api/v1/missions/{s.mission.pk}/{verb}/"),
        "admin": _admin(Mission, {"launch": "action_launched", "pause": "action_paused", "resume": "action_resumed",
                                  "cancel": "action_cancelled", "close": "action_closed"}[verb],
                        lambda s: [s.mission.pk]),
    }


VERBS = {
    "launch": (draft, _mission_verb("launch")),
    "pause": (active, _mission_verb("pause")),
    "resume": (paused, _mission_verb("resume")),
    "cancel": (active, _mission_verb("cancel")),
    "close": (completed, _mission_verb("close")),
    "approve": (proposal, {
        "page": _page(lambda s: f"/tasks/{s.target.pk}/approve/"),
        "api": _rest(lambda s: f"/api/v1/tasks/{s.target.pk}/approve/"),
        "admin": _admin(Task, "action_approved", lambda s: [s.target.pk]),
    }),
    "reject": (proposal, {
        "page": _page(lambda s: f"/tasks/{s.target.pk}/reject/", {"feedback": "Use the other key"}),
        "api": _rest(lambda s: f"/api/v1/tasks/{s.target.pk}/reject/", {"feedback": "Use the other key"}),
    }),
    "retry": (failed_task, {
        "page": _page(lambda s: f"/tasks/{s.target.pk}/retry/"),
        "api": _rest(lambda s: f"/api/v1/tasks/{s.target.pk}/retry/"),
        "admin": _admin(Task, "action_retried", lambda s: [s.target.pk]),
    }),
    "cancel task": (proposal, {
        "api": _rest(lambda s: f"/api/v1/tasks/{s.target.pk}/cancel/", {"reason": "Not needed"}),
        "admin": _admin(Task, "action_cancelled", lambda s: [s.target.pk]),
    }),
    "answer": (question, {
        "page": _page(lambda s: f"/questions/{s.target.pk}/answer/", {"answer": "B"}),
        "api": _rest(lambda s: f"/api/v1/questions/{s.target.pk}/answer/", {"answer": "B"}),
    }),
    "waive": (failed_gate, {
        "page": _page(lambda s: f"/missions/{s.mission.pk}/checks/{s.target.pk}/waive/", {"reason": "Known gap"}),
        "api": _rest(lambda s: f"/api/v1/check-results/{s.target.pk}/waive/", {"reason": "Known gap"}),
        "admin": lambda s, *, admin_client, **_: admin_client.post(
            reverse("admin:blueprints_checkevaluation_waive", args=[s.target.pk]), {"reason": "Known gap"}),
    }),
    "recheck": (failed_gate, {
        "page": _page(lambda s: f"/missions/{s.mission.pk}/phases/{s.target.phase_id}/recheck/"),
        "api": _rest(lambda s: f"/api/v1/phases/{s.target.phase_id}/recheck/"),
        "admin": _admin(CheckEvaluation, "rerun_phase_checks", lambda s: [s.target.pk]),
    }),
    "build environment": (environment, {
        "page": _page(lambda s: f"/missions/{s.mission.pk}/environments/{s.target.pk}/build/"),
        "api": _rest(lambda s: f"/api/v1/environments/{s.target.pk}/build/"),
        "admin": _admin(Environment, "action_build_now", lambda s: [s.target.pk]),
    }),
}


@pytest.fixture
def surfaces(client, lead, admin_user, django_capture_on_commit_callbacks):
    """``do(verb, surface)``: build the verb's scenario afresh, do the verb there, return what it recorded and the
    state it left."""

    def run_inline(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(**kwargs)

    def do(verb: str, surface: str):
        setup, ways = VERBS[verb]
        scene = setup(lead, run_inline)
        mark = HistoryEntry.objects.filter(mission=scene.mission).order_by("-pk").values_list("pk", flat=True)[0]
        client.force_login(lead)
        admin_client = type(client)()
        admin_client.force_login(admin_user)
        with django_capture_on_commit_callbacks(execute=True):
            response = ways[surface](scene, client=client, api=_api(lead), admin_client=admin_client)
        assert response.status_code < 400, (verb, surface, response.status_code, response.content[:500])
        return _events_since(scene.mission, mark), _state(scene.mission)

    return do


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_surface_of_a_verb_records_the_same_events_and_leaves_the_same_state(surfaces, verb):
    results = {surface: surfaces(verb, surface) for surface in VERBS[verb][1]}
    reference_surface, (events, state) = next(iter(results.items()))
    assert events, f"{verb} through {reference_surface} recorded nothing"
    for surface, (other_events, other_state) in results.items():
        assert other_events == events, (verb, surface)
        assert other_state == state, (verb, surface)


def test_launching_from_the_admin_opens_the_first_phase_and_dispatches_its_ready_tasks(surfaces):
    """The admin's 'Launch selected missions' used to flip the status only: every task stayed pending forever."""
    events, state = surfaces("launch", "admin")
    assert state["mission"] == MissionStatus.ACTIVE
    assert state["phases"] == [("Work", PhaseStatus.OPEN)]
    assert state["tasks"]["a"] == TaskStatus.DONE and state["tasks"]["b"] == TaskStatus.WAITING_APPROVAL
    assert ("phase.open", None, "pending", "open") in events
    assert ("run.succeeded", "a", "running", "succeeded") in events


def test_cancelling_from_the_admin_cancels_live_runs_and_open_work(surfaces):
    events, state = surfaces("cancel", "admin")
    assert state["mission"] == MissionStatus.CANCELLED
    assert state["tasks"] == {"a": TaskStatus.CANCELLED}
    assert state["runs"] == [("a", 1, "cancelled")]
    assert ("run.cancelled", "a", "waiting", "cancelled") in events
