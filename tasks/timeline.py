"""The replay of a mission as a timeline (a Gantt chart): each task's runs as bars on a time axis, the decisions and
questions as marks, and the stretches when nothing ran (most often: waiting for people), which the page can collapse.

Three queries whatever the size of the mission: the tasks, the runs, and the history entries that are decisions,
questions and milestones (at most ``MARKS_SHOWN``). Every position is computed here, as a percentage of the axis, twice:
on the real time scale, and with each idle stretch longer than ``IDLE_MIN`` drawn at a fixed small width. The steps
of the replay are the runs' starts and ends and the marks, in time order; the page plays them one by one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from history.models import HistoryEntry
from tasks.choices import RunStatus
from tasks.models import Run, Task
from tasks.selectors import duration_text

IDLE_MIN = timedelta(seconds=60)
IDLE_SHARE = 0.04  # the width of a collapsed idle stretch, as a share of the axis
MARKS_SHOWN = 2000
RUNS_SHOWN = 5000

# History events shown as marks: a symbol drawn on the axis and the words said for it.
MARKS: dict[str, tuple[str, str]] = {
    "question.asked": ("?", "Question asked"),
    "question.answered": ("A", "Question answered"),
    "question.cancelled": ("×", "Question withdrawn"),
    "task.waiting_approval": ("…", "Waiting for approval"),
    "task.waiting_input": ("…", "Waiting for input"),
    "task.approved": ("✓", "Approved"),
    "task.rejected": ("✗", "Rejected with feedback"),
    "check.waived": ("W", "Check waived"),
    "phase.passed": ("◆", "Phase passed"),
    "phase.failed": ("◆", "Phase failed"),
    "mission.active": ("▶", "Mission started"),
    "mission.paused": ("Ⅱ", "Mission paused"),
    "mission.completed": ("■", "Mission completed"),
    "mission.failed": ("■", "Mission failed"),
    "mission.cancelled": ("■", "Mission cancelled"),
    "mission.closed": ("■", "Mission closed"),
}
# A person is awaited from the first of these events of a task until the second.
WAIT_STARTS = {"question.asked", "task.waiting_approval", "task.waiting_input"}
WAIT_ENDS = {"question.answered", "question.cancelled", "task.approved", "task.rejected"}


@dataclass
class Bar:
    """One run of a task, placed on both scales."""

    run_id: int
    attempt: int
    status: str
    status_label: str
    started: datetime
    finished: datetime | None
    duration: str
    left: float = 0.0
    width: float = 0.0
    left_collapsed: float = 0.0
    width_collapsed: float = 0.0
    start_step: int = 0
    end_step: int = 0


@dataclass
class Mark:
    """A decision, question or milestone of the history, placed on both scales."""

    event: str
    symbol: str
    label: str
    at: datetime
    who: str
    message: str
    left: float = 0.0
    left_collapsed: float = 0.0
    step: int = 0


@dataclass
class Row:
    """A task's line of the chart (or the mission's own, for its milestones)."""

    key: str
    title: str
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)


@dataclass
class Gap:
    """A stretch when no run ran: waiting for people, or plain idle time."""

    start: datetime
    end: datetime
    waiting: bool
    duration: str
    left: float = 0.0
    width: float = 0.0
    left_collapsed: float = 0.0
    width_collapsed: float = 0.0


@dataclass
class Step:
    """One moment of the replay: what happened, where on each scale."""

    at: datetime
    text: str
    pos: float = 0.0
    pos_collapsed: float = 0.0


@dataclass
class Timeline:
    rows: list[Row]
    gaps: list[Gap]
    steps: list[Step]
    ticks: list[dict]
    ticks_collapsed: list[dict]
    start: datetime | None = None
    end: datetime | None = None
    truncated: bool = False

    @property
    def idle(self) -> str:
        return duration_text(sum((g.end - g.start).total_seconds() for g in self.gaps))

    @property
    def waiting(self) -> str:
        return duration_text(sum((g.end - g.start).total_seconds() for g in self.gaps if g.waiting))


class Scale:
    """Time to a percentage of the axis, piecewise linear: each idle gap's stretch of time takes a fixed share of the
    axis when collapsed, the rest of the axis shares the active time."""

    def __init__(self, start: datetime, end: datetime, gaps: list[Gap], *, collapse: bool):
        self.bounds: list[tuple[float, float, float, float]] = []  # (t0, t1, p0, p1) in seconds since start
        total = max((end - start).total_seconds(), 1e-6)
        spans = [((g.start - start).total_seconds(), (g.end - start).total_seconds()) for g in gaps] if collapse else []
        idle = sum(b - a for a, b in spans)
        gap_share = min(IDLE_SHARE, 0.5 / len(spans)) if spans else 0.0
        active = max(total - idle, 1e-6)
        active_share = 1.0 - gap_share * len(spans)
        t, p = 0.0, 0.0
        for a, b in spans:
            if a > t:
                q = p + (a - t) / active * active_share
                self.bounds.append((t, a, p, q))
                t, p = a, q
            self.bounds.append((a, b, p, p + gap_share))
            t, p = b, p + gap_share
        self.bounds.append((t, max(total, t + 1e-6), p, 1.0))
        self.starts = [b[0] for b in self.bounds]
        self.origin = start

    def __call__(self, when: datetime) -> float:
        s = (when - self.origin).total_seconds()
        i = max(bisect.bisect_right(self.starts, s) - 1, 0)
        t0, t1, p0, p1 = self.bounds[i]
        share = min(max((s - t0) / (t1 - t0), 0.0), 1.0) if t1 > t0 else 0.0
        return round(100 * (p0 + share * (p1 - p0)), 3)


def _idle_gaps(start: datetime, end: datetime, bars: list[Bar], waits: list[tuple[datetime, datetime]]) -> list[Gap]:
    """Stretches of at least ``IDLE_MIN`` inside [start, end] when no run ran; ``waiting`` when a person was awaited
    during it."""
    gaps = []
    busy_until = start
    for bar in sorted(bars, key=lambda b: b.started):
        if bar.started - busy_until >= IDLE_MIN:
            gaps.append((busy_until, bar.started))
        busy_until = max(busy_until, bar.finished or end)
    if end - busy_until >= IDLE_MIN:
        gaps.append((busy_until, end))
    return [Gap(start=a, end=b, duration=duration_text((b - a).total_seconds()),
                waiting=any(w0 < b and w1 > a for w0, w1 in waits)) for a, b in gaps]


def _ticks(scale: Scale, start: datetime, end: datetime, gaps: list[Gap], *, collapsed: bool) -> list[dict]:
    """Labelled times along the axis, at least 8% apart: evenly spaced on the real scale; on the collapsed one, the
    start, the end and each side of each collapsed gap."""
    multi_day = (end - start) >= timedelta(days=1) or start.date() != end.date()
    fmt = "%m-%d %H:%M" if multi_day else "%H:%M:%S" if (end - start) < timedelta(minutes=10) else "%H:%M"
    if collapsed:
        moments = [start] + [m for g in gaps for m in (g.start, g.end)] + [end]
    else:
        moments = [start + (end - start) * i / 6 for i in range(7)]
    ticks: list[dict] = []
    for moment in moments:
        pos = scale(moment)
        if ticks and pos - ticks[-1]["pos"] < 8:
            continue
        ticks.append({"pos": pos, "label": timezone.localtime(moment).strftime(fmt)})
    return ticks


def _rows(mission, now: datetime) -> tuple[dict, list[Bar], list[Mark], list[tuple[datetime, datetime]], dict]:
    """The rows of the chart with their bars and marks, every bar and mark, and when people were awaited."""
    tasks = {pk: (key, title, position) for pk, key, title, position in
             Task.objects.filter(mission=mission).values_list("id", "key", "title", "position")}
    labels = dict(RunStatus.choices)
    runs = (Run.objects.filter(task__mission=mission, started_at__isnull=False)
            .order_by("started_at", "id")
            .values_list("id", "task_id", "attempt", "status", "started_at", "finished_at")[:RUNS_SHOWN])
    rows: dict[int | None, Row] = {}
    bars: list[Bar] = []
    for run_id, task_id, attempt, status, started, finished in runs:
        bar = Bar(run_id=run_id, attempt=attempt, status=status, status_label=labels.get(status, status),
                  started=started, finished=finished,
                  duration=duration_text(((finished or now) - started).total_seconds()))
        key, title, _ = tasks[task_id]
        rows.setdefault(task_id, Row(key=key, title=title)).bars.append(bar)
        bars.append(bar)
    entries = (
        HistoryEntry.objects.filter(mission=mission, event__in=list(MARKS))
        .order_by("created_at", "id")
        .values_list("event", "created_at", "task_id", "actor_user__username", "actor_agent__name", "message")
        [:MARKS_SHOWN]
    )
    marks: list[Mark] = []
    waits: list[tuple[datetime, datetime]] = []
    open_waits: dict[int | None, datetime] = {}
    for event, at, task_id, user, agent, message in entries:
        symbol, label = MARKS[event]
        mark = Mark(event=event, symbol=symbol, label=label, at=at, who=user or agent or "Genesis",
                    message=message[:300])
        if task_id in tasks:
            key, title, _ = tasks[task_id]
            rows.setdefault(task_id, Row(key=key, title=title)).marks.append(mark)
        else:
            rows.setdefault(None, Row(key="Mission", title=mission.name)).marks.append(mark)
        marks.append(mark)
        if event in WAIT_STARTS:
            open_waits.setdefault(task_id, at)
        elif event in WAIT_ENDS and task_id in open_waits:
            waits.append((open_waits.pop(task_id), at))
    waits += [(since, now) for since in open_waits.values()]
    return rows, bars, marks, waits, tasks


def _steps(rows: dict, real: Scale, collapsed: Scale) -> list[Step]:
    """The replay's steps in time order (at one moment: runs end, people decide, runs start); each bar learns the
    steps of its start and end, each mark its step."""
    happenings: list[tuple[datetime, int, str, Bar | Mark]] = []
    for row in rows.values():
        for bar in row.bars:
            happenings.append((bar.started, 2, f"{row.key}: attempt {bar.attempt} started", bar))
            if bar.finished is not None:
                happenings.append((bar.finished, 0, f"{row.key}: attempt {bar.attempt} {bar.status_label.lower()} "
                                                    f"after {bar.duration}", bar))
        for mark in row.marks:
            happenings.append((mark.at, 1, f"{row.key}: {mark.label} by {mark.who}"
                                           + (f": {mark.message}" if mark.message else ""), mark))
    happenings.sort(key=lambda h: (h[0], h[1]))
    steps = []
    for index, (at, kind, text, item) in enumerate(happenings):
        steps.append(Step(at=at, text=text, pos=real(at), pos_collapsed=collapsed(at)))
        if isinstance(item, Mark):
            item.step = index
        elif kind == 2:
            item.start_step = index
        else:
            item.end_step = index
    return steps


def mission_timeline(mission) -> Timeline:
    """The mission's runs and marks laid out on a time axis (see the module's docstring)."""
    now = timezone.now()
    rows, bars, marks, waits, tasks = _rows(mission, now)
    moments = [b.started for b in bars] + [b.finished or now for b in bars] + [m.at for m in marks]
    if not moments:
        return Timeline(rows=[], gaps=[], steps=[], ticks=[], ticks_collapsed=[])
    start, end = min(moments), max(moments)
    if end <= start:
        end = start + timedelta(seconds=1)
    gaps = _idle_gaps(start, end, bars, waits)
    real, collapsed = Scale(start, end, gaps, collapse=False), Scale(start, end, gaps, collapse=True)
    steps = _steps(rows, real, collapsed)
    for bar in bars:
        finish = bar.finished or now
        bar.left, bar.left_collapsed = real(bar.started), collapsed(bar.started)
        bar.width = max(round(real(finish) - bar.left, 3), 0.0)
        bar.width_collapsed = max(round(collapsed(finish) - bar.left_collapsed, 3), 0.0)
        if bar.finished is None:
            bar.end_step = len(steps) - 1
    for mark in marks:
        mark.left, mark.left_collapsed = real(mark.at), collapsed(mark.at)
    for gap in gaps:
        gap.left, gap.left_collapsed = real(gap.start), collapsed(gap.start)
        gap.width = round(real(gap.end) - gap.left, 3)
        gap.width_collapsed = round(collapsed(gap.end) - gap.left_collapsed, 3)
    ordered = sorted(rows.items(), key=lambda kv: (kv[0] is not None, tasks.get(kv[0], ("", "", 0))[2], kv[0] or 0))
    return Timeline(rows=[row for _, row in ordered], gaps=gaps, steps=steps,
                    ticks=_ticks(real, start, end, gaps, collapsed=False),
                    ticks_collapsed=_ticks(collapsed, start, end, gaps, collapsed=True), start=start, end=end,
                    truncated=len(bars) >= RUNS_SHOWN or len(marks) >= MARKS_SHOWN)
