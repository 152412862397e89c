"""The lineage graph's layout: one line per source a column is computed from, sources grouped by table and placed
beside the columns they feed, constants marked, long names cut with the whole name kept for the tooltip."""

from pipeline.lineage_graph import MAX_LABEL, lineage_graph


def rows(**columns):
    return [{"column": name, "sources": sources} for name, sources in columns.items()]


def boxes(graph, kind):
    return [box for box in graph.boxes if box.kind == kind]


def test_each_source_of_each_column_is_one_line_and_sources_are_grouped_by_table():
    graph = lineage_graph(target="ORDERS_DAILY", rows=rows(
        DAY=["orders.placed_at"], ORDERS=["orders.id"], REVENUE=["payments.amount", "payments.fee"],
        CUSTOMERS=["orders.customer_id"], NOTE=[]))
    assert len(graph.edges) == 5
    assert {e.title for e in graph.edges} >= {"ORDERS_DAILY.REVENUE is computed from payments.amount",
                                             "ORDERS_DAILY.REVENUE is computed from payments.fee"}
    assert [b.label for b in boxes(graph, "table")] == ["orders", "payments", "ORDERS_DAILY"]
    # Sources sit under their own table's heading, each once however many columns read it.
    assert [b.title for b in boxes(graph, "source")] == [
        "orders.placed_at", "orders.id", "orders.customer_id", "payments.amount", "payments.fee"]
    assert [b.label for b in boxes(graph, "target")] == ["DAY", "ORDERS", "REVENUE", "CUSTOMERS"]
    assert [b.label for b in boxes(graph, "constant")] == ["NOTE"]
    assert graph.sources == 5 and graph.targets == 5
    # Everything inside the drawing.
    assert all(0 <= b.x and b.x + b.width <= graph.width and 0 <= b.y <= graph.height - 18 for b in graph.boxes)


def test_sources_are_ordered_by_the_columns_they_feed_so_lines_do_not_cross():
    graph = lineage_graph(target="T", rows=rows(A=["s.z"], B=["s.y"], C=["s.x"]))
    # Alphabetically x, y, z would cross every line; by the columns they feed they run level: z, y, x.
    assert [b.title for b in boxes(graph, "source")] == ["s.z", "s.y", "s.x"]
    ends = [(float(e.path.split()[0][1:].split(",")[1]), float(e.path.split()[-1].split(",")[1]))
            for e in graph.edges]
    assert [start for start, _ in ends] == sorted(start for start, _ in ends)
    assert [end for _, end in ends] == sorted(end for _, end in ends)


def test_long_names_are_cut_in_the_box_and_whole_in_the_tooltip():
    name = "A_VERY_LONG_COLUMN_NAME_THAT_GOES_ON_AND_ON_FOR_EVER"
    graph = lineage_graph(target="T", rows=rows(**{name: [f"src.{name.lower()}"]}))
    target = boxes(graph, "target")[0]
    assert len(target.label) == MAX_LABEL and target.label.endswith("…") and target.title == f"T.{name}"
    assert boxes(graph, "source")[0].title == f"src.{name.lower()}"


def test_nothing_to_draw_without_a_single_source():
    assert lineage_graph(target="T", rows=rows(A=[], B=[])) is None
    assert lineage_graph(target="T", rows=[]) is None
