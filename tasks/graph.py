"""The task graph: cycle detection for a new edge, by one walk from the edge over the mission's edges."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable

from tasks.models import Dependency, Task


def mission_edges(mission_id: int) -> dict[int, list[int]]:
    """``task_id -> [depends_on_id, ...]`` for one mission, read in a single query."""
    edges: dict[int, list[int]] = defaultdict(list)
    rows = Dependency.objects.filter(task__mission_id=mission_id).values_list("task_id", "depends_on_id")
    for task_id, depends_on_id in rows:
        edges[task_id].append(depends_on_id)
    return edges


def find_cycle(
    edges: dict[int, list[int]], task_id: int, depends_on_id: int
) -> list[int] | None:
    """If ``task_id`` depending on ``depends_on_id`` closes a loop, the loop as ids starting at ``task_id``.

    A breadth-first walk from ``depends_on_id`` along "depends on" edges: the edge closes a loop exactly
    when that walk reaches ``task_id``. The walk visits each node once, so it is linear in the part of the
    graph reachable from the new edge, never quadratic.
    """
    if task_id == depends_on_id:
        return [task_id, task_id]
    parent: dict[int, int | None] = {depends_on_id: None}
    queue = deque([depends_on_id])
    while queue:
        node = queue.popleft()
        for nxt in edges.get(node, ()):
            if nxt in parent:
                continue
            parent[nxt] = node
            if nxt == task_id:
                chain = [nxt]
                step = node
                while step is not None:
                    chain.append(step)
                    step = parent[step]
                # chain runs task_id <- ... <- depends_on_id; the loop reads task → depends_on → ... → task
                return [task_id, *reversed(chain[1:]), task_id]
            queue.append(nxt)
    return None


def descendants(edges: dict[int, list[int]], start: int) -> set[int]:
    """Every node reachable from ``start`` along ``edges`` (``start`` itself excluded unless on a loop)."""
    seen: set[int] = set()
    queue = deque(edges.get(start, ()))
    while queue:
        node = queue.popleft()
        if node not in seen:
            seen.add(node)
            queue.extend(edges.get(node, ()))
    return seen


def cycle_keys(path_ids: Iterable[int]) -> list[str]:
    ids = list(path_ids)
    keys = dict(Task.objects.filter(id__in=set(ids)).values_list("id", "key"))
    return [keys[i] for i in ids]
