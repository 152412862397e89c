"""The backfill agent: rebuilds the targets whose grain has a period month by month and checks each month's rows
against the source; the targets without a period are rebuilt whole and verified whole-table."""

from __future__ import annotations

import json
import time

from agents.access import adapter_for
from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.dbt.build import log, plan_build, run_dir, target_row_counts, write, write_json
from pipeline.quality.backfill import (
    MonthResult,
    WholeResult,
    expected_counts,
    failing_months,
    month_partitioned,
    require_partition,
    source_months,
    split_by_period,
    verify_whole,
)


def report_markdown(months: list[MonthResult], targets: list[str], *, assembled: str = "", undated: int = 0,
                    whole: list[WholeResult] = ()) -> str:
    if not targets:
        return _whole_markdown(["# Backfill report", ""], whole, assembled)
    head = " | ".join(f"{t} expected | {t} built | {t} variance" for t in targets)
    lines = ["# Backfill report", "", f"| month | {head} | seconds |",
             "|---|" + "---:|" * (3 * len(targets) + 1)]
    for m in months:
        cells = " | ".join(f"{m.expected.get(t, 0):,} | {m.actual.get(t, 0):,} | {m.variance.get(t, 0):+,}"
                           for t in targets)
        lines.append(f"| {m.month}{' ✗' if not m.ok else ''} | {cells} | {m.seconds:.2f} |")
    bad = [m.month for m in months if not m.ok]
    lines += ["", f"{len(months)} months, {len(bad)} with a variance or an error"
                  + (f": {', '.join(bad)}." if bad else ".")]
    if assembled == "months":
        lines += ["", "The months built and checked above are now the targets."]
    elif assembled:
        lines += ["", "The targets were rebuilt in one full run after the months"
                      + (f" ({undated:,} source row(s) without a date belong to no month)." if undated else ".")]
    return _whole_markdown(lines, whole, "") if whole else "\n".join(lines) + "\n"


def _whole_markdown(lines: list[str], whole: list[WholeResult], assembled: str) -> str:
    """The targets without a period, verified whole-table."""
    lines = [*lines, "", "## Whole-table verification (targets without a period)", "",
             "| target | expected | built | variance | grain keys on several rows |", "|---|---:|---:|---:|---:|"]
    for w in whole:
        lines.append(f"| {w.target}{' ✗' if not w.ok else ''} | {w.expected:,} | {w.actual:,} | {w.variance:+,} | "
                     f"{w.duplicate_keys:,} |")
    bad = [w.target for w in whole if not w.ok]
    lines += ["", f"{len(whole)} target(s) verified whole, {len(bad)} with a variance or an error"
                  + (f": {', '.join(bad)}." if bad else ".")]
    if assembled == "full run":
        lines += ["", "The targets were built in one full run."]
    return "\n".join(lines) + "\n"


def _outcome(results: list[MonthResult], checked: list[WholeResult], final, outputs: dict) -> Outcome:
    """Failed on a month's variance, a failed final run or a whole-table variance; else Succeeded, saying how."""
    bad = failing_months(results)
    if bad:
        return Failed(error=f"Backfill variance in {len(bad)} month(s): {', '.join(bad)} "
                            f"({'; '.join(f'{m.month} {m.variance}' for m in results if not m.ok)[:1500]})",
                      retryable=False, outputs=outputs)
    if not final.success:
        return Failed(error=f"Putting the whole targets back failed: {final.failure_text()}",
                      retryable=False, outputs=outputs)
    if any(not w.ok for w in checked):
        return Failed(error="Whole-table verification failed: " + "; ".join(
            f"{w.target} expected {w.expected:,} rows (the source's distinct grain keys), built {w.actual:,}"
            + (f", {w.duplicate_keys:,} grain keys on several rows" if w.duplicate_keys else "")
            + (f" ({w.error})" if w.error else "") for w in checked if not w.ok)[:1500],
            retryable=False, outputs=outputs)
    parts = []
    if results:
        parts.append(f"Backfilled {len(results)} months; every month's rows match the source")
    if checked:
        parts.append(f"{', '.join(w.target for w in checked)} verified whole-table against the source")
    return Succeeded(outputs=outputs, summary="; ".join(parts) + ".")


