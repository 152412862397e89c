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
