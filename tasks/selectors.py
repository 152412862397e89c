"""Reads for the cockpit, the task pages and "My work": each fetches its related rows up front, so a page
costs a fixed number of queries whatever the size of the mission."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from genesis.graphs import critical_path
from history.models import HistoryEntry
from missions.models import Mission
from tasks.choices import TASK_FINISHED, PhaseStatus, QuestionStatus, TaskStatus
from tasks.models import Artifact, Dependency, Phase, Question, Run, Task

if TYPE_CHECKING:
    from django.contrib.auth.models import User


T = TaskStatus

# The task board's columns: a heading and the statuses it gathers.
BOARD_COLUMNS: list[tuple[str, str, tuple[str, ...]]] = [
    ("todo", "To do", (T.PENDING, T.READY)),
    ("progress", "In progress", (T.QUEUED, T.RUNNING)),
    ("people", "Waiting for people", (T.WAITING_INPUT, T.WAITING_APPROVAL)),
    ("done", "Done", (T.DONE, T.SKIPPED)),
    ("stopped", "Failed or cancelled", (T.FAILED, T.CANCELLED)),
]
LOG_TAIL_LINES = 15
WAITING = (T.WAITING_INPUT, T.WAITING_APPROVAL)
LIVE = (T.QUEUED, T.RUNNING)
del T

# History filters offered on the timeline: a label and the event prefix it selects.
HISTORY_KINDS: list[tuple[str, str]] = [
    ("mission", "Mission"),
    ("task", "Tasks"),
    ("run", "Runs"),
    ("phase", "Phases"),
    ("question", "Questions"),
    ("artifact", "Artifacts"),
    ("dependency", "Dependencies"),
]
# Events that make up a replay: what ran and what people decided, in order.
REPLAY_PREFIXES = ("run.", "task.", "question.", "phase.", "mission.", "check.")


class BoardTask:
    """What the board and the graph show of a task: read as plain values, not model instances (a 500-task board
    renders in a fraction of the time)."""

    __slots__ = ("pk", "key", "title", "status", "status_label", "owner_name", "owned_by_agent", "phase_id")

    def __init__(self, pk: int, key: str, title: str, status: str, owner_user: str | None,
                 owner_agent: str | None, phase_id: int | None) -> None:
        self.pk, self.key, self.title, self.status, self.phase_id = pk, key, title, status, phase_id
        self.status_label = STATUS_LABELS.get(status, status)
        self.owned_by_agent = owner_agent is not None
        self.owner_name = owner_agent if owner_agent is not None else (owner_user or "")


STATUS_LABELS = dict(TaskStatus.choices)


@dataclass
class BoardColumn:
    slug: str
    label: str
    tasks: list[BoardTask] = field(default_factory=list)


@dataclass
class Board:
    """The mission's tasks grouped into columns, their counts per status, and the live runs."""

    columns: list[BoardColumn]
    counts: Counter[str]
    total: int
    live_runs: dict[int, Run]
    running_runs: list[Run] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.counts[TaskStatus.DONE] + self.counts[TaskStatus.SKIPPED]

    @property
    def status_map(self) -> dict[str, str]:
        return {str(t.pk): t.status for c in self.columns for t in c.tasks}


def mission_tasks(mission: Mission) -> QuerySet[Task]:
    return Task.objects.filter(mission=mission).select_related("owner_user", "owner_agent", "phase")


