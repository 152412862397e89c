"""The engine, driven in-process (django-q2 ``sync`` mode runs each queued run at once, after its commit)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from agents.base import Succeeded
from agents.connectors.base import DEFAULT_TIMEOUT_SECONDS, default_timeout
from agents.noop import NoopAgent
from genesis.exceptions import DomainError
from history.models import HistoryEntry
from missions.choices import MissionMode, MissionStatus
from missions.models import Mission
from tasks import queue, recovery, runtime, services, timing
from tasks.choices import PhaseStatus, QuestionStatus, RunStatus, TaskStatus
from tasks.models import Notification, Question, Run, Task
from tests.factories import AgentFactory
from tests.tasks.queue import clear as clear_queue
from tests.tasks.queue import deliveries, messages
from workflows import driver
from workflows import missions as mission_workflows
from workflows import tasks as task_workflows

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_inline(django_capture_on_commit_callbacks):
    """Run a callable and every queued run, notification and dispatch it sets off, to the end."""

    def go(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(**kwargs)

    return go


def make_tasks(mission, agent, specs, edges=()):
    tasks = {}
    for key, config in specs.items():
        tasks[key] = services.task_create(mission=mission, key=key, title=key, owner_agent=agent, config=config)
    for child, parent in edges:
        services.dependency_add(task=tasks[child], depends_on=tasks[parent])
    return tasks


def statuses(mission):
    return dict(Task.objects.filter(mission=mission).values_list("key", "status"))


def refresh(obj):
    obj.refresh_from_db()
    return obj


def test_a_diamond_runs_each_task_once_in_order_and_completes(mission, agent, lead, run_inline):
    make_tasks(mission, agent, {"a": {}, "b": {}, "c": {}, "d": {}},
               edges=[("b", "a"), ("c", "a"), ("d", "b"), ("d", "c")])
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert set(statuses(mission).values()) == {TaskStatus.DONE}
    assert refresh(mission).status == MissionStatus.COMPLETED
    runs = Run.objects.filter(task__mission=mission)
    assert runs.count() == 4
    assert set(runs.values_list("status", flat=True)) == {RunStatus.SUCCEEDED}
    started = {r.task.key: r.started_at for r in runs.select_related("task")}
    finished = {r.task.key: r.finished_at for r in runs.select_related("task")}
    assert finished["a"] <= started["b"] and finished["a"] <= started["c"]
    assert max(finished["b"], finished["c"]) <= started["d"]
    # every state change is in history, in order, for each task
    d_events = list(HistoryEntry.objects.filter(task__key="d", task__mission=mission, event__startswith="task.")
                    .values_list("event", flat=True))
    assert d_events == ["task.created", "task.ready", "task.queued", "task.running", "task.done"]
    assert HistoryEntry.objects.filter(mission=mission, event="mission.completed").count() == 1


def test_claiming_twice_runs_once_and_records_the_refusal(mission, agent, lead, run_inline):
    make_tasks(mission, agent, {"a": {}})
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    run = Run.objects.get(task__mission=mission)
    assert runtime.execute_run(run.pk) == "skipped"
    assert Run.objects.filter(task__mission=mission).count() == 1
    assert HistoryEntry.objects.filter(run=run, event="run.claim_refused").count() == 1


def test_a_failing_task_is_retried_as_new_attempts_then_succeeds(mission, agent, lead, run_inline):
    make_tasks(mission, agent, {"a": {"fail_attempts": 2}})
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    runs = list(Run.objects.filter(task__mission=mission).order_by("attempt").values_list("attempt", "status"))
    assert runs == [(1, RunStatus.FAILED), (2, RunStatus.FAILED), (3, RunStatus.SUCCEEDED)]
    assert HistoryEntry.objects.filter(mission=mission, event="run.retry_scheduled").count() == 2
    assert refresh(mission).status == MissionStatus.COMPLETED


def test_a_task_that_always_fails_stops_at_max_attempts_and_the_owner_is_told(mission, agent, lead, run_inline):
    mission.escalation_emails = ["oncall@example.com"]
    mission.save()
    tasks = make_tasks(mission, agent, {"a": {"raise_attempts": 99}, "b": {}}, edges=[("b", "a")])
    services.task_update(task=tasks["a"], actor=lead, max_attempts=2)
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert statuses(mission) == {"a": TaskStatus.FAILED, "b": TaskStatus.PENDING}
    runs = Run.objects.filter(task=tasks["a"]).order_by("attempt")
    assert [r.status for r in runs] == [RunStatus.FAILED, RunStatus.FAILED]
    assert "RuntimeError: noop told to raise" in runs[0].error
    assert "Traceback" in runs[0].log  # an unexpected exception is a failed outcome with its traceback
    assert refresh(mission).status == MissionStatus.FAILED
    sent = Notification.objects.filter(mission=mission, event="task.failed")
    assert {n.target for n in sent} == {"oncall@example.com", "lead@example.com"}
    assert {n.status for n in sent} == {"sent"}
    assert any("Task a failed" in m.subject for m in mail.outbox)
    # a person retries it with a fresh budget: the mission goes on
    run_inline(task_workflows.task_retry, task=tasks["a"], actor=lead)
    assert refresh(tasks["a"]).status == TaskStatus.FAILED  # it raises every time
    services.task_update(task=tasks["a"], actor=lead, config={})
    run_inline(task_workflows.task_retry, task=tasks["a"], actor=lead)
    assert statuses(mission) == {"a": TaskStatus.DONE, "b": TaskStatus.DONE}
    assert refresh(mission).status == MissionStatus.COMPLETED


def test_a_persons_task_waits_in_their_inbox_until_approved(mission, agent, lead, analyst, run_inline):
    a = services.task_create(mission=mission, key="review", title="Review the mapping", owner_user=analyst)
    b = services.task_create(mission=mission, key="build", title="Build", owner_agent=agent)
    services.dependency_add(task=b, depends_on=a)
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert statuses(mission) == {"review": TaskStatus.WAITING_APPROVAL, "build": TaskStatus.PENDING}
    assert Notification.objects.filter(task=a, target="analyst@example.com").exists()
    with pytest.raises(DomainError, match="may not approve"):
        task_workflows.task_approve(task=a, actor=AgentFactory(name="Other"), note="")
    run_inline(task_workflows.task_approve, task=a, actor=analyst, note="Looks right")
    assert statuses(mission) == {"review": TaskStatus.DONE, "build": TaskStatus.DONE}
    assert HistoryEntry.objects.get(task=a, event="task.approved").message == "Looks right"


def test_reject_reruns_with_feedback_and_reopens_downstream(mission, agent, lead, run_inline):
    tasks = make_tasks(mission, agent, {"map": {}, "build": {}, "test": {}},
                       edges=[("build", "map"), ("test", "build")])
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert refresh(mission).status == MissionStatus.COMPLETED
    with pytest.raises(DomainError, match="Feedback is required"):
        task_workflows.task_reject(task=tasks["map"], actor=lead, feedback="  ")
    run_inline(task_workflows.task_reject, task=tasks["map"], actor=lead, feedback="Use MEMBER_ID, not PATIENT_ID")
    runs = Run.objects.filter(task=tasks["map"]).order_by("attempt")
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert runs[1].result["feedback"] == ["Use MEMBER_ID, not PATIENT_ID"]
    # downstream re-opened (history says why) and ran again; the mission was not restarted
    for key in ("build", "test"):
        assert Run.objects.filter(task=tasks[key]).count() == 2
        entry = HistoryEntry.objects.get(task=tasks[key], event="task.pending")
        assert "upstream task map was rejected" in entry.message
    assert HistoryEntry.objects.filter(mission=mission, event="mission.active").count() == 2  # launch + re-open
    assert refresh(mission).status == MissionStatus.COMPLETED


def test_a_proposal_waits_for_approval_and_reject_sends_it_back(mission, agent, lead, run_inline):
    tasks = make_tasks(mission, agent, {"spec": {"needs_approval": "Mapping spec v1"}, "next": {}},
                       edges=[("next", "spec")])
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert statuses(mission) == {"spec": TaskStatus.WAITING_APPROVAL, "next": TaskStatus.PENDING}
    assert Run.objects.get(task=tasks["spec"]).status == RunStatus.WAITING
    run_inline(task_workflows.task_reject, task=tasks["spec"], actor=lead, feedback="Add the date columns")
    runs = list(Run.objects.filter(task=tasks["spec"]).order_by("attempt").values_list("status", flat=True))
    assert runs == [RunStatus.REJECTED, RunStatus.SUCCEEDED]
    assert statuses(mission) == {"spec": TaskStatus.DONE, "next": TaskStatus.DONE}


def test_a_question_pauses_the_task_and_the_answer_resumes_it(mission, agent, lead, analyst, run_inline):
    tasks = make_tasks(mission, agent, {"ask": {"ask": "Which key joins claims?", "options": ["CLAIM_ID", "ID"],
                                                "default": "CLAIM_ID"}})
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    question = Question.objects.get(task=tasks["ask"])
    assert (question.status, question.addressed_to, question.options) == ("open", lead, ["CLAIM_ID", "ID"])
    assert refresh(tasks["ask"]).status == TaskStatus.WAITING_INPUT
    assert Notification.objects.filter(task=tasks["ask"], event="question.asked").exists()
    with pytest.raises(DomainError, match="Choose one of"):
        task_workflows.question_answer(question=question, actor=lead, answer="MEMBER")
    with pytest.raises(DomainError, match="Only the person asked"):
        task_workflows.question_answer(question=question, actor=analyst, answer="ID")
    run_inline(task_workflows.question_answer, question=question, actor=lead, answer="ID")
    assert refresh(question).status == QuestionStatus.ANSWERED
    runs = Run.objects.filter(task=tasks["ask"]).order_by("attempt")
    assert [r.status for r in runs] == [RunStatus.ANSWERED, RunStatus.SUCCEEDED]
    assert runs[1].result["answer"] == "ID"
    assert refresh(mission).status == MissionStatus.COMPLETED
    events = set(HistoryEntry.objects.filter(mission=mission).values_list("event", flat=True))
    assert {"question.asked", "question.answered", "task.waiting_input"} <= events


def test_step_mode_pauses_at_each_phase_boundary(mission, agent, lead, run_inline):
    p1 = services.phase_create(mission=mission, order=1, name="Discover")
    p2 = services.phase_create(mission=mission, order=2, name="Build")
    a = services.task_create(mission=mission, key="a", title="a", owner_agent=agent, phase=p1)
    b = services.task_create(mission=mission, key="b", title="b", owner_agent=agent, phase=p2)
    assert mission.mode == MissionMode.STEP
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert refresh(a).status == TaskStatus.DONE and refresh(b).status == TaskStatus.PENDING
    assert refresh(mission).status == MissionStatus.PAUSED
    assert (refresh(p1).status, refresh(p2).status) == (PhaseStatus.PASSED, PhaseStatus.OPEN)
    run_inline(mission_workflows.mission_resume, mission=mission, actor=lead)
    assert refresh(b).status == TaskStatus.DONE
    assert refresh(mission).status == MissionStatus.COMPLETED


def test_continuous_mode_goes_through_phases(mission, agent, lead, run_inline):
    services.phase_create(mission=mission, order=1, name="One")
    p2 = services.phase_create(mission=mission, order=2, name="Two")
    mission.mode = MissionMode.CONTINUOUS
    mission.save()
    services.task_create(mission=mission, key="a", title="a", owner_agent=agent, phase=mission.phases.first())
    services.task_create(mission=mission, key="b", title="b", owner_agent=agent, phase=p2)
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert refresh(mission).status == MissionStatus.COMPLETED


def test_paused_mission_starts_nothing_new_until_resumed(
    mission, agent, lead, run_inline, django_capture_on_commit_callbacks
):
    make_tasks(mission, agent, {"a": {}, "b": {}}, edges=[("b", "a")])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        mission_workflows.mission_launch(mission=mission, actor=lead)
    mission_workflows.mission_pause(mission=mission, actor=lead, reason="Hold on")
    for callback in callbacks:  # the queue delivers the run while the mission is paused: it is not started
        callback()
    run = Run.objects.get(task__key="a", task__mission=mission)
    assert run.status == RunStatus.QUEUED
    run_inline(mission_workflows.mission_resume, mission=mission, actor=lead)
    assert statuses(mission) == {"a": TaskStatus.DONE, "b": TaskStatus.DONE}


def test_cancel_mission_cancels_live_work_and_a_late_result_is_refused(mission, agent, lead):
    tasks = make_tasks(mission, agent, {"a": {}, "b": {}}, edges=[("b", "a")])
    mission_workflows.mission_launch(mission=mission, actor=lead)  # callbacks not run: the run stays queued
    run = Run.objects.get(task=tasks["a"])
    claimed = runtime._claim(run.pk)
    assert claimed is not None
    mission_workflows.mission_cancel(mission=mission, actor=lead, reason="Wrong scope")
    assert refresh(run).status == RunStatus.CANCELLED
    assert statuses(mission) == {"a": TaskStatus.CANCELLED, "b": TaskStatus.CANCELLED}
    # the worker still holding the old token finishes: its result is refused and recorded
    from agents.base import Succeeded

    claimed_run, token = claimed
    with pytest.raises(DomainError):
        runtime._record(run=claimed_run, token=token, outcome=Succeeded(), log=runtime.RunLog(claimed_run))
    assert HistoryEntry.objects.filter(run=run, event="run.stale_result_refused").count() == 1
    assert Mission.objects.get(pk=mission.pk).status == MissionStatus.CANCELLED


def test_an_expired_lease_is_marked_lost_and_retried(mission, agent, lead, run_inline, settings):
    tasks = make_tasks(mission, agent, {"a": {}})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    run = Run.objects.get(task=tasks["a"])
    run, token = runtime._claim(run.pk)
    from datetime import timedelta

    from django.utils import timezone

    Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    counts = run_inline(recovery.sweep)
    assert counts["lost"] == 1
    runs = Run.objects.filter(task=tasks["a"]).order_by("attempt")
    assert [r.status for r in runs] == [RunStatus.LOST, RunStatus.SUCCEEDED]
    assert HistoryEntry.objects.filter(run=run, event="run.lost").count() == 1
    assert refresh(mission).status == MissionStatus.COMPLETED


@pytest.mark.django_db(transaction=True)  # the lease thread uses its own connection
def test_a_run_past_its_timeout_is_failed_as_a_timeout(mission, agent, lead, run_inline, settings):
    settings.GENESIS_HEARTBEAT_SECONDS = 0.05
    tasks = make_tasks(mission, agent, {"slow": {"sleep_ms": 3000}})
    services.task_update(task=tasks["slow"], actor=lead, timeout_seconds=1, max_attempts=1)
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    run = Run.objects.get(task=tasks["slow"])
    assert run.status == RunStatus.FAILED
    assert run.error == "Timed out after 1 s."
    assert run.result["failure"] == "timeout"
    assert refresh(tasks["slow"]).status == TaskStatus.FAILED


def test_a_failing_webhook_is_recorded_and_does_not_block(mission, agent, lead, run_inline):
    mission.escalation_webhook = "http://127.0.0.1:9/hook"  # nothing listens on the discard port
    mission.save()
    tasks = make_tasks(mission, agent, {"a": {"needs_approval": "please look"}})
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    hook = Notification.objects.get(task=tasks["a"], channel="webhook")
    assert (hook.status, hook.attempts) == ("failed", 3)
    assert "attempt 3/3" in hook.last_error
    assert HistoryEntry.objects.filter(mission=mission, event="notification.failed").count() == 1
    run_inline(task_workflows.task_approve, task=tasks["a"], actor=lead)
    assert refresh(mission).status == MissionStatus.COMPLETED


def test_acceptance_failure_fails_the_run_with_evidence(mission, agent, lead, run_inline):
    from tasks import acceptance

    def strict(*, task, run, actor):
        return acceptance.Verdict(passed=False, results=[{"name": "rows", "passed": False, "message": "0 rows",
                                                          "evidence": {"rows": 0}}])

    acceptance.register_acceptance_evaluator(strict)
    try:
        tasks = make_tasks(mission, agent, {"a": {}})
        services.task_update(task=tasks["a"], actor=lead, max_attempts=1)
        run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    finally:
        acceptance._task_evaluators.remove(strict)
    run = Run.objects.get(task=tasks["a"])
    assert run.status == RunStatus.FAILED
    assert "rows: 0 rows" in run.error
    assert run.result["checks"][0]["evidence"] == {"rows": 0}


def test_a_fan_in_is_dispatched_once(mission, agent, lead, run_inline):
    specs = {f"p{i}": {} for i in range(20)} | {"sink": {}}
    make_tasks(mission, agent, specs, edges=[("sink", f"p{i}") for i in range(20)])
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert Run.objects.filter(task__key="sink", task__mission=mission).count() == 1
    assert HistoryEntry.objects.filter(task__key="sink", task__mission=mission, event="task.ready").count() == 1


def test_a_run_costs_a_bounded_number_of_queries_whatever_the_chain_length(mission, agent, lead, settings):
    """The hot path (claim, run, record, dispatch the next task) has a fixed query budget per task; the same for
    the first and the last task of a long chain (docs/benchmarks.md lists the statements)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_q.conf import Conf

    settings.GENESIS_CHAIN_SECONDS = 0  # one run per call, as a worker hands each on through the queue

    tasks = make_tasks(mission, agent, {f"t{i}": {} for i in range(30)},
                       edges=[(f"t{i + 1}", f"t{i}") for i in range(29)])
    sync = Conf.SYNC
    Conf.SYNC = False  # runs are executed here one by one, as a worker would
    try:
        mission_workflows.mission_launch(mission=mission, actor=lead)
        counts = []
        while pending := driver.pending_runs(mission):
            with CaptureQueriesContext(connection) as ctx:
                runtime.execute_run(pending[0])
            counts.append(len(ctx.captured_queries))
    finally:
        Conf.SYNC = sync
    assert len(counts) == len(tasks)
    assert refresh(mission).status == MissionStatus.COMPLETED
    assert max(counts[:-1]) <= 20 and len(set(counts[1:-1])) == 1, counts
    assert HistoryEntry.objects.filter(task__mission=mission, event="task.done").count() == 30


