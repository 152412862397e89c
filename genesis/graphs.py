"""Walks over dependency graphs (tasks of a mission, actions of a blueprint), one implementation for every caller.

A graph is ``{node: [the nodes it depends on, ...]}``. Everything here is iterative (no recursion: a long chain
cannot exhaust the stack) and linear in the part of the graph it visits; whole-graph cycle detection is the
standard library's ``graphlib``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from typing import TypeVar

Node = TypeVar("Node", bound=Hashable)
Edges = Mapping[Node, Sequence[Node]]


def path_between(edges: Edges, start: Node, goal: Node) -> list[Node] | None:
    """The shortest path from ``start`` to ``goal`` along the edges (both ends included), or None."""
    if start == goal:
        return [start]
    parent: dict = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges.get(node, ()):
            if nxt in parent:
                continue
            parent[nxt] = node
            if nxt == goal:
                path = [nxt]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return list(reversed(path))
            queue.append(nxt)
    return None


def reachable(edges: Edges, start: Node) -> set:
    """Every node reachable from ``start`` (``start`` itself only if it lies on a loop)."""
    seen: set = set()
    queue = deque(edges.get(start, ()))
    while queue:
        node = queue.popleft()
        if node not in seen:
            seen.add(node)
            queue.extend(edges.get(node, ()))
    return seen


def loops(edges: Edges) -> list[list]:
    """Each loop of the graph once, as the nodes along the edges from the first of them (in the graph's own order)
    back to it: ``[a, c, b, a]`` for a → c → b → a. Edges to nodes outside the graph are ignored."""
    order = {node: i for i, node in enumerate(edges)}
    remaining = {node: [n for n in deps if n in edges] for node, deps in edges.items()}
    found = []
    while True:
        # graphlib takes "node: its predecessors" and reports a loop in predecessor order; ours is the reverse.
        try:
            TopologicalSorter(remaining).prepare()
        except CycleError as error:
            loop = list(reversed(error.args[1]))[:-1]
        else:
            return found
        first = min(range(len(loop)), key=lambda i: order[loop[i]])
        loop = loop[first:] + loop[:first]
        found.append([*loop, loop[0]])
        closing = loop[-1]  # the edge closing the loop, back to its first node, is taken out to find the next loop
        remaining[closing] = [n for n in remaining[closing] if n != loop[0]]


def critical_path(edges: Edges, weight: Mapping[Node, float]) -> list:
    """The heaviest chain of the graph: the nodes, first to last along the dependencies, whose weights (e.g. run
    time) add up to the most; among chains of equal weight, the one with the most nodes. Empty for an empty graph or
    one with a loop. Linear in the graph's size (graphlib orders it; one pass keeps each node's heaviest chain)."""
    try:
        # Nodes named only as a dependency (outside the graph) are ordered too, then left out.
        order = [n for n in TopologicalSorter(edges).static_order() if n in edges]
    except CycleError:
        return []
    best: dict = {}  # node -> (weight of the heaviest chain ending here, its length, the node before)
    for node in order:
        before = max(((best[d][0], best[d][1], i, d) for i, d in enumerate(edges[node]) if d in best),
                     default=None, key=lambda b: (b[0], b[1], -b[2]))
        own = weight.get(node, 0)
        best[node] = (own, 1, None) if before is None else (before[0] + own, before[1] + 1, before[3])
    if not best:
        return []
    node = max(order, key=lambda n: best[n][:2])
    path = []
    while node is not None:
        path.append(node)
        node = best[node][2]
    return list(reversed(path))
