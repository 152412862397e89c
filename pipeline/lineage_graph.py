"""A target's column lineage as a small graph a person reads at a glance: bronze columns on the left (grouped by
table), target columns on the right, one line per "computed from".

Only the layout is computed here (boxes and curves in pixels); the page draws it as inline SVG, with the lineage
table below it as the text a screen reader or a search reads. Sources are ordered by the mean position of the target
columns they feed (the barycentre heuristic), table by table, so most lines run level instead of crossing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROW = 24  # pixels between two boxes
BOX_HEIGHT = 18
CHAR = 7.2  # pixels per character of the 12 px monospace labels
GAP = 160  # the band the lines cross
PAD = 8
TABLE_GAP = 10  # extra space above each source table's heading
MAX_LABEL = 40  # characters: longer names are cut in the box and given whole in its tooltip


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    label: str
    title: str
    kind: str  # "table", "source", "target" or "constant"


@dataclass(frozen=True)
class Edge:
    path: str
    title: str


@dataclass
class LineageGraph:
    width: float
    height: float
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    sources: int = 0
    targets: int = 0


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _width(labels: list[str]) -> float:
    return max((len(_label(text)) for text in labels), default=8) * CHAR + 2 * PAD


def lineage_graph(*, target: str, rows: list[dict]) -> LineageGraph | None:
    """The layout of one target's lineage from the rows the lineage page shows (``column`` and its ``sources`` as
    ``TABLE.COLUMN``), or None when no column has a source (nothing to draw)."""
    targets = [str(row.get("column") or "") for row in rows]
    feeds: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        for source in row.get("sources") or []:
            feeds.setdefault(str(source), []).append(index)
    if not feeds:
        return None

    def centre(source: str) -> float:
        return sum(feeds[source]) / len(feeds[source])

    tables: dict[str, list[str]] = {}
    for source in sorted(feeds, key=lambda s: (centre(s), s)):
        table = source.rsplit(".", 1)[0] if "." in source else ""
        tables.setdefault(table, []).append(source)
    table_order = sorted(tables, key=lambda t: (sum(map(centre, tables[t])) / len(tables[t]), t))

    left_width = _width([*table_order, *(s.rsplit(".", 1)[-1] for s in feeds)]) + PAD
    right_width = _width([f"{target}.{name}" for name in targets])
    graph = LineageGraph(width=0, height=0, sources=len(feeds), targets=len(targets))

    anchor: dict[str, float] = {}
    y = PAD
    for table in table_order:
        y += TABLE_GAP
        graph.boxes.append(Box(x=PAD, y=y, width=left_width, label=_label(table or "(expression)"),
                               title=f"Source table {table}", kind="table"))
        y += ROW
        for source in tables[table]:
            column = source.rsplit(".", 1)[-1]
            graph.boxes.append(Box(x=PAD * 2, y=y, width=left_width - PAD, label=_label(column), title=source,
                                   kind="source"))
            anchor[source] = y + BOX_HEIGHT / 2
            y += ROW
    left_bottom = y

    x_right = PAD + left_width + GAP
    # Target columns spread over the same height as the sources when there are fewer of them, so lines stay level.
    step = max(ROW, (left_bottom - PAD - TABLE_GAP) / max(len(targets), 1))
    y_target = PAD + TABLE_GAP
    graph.boxes.append(Box(x=x_right, y=y_target, width=right_width, label=_label(target), title=f"Target {target}",
                           kind="table"))
    y_target += ROW
    x_start = PAD + left_width
    for index, row in enumerate(rows):
        name = targets[index]
        sources = [str(s) for s in row.get("sources") or []]
        top = y_target + index * step
        graph.boxes.append(Box(x=x_right + PAD, y=top, width=right_width - PAD, label=_label(name),
                               title=f"{target}.{name}" + ("" if sources else ": a constant or not mapped"),
                               kind="target" if sources else "constant"))
        end = top + BOX_HEIGHT / 2
        for source in sources:
            start = anchor[source]
            middle = x_start + GAP / 2
            graph.edges.append(Edge(
                path=f"M{x_start:.1f},{start:.1f} C{middle:.1f},{start:.1f} {middle:.1f},{end:.1f} "
                     f"{x_right + PAD:.1f},{end:.1f}",
                title=f"{target}.{name} is computed from {source}"))
    right_bottom = y_target + max(len(rows) - 1, 0) * step + ROW
    graph.width = x_right + right_width + PAD
    graph.height = max(left_bottom, right_bottom) + PAD
    return graph
