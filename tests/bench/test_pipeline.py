"""The pipeline benchmark's arithmetic: SQL run side by side counted once, dbt's overhead beyond its nodes never
negative, and the medians over repeated runs with the median run picked by its ratio."""

from __future__ import annotations

import pytest

from bench.pipeline import SqlMeter, clip, markdown, span_union, summarize
from pipeline.dbt.runner import Invocation, NodeResult


def test_union_counts_overlapping_intervals_once_and_adds_disjoint_ones():
    assert span_union([]) == 0.0
    assert span_union([(0.0, 2.0), (1.0, 3.0)]) == 3.0  # overlapping
    assert span_union([(0.0, 1.0), (2.0, 3.5)]) == 2.5  # disjoint
    assert span_union([(5.0, 6.0), (0.0, 4.0), (1.0, 2.0)]) == 5.0  # nested, out of order
    assert span_union([(0.0, 1.0), (1.0, 2.0)]) == 2.0  # touching
    assert span_union([(0.0, 1.0), (0.5, 2.0), (3.0, 4.0), (3.5, 3.75)]) == 3.0  # both at once


def test_clip_cuts_intervals_to_the_window_and_drops_those_outside():
    assert clip([(0.0, 2.0), (3.0, 5.0), (6.0, 7.0), (-2.0, -1.0)], 1.0, 4.0) == [(1.0, 2.0), (3.0, 4.0)]


def _node(name, span, execution_time):
    started, ended = span or (None, None)
    return NodeResult(unique_id=f"model.p.{name}", name=name, resource_type="model", status="success",
                      execution_time=execution_time, execute_started_at=started, execute_completed_at=ended)


def test_dbt_overhead_beyond_nodes_is_the_time_no_node_was_executing_even_with_parallel_threads():
    # Four threads: node seconds sum to 7 within a 4-second command; nodes executed during 3 of those seconds.
    invocation = Invocation(command="build", success=True, dbt_elapsed=4.0, dbt_started_at=100.0,
                            dbt_completed_at=104.0,
                            nodes=[_node("a", (100.5, 102.5), 2.2), _node("b", (101.0, 103.0), 2.1),
                                   _node("c", (101.5, 103.5), 2.3), _node("skipped", None, 0.0),
                                   _node("d", (102.0, 102.5), 0.6)])
    meter = SqlMeter()
    meter.record_dbt(invocation, wall_s=4.2)
    recorded = meter.dbt_invocations[0]
    assert recorded["node_execution_s"] > recorded["dbt_s"]  # what made the old figure negative
    assert recorded["nodes_busy_s"] == 3.0
    assert recorded["beyond_nodes_s"] == 1.0
    assert recorded["sql_s"] == 6.5
    # The meter holds each node's interval, so SQL coverage is when dbt's SQL ran, not one block from the start.
    assert sorted(began for began, _, kind in meter.calls if kind == "dbt") == [100.5, 101.0, 101.5, 102.0]
    assert meter.covered(100.0, 104.0) == 3.0
    assert meter.covered(101.2, 101.8) == 2.0  # node c alone began in this window (counted whole)
    assert meter.within(100.0, 104.0)["dbt"] == 6.5


def test_overhead_beyond_nodes_stays_non_negative_when_a_node_s_clock_runs_past_the_command():
    invocation = Invocation(command="test", success=True, dbt_elapsed=1.0, dbt_started_at=10.0,
                            dbt_completed_at=11.0, nodes=[_node("a", (9.999, 11.002), 1.0)])
    meter = SqlMeter()
    meter.record_dbt(invocation, wall_s=1.1)
    assert meter.dbt_invocations[0]["beyond_nodes_s"] == 0.0


def _run(mission_s, dbt_cli_s, *, status="completed", rss=300.0, overhead_s=None):
    return {"claims": 2000, "seed": 42, "target": "sqlite", "status": status, "error": "", "load_demo_s": 1.0,
            "mission_s": mission_s, "dbt_build_cli_s": dbt_cli_s, "steps": [], "sql_s": 1.0, "query_s": 0.5,
            "query_calls": 10, "dbt_sql_s": 0.5, "overhead_s": overhead_s if overhead_s is not None else mission_s - 1,
            "backfill_months": 0, "dbt_overhead_ms_p50": 40.0, "dbt_invocations": 3, "peak_rss_mb": rss,
            "slowest_queries": [], "steps_s": mission_s, "loadavg_1m": [0.5, 0.7]}


def test_summary_gives_the_medians_and_the_lower_middle_run_by_ratio():
    runs = [_run(12.0, 3.0, rss=310.0), _run(10.0, 5.0, rss=350.0), _run(9.0, 3.0, rss=300.0),
            _run(16.0, 4.0, rss=320.0)]  # ratios 4, 2, 3, 4
    summary = summarize(runs)
    assert [row["ratio"] for row in summary["runs"]] == [4.0, 2.0, 3.0, 4.0]
    assert summary["median_run"] == 2  # ratios sorted 2, 3, 4, 4: the lower middle is 3, the third run
    median = summary["median"]
    assert median["ratio"] == 3.5 and median["mission_s"] == 11.0 and median["dbt_build_cli_s"] == 3.5
    assert median["overhead_s"] == 10.0 and median["peak_rss_mb"] == 350.0
    assert median["overhead_pct"] == pytest.approx(90.85, abs=0.051)  # shares 91.7, 90.0, 88.9, 93.8


def test_runs_that_did_not_complete_are_listed_but_left_out_of_the_medians():
    runs = [_run(10.0, 5.0), _run(50.0, 5.0, status="failed"), {"claims": 2000, "seed": 42, "target": "sqlite",
                                                                  "status": "crashed", "error": "boom"}]
    summary = summarize(runs)
    assert summary["counted"] == 1 and summary["median"]["mission_s"] == 10.0 and summary["median_run"] == 0
    assert [row["status"] for row in summary["runs"]] == ["completed", "failed", "crashed"]


def test_markdown_shows_medians_and_the_runs_for_repeats_and_the_old_layout_for_one_run():
    repeated = markdown("sqlite", [[_run(12.0, 3.0), _run(10.0, 5.0), _run(9.0, 3.0)]])
    assert "3 runs, 3 completed" in repeated and "**3.00×** (the median of the runs' ratios)" in repeated
    assert "| 2 | completed | 10.0 | 5.0 | 2.00× |" in repeated
    assert "#### Run 3, the median run" in repeated and "--repeat 3" in repeated
    single = markdown("sqlite", [[_run(12.0, 3.0)]])
    assert "### 2,000 claims (seed 42): mission completed" in single
    assert "mission / dbt build alone = **4.00×**" in single
    assert "median" not in single and "--repeat" not in single