@register
class BackfillAgent(BaseAgent):
    kind = "backfill"
    description = ("Rebuilds the targets whose grain has a period month by month over the source's history with one "
                   "warm dbt runner and records, per month and target, expected rows, built rows and the variance; "
                   "targets without a period are rebuilt whole and verified against the source whole-table.")

    def run(self, context: AgentContext) -> Outcome:
        try:
            plan = plan_build(mission=context.mission, config=context.config, connections=context.connections)
            by_month, whole = split_by_period(plan.project, plan.targets)
            months, undated, expected, queries, partition = [], 0, {}, {}, plan.project.partition
            if by_month:
                partition = require_partition(partition)
                with adapter_for(plan.source, mission=plan.mission) as source:
                    months, undated = source_months(source, partition)
                    expected, queries = expected_counts(source, by_month, partition,
                                                        context.config.get("expected_sql"))
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        every_month = len(months)
        wanted = context.config.get("months")
        if wanted:
            months = [m for m in months if m in set(wanted)]
        names = [t.name for t in by_month]
        whole_names = [t.name for t in whole]
        if by_month:
            log(context, f"Backfill of {', '.join(names)} over {len(months)} months "
                         f"({months[0] if months else '-'} to {months[-1] if months else '-'}), partitioned by "
                         f"{partition.table}.{partition.column}.")
        if whole:
            log(context, f"{', '.join(whole_names)}: no period in the grain; rebuilt whole and verified "
                         "whole-table.")
        # Only the targets verified by month are built in the month runs.
        select = ["--select", *names] if whole else []
        # Each month's rows are kept as they are built and checked (the models' post-hook), and the kept months
        # then take the targets' place; a full run is needed only when the months cannot make the whole targets.
        stash = month_partitioned(plan.project, by_month)
        results: list[MonthResult] = []
        target_dir = run_dir(context, "dbt-backfill")
        for index, month in enumerate(months):
            if callable(context.cancelled) and context.cancelled():
                self._discard_kept(context, plan, stash)
                return Failed(error=f"Cancelled after {len(results)} of {len(months)} months.", retryable=False)
            started = time.monotonic()
            invocation = plan.invoke(["run", *select], target_dir=target_dir, write_results=False, variables={
                "genesis_month": month, "genesis_backfill": {"stash": stash, "fresh": index == 0}})
            result = MonthResult(month=month, expected={t: expected[t].get(month, 0) for t in names},
                                 dbt_seconds=round(invocation.dbt_elapsed, 4),
                                 sql_seconds=round(sum(n.execution_time for n in invocation.nodes), 4))
            if invocation.success:
                result.actual = target_row_counts(plan, by_month)
            else:
                result.error = invocation.failure_text()
            result.seconds = round(time.monotonic() - started, 3)
            results.append(result)
            if callable(context.heartbeat):
                context.heartbeat()
            if not result.ok:
                log(context, f"{month}: variance {result.variance} {result.error}".strip())
        complete = len(results) == every_month and undated == 0
        final, assembled = self._leave_targets_whole(context, plan, results, stash, complete, names, whole_names)
        checked = self._verify_whole(context, plan, whole) if final.success and whole else []
        totals = target_row_counts(plan) if final.success else {}
        report = {"partition": {"table": partition.table, "column": partition.column} if partition else None,
                  "targets": names, "whole_table_targets": whole_names,
                  "expected_sql": queries, "months": [m.as_dict() for m in results],
                  "whole_table": [w.as_dict() for w in checked], "final_rows": totals,
                  "final_run_ok": final.success, "assembled_from": assembled, "undated_source_rows": undated,
                  "seconds": round(sum(m.seconds for m in results), 3)}
        write_json(context, "backfill_report.json", "report", report)
        # Rows per target and month, as the stakeholder dashboard charts them.
        write_json(context, "row_counts.json", "data", [
            {"target": name, "month": m.month, "rows": m.actual.get(name, 0), "expected": m.expected.get(name, 0)}
            for m in results for name in names
        ])
        write(context, name="backfill_report.md", kind="report", content_type="text/markdown",
              content=report_markdown(results, names, assembled=assembled, undated=undated, whole=checked))
        outputs = {"months": len(results), "failing_months": failing_months(results), "final_rows": totals,
                   "variance": {m.month: m.variance for m in results if not m.ok},
                   "whole_table": {w.target: {"expected": w.expected, "built": w.actual,
                                              "duplicate_keys": w.duplicate_keys} for w in checked},
                   "failing_whole_table": [w.target for w in checked if not w.ok]}
        return _outcome(results, checked, final, outputs)

    @staticmethod
    def _leave_targets_whole(context: AgentContext, plan, results: list[MonthResult], stash: list[str],
                             whole: bool, names: list[str], whole_names: list[str]):
        """Leave the targets whole again: the kept months take their place when they are the whole targets (every
        month of the source built without error, every month target month-partitioned, no undated source rows),
        and the targets without a period are built in one run; else one full run rebuilds them all. Returns the
        invocation and how the targets were made whole."""
        complete = whole and bool(results) and all(not m.error for m in results)
        if names and complete and set(stash) == set(names):
            swap = plan.invoke(["run-operation", "genesis_backfill_swap", "--args", json.dumps({"models": stash})],
                               target_dir=run_dir(context, "dbt-swap"), write_results=False)
            if swap.success:
                log(context, f"The {len(results)} months built are now the whole targets ({', '.join(stash)}).")
                if not whole_names:
                    return swap, "months"
                rest = plan.invoke(["run", "--select", *whole_names], target_dir=run_dir(context, "dbt-whole"))
                return rest, "months"
            log(context, f"Putting the months in place failed ({swap.failure_text()}); rebuilding in full.",
                level="warning")
        elif names:
            log(context, "The months built are not the whole targets (some months left out or failed, undated "
                         "source rows, or a target not split by month): one full run rebuilds them.")
        BackfillAgent._discard_kept(context, plan, stash)
        return plan.invoke(["run"], target_dir=run_dir(context, "dbt-final")), "full run"

    @staticmethod
    def _verify_whole(context: AgentContext, plan, whole: list) -> list[WholeResult]:
        with adapter_for(plan.source, mission=plan.mission) as source, \
                adapter_for(plan.target, mission=plan.mission) as built:
            checked = verify_whole(source, built, whole, context.config.get("expected_sql"))
        for item in checked:
            if not item.ok:
                log(context, f"{item.target}: expected {item.expected:,} rows, built {item.actual:,}, "
                             f"{item.duplicate_keys:,} grain keys on several rows {item.error}".strip())
        return checked

    @staticmethod
    def _discard_kept(context: AgentContext, plan, stash: list[str]) -> None:
        """Drop the months kept on the side (<TARGET>__genesis_backfill) when they will not become the targets."""
        if stash:
            plan.invoke(["run-operation", "genesis_backfill_discard", "--args", json.dumps({"models": stash})],
                        target_dir=run_dir(context, "dbt-swap"), write_results=False)