def test_rejecting_work_of_a_passed_phase_reopens_the_phase_and_checks_it_again(mission, agent, lead, run_inline):
    p1 = services.phase_create(mission=mission, order=1, name="Map")
    p2 = services.phase_create(mission=mission, order=2, name="Build")
    p3 = services.phase_create(mission=mission, order=3, name="Report")
    mission.mode = MissionMode.CONTINUOUS
    mission.save()
    a = services.task_create(mission=mission, key="a", title="a", owner_agent=agent, phase=p1)
    b = services.task_create(mission=mission, key="b", title="b", owner_agent=agent, phase=p2,
                             config={"needs_approval": "Built; approve?"})
    c = services.task_create(mission=mission, key="c", title="c", owner_agent=agent, phase=p3)
    services.dependency_add(task=b, depends_on=a)
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert refresh(b).status == TaskStatus.WAITING_APPROVAL
    assert [refresh(p).status for p in (p1, p2, p3)] == [PhaseStatus.PASSED, PhaseStatus.OPEN, PhaseStatus.PENDING]

    run_inline(task_workflows.task_reject, task=a, actor=lead, feedback="Wrong key column.")
    # a re-ran and b (downstream) was re-opened; Map was re-opened and checked again once a was done.
    reopened = HistoryEntry.objects.filter(mission=mission, event="phase.open", message__contains="rejected")
    assert reopened.count() == 1 and reopened.get().data["reopened_by"] == "a"
    assert refresh(a).status == TaskStatus.DONE and Run.objects.filter(task=a).count() == 2
    assert refresh(p1).status == PhaseStatus.PASSED
    assert HistoryEntry.objects.filter(mission=mission, event="phase.passed", message__contains="Map").count() == 2
    assert refresh(b).status == TaskStatus.WAITING_APPROVAL and refresh(c).status == TaskStatus.PENDING
    run_inline(task_workflows.task_approve, task=b, actor=lead)
    assert refresh(mission).status == MissionStatus.COMPLETED


