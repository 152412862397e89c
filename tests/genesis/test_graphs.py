"""The one set of graph walks: paths, reachability and loops, iterative so that a long chain never hits the stack."""

from genesis.graphs import loops, path_between, reachable


def test_a_path_follows_the_edges_and_is_the_shortest():
    edges = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": ["e"], "e": []}
    assert path_between(edges, "a", "e") in (["a", "b", "d", "e"], ["a", "c", "d", "e"])
    assert path_between(edges, "e", "a") is None
    assert path_between(edges, "d", "d") == ["d"]


def test_reachable_nodes_exclude_the_start_unless_it_is_on_a_loop():
    assert reachable({"a": ["b"], "b": ["c"], "c": []}, "a") == {"b", "c"}
    assert reachable({"a": ["b"], "b": ["a"]}, "a") == {"a", "b"}


def test_each_loop_is_reported_once_from_its_first_node_in_the_graphs_order():
    edges = {"a": ["c"], "b": ["a"], "c": ["b"], "x": ["y"], "y": ["x"], "z": ["a"]}
    found = loops(edges)
    assert sorted(found) == [["a", "c", "b", "a"], ["x", "y", "x"]]
    assert loops({"a": ["b"], "b": ["missing"]}) == []


def test_a_chain_of_twenty_thousand_walks_without_recursion():
    n = 20_000
    chain = {i: [i + 1] for i in range(n)} | {n: []}
    assert path_between(chain, 0, n)[-1] == n
    assert len(reachable(chain, 0)) == n
    assert loops(chain) == []
    chain[n] = [0]
    assert len(loops(chain)[0]) == n + 2


def test_critical_path_is_the_chain_with_the_most_weight():
    from genesis.graphs import critical_path

    edges = {"ingest": [], "profile": ["ingest"], "map": ["ingest"], "build": ["profile", "map"], "report": []}
    assert critical_path(edges, {"ingest": 5, "profile": 1, "map": 30, "build": 10, "report": 40}) == [
        "ingest", "map", "build"]
    assert critical_path(edges, {"report": 100}) == ["report"]


def test_critical_path_without_weights_is_the_longest_chain_and_empty_for_a_loop():
    from genesis.graphs import critical_path

    assert critical_path({"a": [], "b": ["a"], "c": ["b"], "d": ["a"]}, {}) == ["a", "b", "c"]
    assert critical_path({}, {}) == []
    assert critical_path({"a": ["b"], "b": ["a"]}, {}) == []


def test_critical_path_walks_a_long_chain_without_recursion():
    from genesis.graphs import critical_path

    edges = {i: [i - 1] if i else [] for i in range(20_000)}
    assert len(critical_path(edges, {})) == 20_000


def test_critical_path_leaves_out_dependencies_outside_the_graph():
    from genesis.graphs import critical_path

    assert critical_path({"a": ["elsewhere"], "b": ["a"]}, {"elsewhere": 100}) == ["a", "b"]
