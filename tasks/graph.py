"""The task graph: cycle detection for a new edge, by one walk from the edge over the mission's edges."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from genesis.graphs import path_between
from tasks.models import Dependency, Task


def mission_edges(mission_id: int) -> dict[int, list[int]]:
    """``task_id -> [depends_on_id, ...]`` for one mission, read in a single query."""
    edges: dict[int, list[int]] = defaultdict(list)
    rows = Dependency.objects.filter(task__mission_id=mission_id).values_list("task_id", "depends_on_id")
    for task_id, depends_on_id in rows:
        edges[task_id].append(depends_on_id)
    return edges


def find_cycle(edges: dict[int, list[int]], task_id: int, depends_on_id: int) -> list[int] | None:
    """If ``task_id`` depending on ``depends_on_id`` closes a loop, the loop as ids starting at ``task_id``: the loop
    exists exactly when ``task_id`` is reachable from ``depends_on_id`` (one walk over the part of the graph reachable
    from the new edge, never the whole mission)."""
    path = path_between(edges, depends_on_id, task_id)
    return None if path is None else [task_id, *path]


def cycle_keys(path_ids: Iterable[int]) -> list[str]:
    ids = list(path_ids)
    keys = dict(Task.objects.filter(id__in=set(ids)).values_list("id", "key"))
    return [keys[i] for i in ids]