@pytest.fixture
def worker_mode():
    """Runs go through django-q2's ORM queue (not sync mode) and are executed here, one delivery at a time."""
    from django_q.conf import Conf

    sync, Conf.SYNC = Conf.SYNC, False
    yield
    Conf.SYNC = sync


def test_a_worker_goes_on_with_the_run_its_recording_queued(mission, agent, lead, worker_mode):
    """One delivery runs a quick chain end to end: each dependent is kept by the worker that finished its
    prerequisite and claimed at once, never handed through the queue; each task runs exactly once."""
    tasks = make_tasks(mission, agent, {f"t{i}": {} for i in range(5)},
                       edges=[(f"t{i + 1}", f"t{i}") for i in range(4)])
    mission_workflows.mission_launch(mission=mission, actor=lead)
    first = driver.pending_runs(mission)
    assert deliveries() == first and len(first) == 1
    assert runtime.execute_run(first[0]) == "succeeded"
    assert refresh(mission).status == MissionStatus.COMPLETED
    assert deliveries() == first  # nothing else went through the queue
    for task in tasks.values():
        assert list(Run.objects.filter(task=task).values_list("status", flat=True)) == [RunStatus.SUCCEEDED]
    workers = set(Run.objects.filter(task__mission=mission).values_list("worker", flat=True))
    assert len(workers) == 1