def mission_board(mission: Mission) -> Board:
    """Two queries: the tasks (as plain values with their owner's name), and the runs of the tasks now live."""
    rows = (
        Task.objects.filter(mission=mission)
        .order_by("position", "id")
        .values_list("id", "key", "title", "status", "owner_user__username", "owner_agent__name", "phase_id")
    )
    tasks = [BoardTask(*row) for row in rows]
    columns = [BoardColumn(slug, label) for slug, label, _ in BOARD_COLUMNS]
    by_status = {status: columns[i] for i, (_, _, statuses) in enumerate(BOARD_COLUMNS) for status in statuses}
    counts: Counter[str] = Counter()
    for task in tasks:
        by_status[task.status].tasks.append(task)
        counts[task.status] += 1
    live_runs: dict[int, Run] = {}
    running: list[Run] = []
    if counts[TaskStatus.RUNNING] or counts[TaskStatus.QUEUED]:
        keys = {t.pk: t.key for t in tasks}
        runs = Run.objects.filter(task__mission=mission, task__status__in=LIVE, status__in=["queued", "running"])
        for run in runs.defer("result").order_by("started_at", "id"):
            run.task_key = keys[run.task_id]  # type: ignore[attr-defined]  # shown by the page
            live_runs[run.task_id] = run
            if run.status == "running":
                run.tail = "\n".join((run.log or "").splitlines()[-LOG_TAIL_LINES:])  # type: ignore[attr-defined]  # shown by the page
                running.append(run)
    return Board(columns=columns, counts=counts, total=len(tasks), live_runs=live_runs, running_runs=running)


def mission_edges(mission: Mission) -> list[tuple[int, int]]:
    """``(task_id, depends_on_id)`` pairs of the mission's graph, in one query."""
    return list(Dependency.objects.filter(task__mission=mission).values_list("task_id", "depends_on_id"))


def task_run_times(mission: Mission) -> dict[int, float]:
    """Seconds each task of the mission has run, all attempts added (a running attempt up to now), in one query."""
    now = timezone.now()
    seconds: dict[int, float] = defaultdict(float)
    runs = Run.objects.filter(task__mission=mission, started_at__isnull=False).values_list(
        "task_id", "started_at", "finished_at")
    for task_id, started, finished in runs:
        if started is not None:
            seconds[task_id] += max(((finished or now) - started).total_seconds(), 0.0)
    return dict(seconds)


def duration_text(seconds: float | None) -> str:
    """A run time as a person reads it: "4.2 s", "2 min 03 s", "1 h 02 min"."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def mission_graph(board: Board, edges: list[tuple[int, int]], run_times: dict[int, float] | None = None,
                  phases: list[Phase] | None = None) -> dict[str, Any]:
    """Nodes and edges for the task-graph picture (laid out in the browser by dagre): each task with its status and
    run time, inside its phase; the critical path (the chain of dependencies with the most run time, see
    ``genesis.graphs.critical_path``) marked on its nodes and edges and summed."""
    run_times = run_times or {}
    tasks = [t for column in board.columns for t in column.tasks]
    depends: dict[int, list[int]] = {t.pk: [] for t in tasks}
    for task, dep in edges:
        depends.setdefault(task, []).append(dep)
    path = critical_path(depends, run_times)
    on_path = set(path)
    path_edges = set(zip(path, path[1:], strict=False))
    keys = {t.pk: t.key for t in tasks}
    nodes = [
        {"id": str(t.pk), "key": t.key, "title": t.title, "status": t.status, "status_label": t.status_label,
         "duration": duration_text(run_times.get(t.pk)), "critical": t.pk in on_path,
         "phase": f"phase-{t.phase_id}" if t.phase_id else ""}
        for t in tasks
    ]
    used = {t.phase_id for t in tasks if t.phase_id}
    return {
        "nodes": nodes,
        "edges": [{"source": str(dep), "target": str(task), "critical": (dep, task) in path_edges}
                  for task, dep in edges],
        "phases": [{"id": f"phase-{p.pk}", "label": f"{p.order}. {p.name}"} for p in phases or [] if p.pk in used],
        "critical": {"keys": [keys[pk] for pk in path if pk in keys],
                     "duration": duration_text(total) if (total := sum(run_times.get(pk, 0.0) for pk in path)) else ""},
    }


def graph_state(graph: dict[str, Any]) -> dict[str, Any]:
    """What of the task graph changes while the mission runs, for the live poller to bring without a reload: each
    node's status and run time and whether it is on the critical path, and the critical path's edges (the picture's
    layout and its edges stay as drawn)."""
    return {
        "nodes": {n["id"]: {"status": n["status"], "status_label": n["status_label"], "duration": n["duration"],
                            "critical": n["critical"]} for n in graph["nodes"]},
        "critical_edges": [[e["source"], e["target"]] for e in graph["edges"] if e["critical"]],
    }


def mission_phases(mission: Mission) -> list[Phase]:
    return list(Phase.objects.filter(mission=mission).order_by("order"))


def mission_history(mission: Mission, *, kinds: list[str] | None = None, replay: bool = False,
                    newest_first: bool = True) -> QuerySet[HistoryEntry]:
    """The mission's history, of some kinds (event prefixes) or what a replay shows; the page narrows it further with
    the API's filters (``tasks.filtersets.HistoryFilterSet``): one set of filters and parameter names for both."""
    qs = HistoryEntry.objects.filter(mission=mission).select_related("actor_user", "actor_agent", "task", "run")
    if kinds:
        condition = Q()
        for kind in kinds:
            condition |= Q(event__startswith=f"{kind}.")
        qs = qs.filter(condition)
    if replay:
        condition = Q()
        for prefix in REPLAY_PREFIXES:
            condition |= Q(event__startswith=prefix)
        qs = qs.filter(condition)
    return qs.order_by("-created_at", "-id") if newest_first else qs.order_by("created_at", "id")