def test_a_fan_out_keeps_one_run_and_queues_the_others(mission, agent, lead, worker_mode):
    make_tasks(mission, agent, {"root": {}, "a": {}, "b": {}, "c": {}},
               edges=[("a", "root"), ("b", "root"), ("c", "root")])
    mission_workflows.mission_launch(mission=mission, actor=lead)
    root_run = driver.pending_runs(mission)[0]
    runtime.execute_run(root_run)
    done = set(Task.objects.filter(mission=mission, status=TaskStatus.DONE).values_list("key", flat=True))
    assert "root" in done and len(done) == 2  # the root and the one child its worker kept
    queued = set(Run.objects.filter(task__mission=mission, status=RunStatus.QUEUED).values_list("pk", flat=True))
    assert len(queued) == 2 and queued <= set(deliveries())


def test_chaining_stops_after_its_window(mission, agent, lead, worker_mode, settings):
    settings.GENESIS_CHAIN_SECONDS = 0
    make_tasks(mission, agent, {"a": {}, "b": {}}, edges=[("b", "a")])
    mission_workflows.mission_launch(mission=mission, actor=lead)
    runtime.execute_run(driver.pending_runs(mission)[0])
    assert refresh(Task.objects.get(mission=mission, key="b")).status == TaskStatus.QUEUED
    b_run = Run.objects.get(task__mission=mission, task__key="b")
    assert b_run.pk in deliveries() and b_run.enqueued_at is not None


def test_a_kept_run_whose_worker_died_is_handed_on_by_the_sweep(mission, agent, lead, worker_mode, monkeypatch):
    make_tasks(mission, agent, {"a": {}, "b": {}}, edges=[("b", "a")])
    mission_workflows.mission_launch(mission=mission, actor=lead)
    a_run = driver.pending_runs(mission)[0]
    claim = runtime._claim

    def dies_before_the_kept_run(run_id):
        if run_id != a_run:
            raise RuntimeError("the worker died")
        return claim(run_id)

    monkeypatch.setattr(runtime, "_claim", dies_before_the_kept_run)
    with pytest.raises(RuntimeError):
        runtime.execute_run(a_run)
    b_run = Run.objects.get(task__mission=mission, task__key="b")
    assert b_run.status == RunStatus.QUEUED and b_run.enqueued_at is None and b_run.pk not in deliveries()
    # Within a lease's time the run is its worker's to claim: a sweep then must not hand it out again.
    assert recovery.sweep()["enqueued"] == 0 and b_run.pk not in deliveries()
    Run.objects.filter(pk=b_run.pk).update(created_at=timezone.now() - timedelta(seconds=timing.lease_seconds() + 1))
    assert recovery.sweep()["enqueued"] == 1
    assert b_run.pk in deliveries()