def mission_artifacts(mission: Mission) -> QuerySet[Artifact]:
    return (
        Artifact.objects.filter(mission=mission)
        .select_related("task", "created_by_user", "created_by_agent")
        .order_by("-created_at", "-id")
    )


@dataclass
class ArtifactGroup:
    """The cockpit's artifacts of one phase (``phase`` None: not in a phase), task by task."""

    phase: Phase | None
    tasks: list[tuple[Task | None, list[Artifact]]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(artifacts) for _task, artifacts in self.tasks)


ARTIFACTS_GROUPED_MAX = 1000


def mission_artifact_groups(mission: Mission, *,
                            limit: int = ARTIFACTS_GROUPED_MAX) -> tuple[list[ArtifactGroup], bool]:
    """The mission's artifacts by phase (in phase order), then task (in board order), newest version of each name
    only, each with ``versions`` (how many it has); artifacts of no task come last. One query over at most
    ``limit`` rows (newest first); the flag says whether older rows were left out."""
    rows = list(
        Artifact.objects.filter(mission=mission).select_related("task", "task__phase")
        .defer("task__description", "task__acceptance_criteria", "task__config", "task__phase__exit_criteria",
               "task__phase__description")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    cut = len(rows) > limit
    latest: dict[tuple[int | None, str], Artifact] = {}
    for artifact in rows[:limit]:  # newest first: the first row of a (task, name) is its latest version
        key = (artifact.task_id, artifact.name)
        if key in latest:
            latest[key].versions += 1  # type: ignore[attr-defined]
        else:
            artifact.versions = 1  # shown by the page
            latest[key] = artifact

    def place(artifact: Artifact) -> tuple[Any, ...]:
        task = artifact.task
        phase = task.phase if task is not None else None
        return (task is None, phase is None, phase.order if phase else 0, task.position if task else 0,
                artifact.task_id or 0, artifact.name)

    groups: list[ArtifactGroup] = []
    for artifact in sorted(latest.values(), key=place):
        phase = artifact.task.phase if artifact.task is not None else None
        if not groups or (groups[-1].phase.pk if groups[-1].phase else None) != (phase.pk if phase else None):
            groups.append(ArtifactGroup(phase=phase))
        tasks = groups[-1].tasks
        if not tasks or (tasks[-1][0].pk if tasks[-1][0] else None) != artifact.task_id:
            tasks.append((artifact.task, []))
        tasks[-1][1].append(artifact)
    return groups, cut


def latest_runs(task_ids: list[int]) -> dict[int, Run]:
    """The latest attempt of each task, one query."""
    latest: dict[int, Run] = {}
    if not task_ids:
        return latest
    for run in Run.objects.filter(task_id__in=task_ids).order_by("task_id", "-attempt").defer("log"):
        latest.setdefault(run.task_id, run)
    return latest


def artifacts_of_runs(run_ids: list[int]) -> dict[int, list[Artifact]]:
    grouped: dict[int, list[Artifact]] = {}
    if not run_ids:
        return grouped
    for artifact in Artifact.objects.filter(run_id__in=run_ids).order_by("name", "-version"):
        grouped.setdefault(artifact.run_id, []).append(artifact)
    return grouped


def open_questions(*, mission: Mission | None = None, user: User | None = None,
                   limit: int | None = None) -> list[Question]:
    """Open questions of a mission, or addressed to a user, with their task and mission."""
    qs = Question.objects.filter(status="open").select_related("task", "mission", "addressed_to")
    if mission is not None:
        qs = qs.filter(mission=mission)
    if user is not None:
        qs = qs.filter(addressed_to=user)
    qs = qs.order_by("created_at", "id")
    return list(qs[:limit] if limit else qs)


def approvals_waiting(*, mission: Mission | None = None, user: User | None = None,
                      limit: int | None = None) -> list[Task]:
    """Tasks waiting for a person's approval. For a user: tasks they own, and agents' tasks of the missions
    they own (the Mission Owner approves an agent's proposal). Each task carries ``latest_run`` and its
    ``run_artifacts``."""
    qs = Task.objects.filter(status=TaskStatus.WAITING_APPROVAL).select_related(
        "mission", "owner_user", "owner_agent", "phase"
    )
    if mission is not None:
        qs = qs.filter(mission=mission)
    if user is not None:
        qs = qs.filter(Q(owner_user=user) | Q(owner_agent__isnull=False, mission__owner=user))
    qs = qs.order_by("mission_id", "position", "id")
    tasks = list(qs[:limit] if limit else qs)
    runs = latest_runs([t.pk for t in tasks])
    artifacts = artifacts_of_runs([r.pk for r in runs.values()])
    for task in tasks:
        latest_run = runs.get(task.pk)
        task.latest_run = latest_run  # type: ignore[attr-defined]  # shown by the page
        task.run_artifacts = artifacts.get(latest_run.pk, []) if latest_run else []  # type: ignore[attr-defined]  # shown by the page
    return tasks


def tasks_assigned(user: User) -> list[Task]:
    """Unfinished tasks a person owns (the rest of "My work")."""
    return list(
        Task.objects.filter(owner_user=user)
        .exclude(status__in=[TaskStatus.DONE, TaskStatus.SKIPPED, TaskStatus.CANCELLED, TaskStatus.WAITING_APPROVAL])
        .select_related("mission", "phase")
        .order_by("mission_id", "position", "id")
    )


def run_for_log(run_id: int) -> Run:
    return Run.objects.select_related("task__mission").get(pk=run_id)


def artifact_for_view(artifact_id: int) -> Artifact:
    artifact: Artifact = Artifact.objects.select_related(
        "mission", "task", "run", "created_by_user", "created_by_agent"
    ).get(pk=artifact_id)
    return artifact


def artifacts_for_missions(mission_ids: list[int], limit: int = 500) -> list[Artifact]:
    """The newest artifacts of several missions in one query (the dashboard keeps ten per mission)."""
    return list(
        Artifact.objects.filter(mission_id__in=mission_ids).select_related("task").order_by("-created_at", "-id")[
            :limit
        ]
    )


def phases_for_missions(mission_ids: list[int]) -> dict[int, list[Phase]]:
    grouped: dict[int, list[Phase]] = {}
    for phase in Phase.objects.filter(mission_id__in=mission_ids).order_by("mission_id", "order"):
        grouped.setdefault(phase.mission_id, []).append(phase)
    return grouped


# --- progress of missions (the lists' bars) -------------------------------------------------------------


@dataclass
class PhaseProgress:
    """Tasks finished out of all tasks in one phase of a mission (or in the tasks without a phase)."""

    name: str
    order: int
    done: int = 0
    total: int = 0

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


@dataclass
class MissionProgress:
    phases: list[PhaseProgress] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(p.done for p in self.phases)

    @property
    def total(self) -> int:
        return sum(p.total for p in self.phases)

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def mission_progress_map(mission_ids: list[int]) -> dict[int, MissionProgress]:
    """Per mission, tasks finished per phase: one grouped query whatever the number of missions or tasks."""
    rows = (
        Task.objects.filter(mission_id__in=mission_ids)
        .values("mission_id", "phase_id", "phase__order", "phase__name")
        .annotate(total=Count("id"), done=Count("id", filter=Q(status__in=TASK_FINISHED)))
        .order_by("mission_id", "phase__order")
    )
    progress: dict[int, MissionProgress] = defaultdict(MissionProgress)
    for row in rows:
        name = row["phase__name"] or "Tasks"
        order = row["phase__order"] if row["phase__order"] is not None else 10**6
        progress[row["mission_id"]].phases.append(
            PhaseProgress(name=name, order=order, done=row["done"], total=row["total"])
        )
    for item in progress.values():
        item.phases.sort(key=lambda p: p.order)
    return progress


def missions_with_progress(missions: list[Mission]) -> list[Mission]:
    """Attach ``progress`` (a MissionProgress) to each mission of a page."""
    progress = mission_progress_map([m.pk for m in missions])
    for mission in missions:
        mission.progress = progress.get(mission.pk, MissionProgress())  # type: ignore[attr-defined]  # shown by the page
    return missions


@dataclass
class MissionAttention:
    """What the missions list flags for one mission and one reader: decisions waiting (for this person, and
    for anyone), the phases whose exit checks failed (the gate blocks later phases), and the last activity."""

    yours: int = 0
    waiting: int = 0
    failed_phases: list[str] = field(default_factory=list)
    last_activity: object = None

    @property
    def blocked(self) -> bool:
        return bool(self.failed_phases)


def missions_with_attention(missions: list[Mission], *, user: User) -> list[Mission]:
    """Attach ``attention`` (a MissionAttention) to each mission of a page, in four grouped queries whatever the
    number of missions or tasks. A decision is "yours" as on My work: an approval of a task you own or of an
    agent's task on a mission you own, or an open question addressed to you."""
    ids = [m.pk for m in missions]
    attention: dict[int, MissionAttention] = defaultdict(MissionAttention)
    yours_approval = Q(owner_user=user) | Q(owner_agent__isnull=False, mission__owner=user)
    for row in (Task.objects.filter(mission_id__in=ids, status=TaskStatus.WAITING_APPROVAL).values("mission_id")
                .annotate(waiting=Count("id"), yours=Count("id", filter=yours_approval)).order_by()):
        item = attention[row["mission_id"]]
        item.waiting += row["waiting"]
        item.yours += row["yours"]
    for row in (Question.objects.filter(mission_id__in=ids, status=QuestionStatus.OPEN).values("mission_id")
                .annotate(waiting=Count("id"), yours=Count("id", filter=Q(addressed_to=user))).order_by()):
        item = attention[row["mission_id"]]
        item.waiting += row["waiting"]
        item.yours += row["yours"]
    for mission_id, name in (Phase.objects.filter(mission_id__in=ids, status=PhaseStatus.FAILED)
                             .order_by("mission_id", "order").values_list("mission_id", "name")):
        attention[mission_id].failed_phases.append(name)
    for row in (HistoryEntry.objects.filter(mission_id__in=ids).values("mission_id")
                .annotate(last=Max("created_at")).order_by()):
        attention[row["mission_id"]].last_activity = row["last"]
    for mission in missions:
        mission.attention = attention.get(mission.pk, MissionAttention())  # type: ignore[attr-defined]
    return missions


# --- what an agent may read of its mission (through its AgentContext) ------------------------------------------


def artifact_content_latest(name: str, *, mission: Mission) -> bytes | None:
    """The content of the mission's newest stored artifact called ``name``, or None."""
    artifact = (Artifact.objects.filter(mission=mission, name=name).exclude(file="")
                .order_by("-created_at", "-id").first())
    if artifact is None:
        return None
    with artifact.file.open("rb") as handle:
        content: bytes = handle.read()
    return content


def mission_runs(*, mission: Mission) -> list[dict[str, Any]]:
    """Every attempt of the mission's tasks, in task order: task key, attempt, status, log and error."""
    return [
        {"task": key, "attempt": attempt, "status": status, "log": log, "error": error}
        for key, attempt, status, log, error in Run.objects.filter(task__mission=mission)
        .order_by("task__position", "task_id", "attempt").values_list("task__key", "attempt", "status", "log", "error")
    ]