def test_a_retry_is_not_kept_by_the_worker_but_queued_for_its_backoff(mission, lead, worker_mode):
    flaky = AgentFactory(name="flaky", kind="noop", config={"fail_attempts": 1})
    make_tasks(mission, flaky, {"a": {}})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    first = driver.pending_runs(mission)[0]
    assert runtime.execute_run(first) == "failed"
    retry = Run.objects.get(task__mission=mission, attempt=2)
    assert retry.status == RunStatus.QUEUED and retry.pk in deliveries() and retry.enqueued_at is not None


# --- several runs to a queue message (engine module point 6) ------------------------------------------------------


def test_a_wide_fan_out_goes_to_the_queue_several_runs_a_message(mission, agent, lead, worker_mode):
    children = {f"c{i}": {} for i in range(40)}
    make_tasks(mission, agent, {"root": {}, **children}, edges=[(key, "root") for key in children])
    mission_workflows.mission_launch(mission=mission, actor=lead)
    runtime.execute_run(driver.pending_runs(mission)[0])
    # The root's worker kept one child; the other 39 went out 9 a message (two messages at least per worker of
    # this cluster: 39 // (2 · 2)), not 39 messages.
    sent = messages()[1:]  # after the root's own
    assert [len(m) for m in sent] == [9, 9, 9, 9, 3]
    queued = set(Run.objects.filter(task__mission=mission, status=RunStatus.QUEUED).values_list("pk", flat=True))
    assert {run for m in sent for run in m} == queued and len(queued) == 39
    for message in sent:
        assert runtime.execute_runs(message) == "succeeded"
    assert refresh(mission).status == MissionStatus.COMPLETED
    runs = list(Run.objects.filter(task__mission=mission).values_list("task_id", "status"))
    assert len(runs) == 41 and {status for _, status in runs} == {RunStatus.SUCCEEDED}
    assert len({task for task, _ in runs}) == 41  # each task exactly once
    assert not HistoryEntry.objects.filter(mission=mission, event="run.claim_refused").exists()


def test_batching_can_be_turned_off_and_small_fan_outs_stay_one_run_a_message(mission, agent, lead, worker_mode,
                                                                             settings):
    settings.GENESIS_BATCH_MAX = 1
    make_tasks(mission, agent, {f"t{i}": {} for i in range(12)})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    assert [len(m) for m in messages()] == [1] * 12
    settings.GENESIS_BATCH_MAX = 16
    assert [queue._batch_size(n) for n in (1, 3, 7, 8, 39, 1000)] == [1, 1, 1, 2, 9, 16]


class WorkerDied(BaseException):
    """Stands for the worker process's sudden end: unlike an exception, nothing in the engine catches it."""


def test_a_delivery_holds_its_other_runs_and_the_sweep_hands_them_on_if_its_worker_dies(
        mission, agent, lead, worker_mode, monkeypatch):
    make_tasks(mission, agent, {"a": {}, "b": {}, "c": {}})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    a, b, c = sorted(driver.pending_runs(mission))
    clear_queue()
    claim = runtime._claim

    def dies_after_the_first(run_id):
        if run_id != a:
            raise WorkerDied  # as abrupt as SIGKILL: nothing of the worker's runs after it
        return claim(run_id)

    monkeypatch.setattr(runtime, "_claim", dies_after_the_first)
    before = timezone.now()
    with pytest.raises(WorkerDied):
        runtime.execute_runs([a, b, c])
    assert refresh(Run.objects.get(pk=a)).status == RunStatus.SUCCEEDED
    for run in Run.objects.filter(pk__in=[b, c]):
        assert run.status == RunStatus.QUEUED
        assert run.lease_expires_at >= before + timedelta(seconds=timing.hold_seconds())  # held by that delivery
    # While held, the sweep leaves them to their worker; once the hold expires the worker is taken as gone.
    assert recovery.sweep()["enqueued"] == 0 and deliveries() == []
    Run.objects.filter(pk__in=[b, c]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert recovery.sweep()["enqueued"] == 2
    assert deliveries() == [b, c]
    assert set(Run.objects.filter(pk__in=[b, c]).values_list("lease_expires_at", flat=True)) == {None}
    monkeypatch.setattr(runtime, "_claim", claim)
    for message in messages():
        runtime.execute_runs(message)
    assert refresh(mission).status == MissionStatus.COMPLETED
    assert Run.objects.filter(task__mission=mission).count() == 3


def test_a_delivery_whose_run_raises_hands_the_rest_back_at_once(mission, agent, lead, worker_mode, monkeypatch):
    make_tasks(mission, agent, {"a": {}, "b": {}, "c": {}})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    a, b, c = sorted(driver.pending_runs(mission))
    clear_queue()
    monkeypatch.setattr(runtime, "_claim", lambda run_id: (_ for _ in ()).throw(RuntimeError("database went away")))
    with pytest.raises(RuntimeError):
        runtime.execute_runs([a, b, c])
    assert deliveries() == [b, c]
    assert set(Run.objects.filter(pk__in=[b, c]).values_list("lease_expires_at", flat=True)) == {None}


def test_a_delivery_past_its_chaining_window_hands_the_rest_back(mission, agent, lead, worker_mode, settings):
    settings.GENESIS_CHAIN_SECONDS = 0
    make_tasks(mission, agent, {"a": {}, "b": {}, "c": {}})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    a, b, c = sorted(driver.pending_runs(mission))
    clear_queue()
    assert runtime.execute_runs([a, b, c]) == "succeeded"
    assert Run.objects.get(pk=a).status == RunStatus.SUCCEEDED
    assert deliveries() == [b, c]
    for run in Run.objects.filter(pk__in=[b, c]):
        assert run.status == RunStatus.QUEUED and run.lease_expires_at is None and run.enqueued_at is not None


@pytest.mark.django_db(transaction=True)  # the lease thread uses its own connection
def test_a_long_run_hands_its_delivery_back_while_it_works(mission, agent, lead, worker_mode, settings):
    """Quick runs must not wait behind a long one while other workers could take them: the long run's lease
    thread gives them back to the queue after GENESIS_HANDOFF_SECONDS, long before the long run ends."""
    settings.GENESIS_HANDOFF_SECONDS = 0.1
    settings.GENESIS_HEARTBEAT_SECONDS = 0.05
    make_tasks(mission, agent, {"slow": {"sleep_ms": 1500}, "a": {}, "b": {}})
    mission_workflows.mission_launch(mission=mission, actor=lead)
    slow, a, b = sorted(driver.pending_runs(mission))
    clear_queue()
    assert runtime.execute_runs([slow, a, b]) == "succeeded"
    slow_run = Run.objects.get(pk=slow)
    assert slow_run.status == RunStatus.SUCCEEDED
    assert deliveries() == [a, b]  # given back, not run by this worker
    for run in Run.objects.filter(pk__in=[a, b]):
        assert run.status == RunStatus.QUEUED and run.lease_expires_at is None
        assert run.enqueued_at < slow_run.finished_at - timedelta(seconds=1)  # while the slow run still worked


def test_an_agent_runs_under_the_workers_query_timeout(mission, agent, lead, run_inline, settings, monkeypatch):
    seen = []

    def run(self, context):
        seen.append(default_timeout())
        return Succeeded()

    monkeypatch.setattr(NoopAgent, "run", run)
    settings.GENESIS_AGENT_QUERY_TIMEOUT_SECONDS = 123.0
    make_tasks(mission, agent, {"a": {}})
    run_inline(mission_workflows.mission_launch, mission=mission, actor=lead)
    assert seen == [123.0]
    assert refresh(mission).status == MissionStatus.COMPLETED
    assert default_timeout() == DEFAULT_TIMEOUT_SECONDS  # the worker's limit ends with the agent's run
