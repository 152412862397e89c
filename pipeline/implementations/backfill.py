"""The backfill agent: rebuilds the targets month by month and checks each month's rows against the source."""

from __future__ import annotations

import json
import time

from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.connectors import adapter_for
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.dbt.build import log, plan_build, run_dir, target_row_counts, write, write_json
from pipeline.quality.backfill import (
    MonthResult,
    expected_counts,
    failing_months,
    month_partitioned,
    require_partition,
    source_months,
)


def report_markdown(months: list[MonthResult], targets: list[str], *, assembled: str = "", undated: int = 0) -> str:
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
    return "\n".join(lines) + "\n"


@register
class BackfillAgent(BaseAgent):
    kind = "backfill"
    description = ("Rebuilds the targets month by month over the source's history with one warm dbt runner and "
                   "records, per month and target, expected rows, built rows and the variance.")

    def run(self, context: AgentContext) -> Outcome:
        try:
            plan = plan_build(mission=context.mission, config=context.config, connections=context.connections)
            partition = require_partition(plan.project.partition)
            with adapter_for(plan.source, mission=plan.mission) as source:
                months, undated = source_months(source, partition)
                expected, queries = expected_counts(source, plan.targets, partition,
                                                    context.config.get("expected_sql"))
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        every_month = len(months)
        wanted = context.config.get("months")
        if wanted:
            months = [m for m in months if m in set(wanted)]
        log(context, f"Backfill of {', '.join(t.name for t in plan.targets)} over {len(months)} months "
                     f"({months[0] if months else '-'} to {months[-1] if months else '-'}), partitioned by "
                     f"{partition.table}.{partition.column}.")
        names = [t.name for t in plan.targets]
        # Each month's rows are kept as they are built and checked (the models' post-hook), and the kept months
        # then take the targets' place; a full run is needed only when the months cannot make the whole targets.
        stash = month_partitioned(plan.project, plan.targets)
        results: list[MonthResult] = []
        target_dir = run_dir(context, "dbt-backfill")
        for index, month in enumerate(months):
            if callable(context.cancelled) and context.cancelled():
                self._discard_kept(context, plan, stash)
                return Failed(error=f"Cancelled after {len(results)} of {len(months)} months.", retryable=False)
            started = time.monotonic()
            invocation = plan.invoke(["run"], target_dir=target_dir, write_results=False, variables={
                "genesis_month": month, "genesis_backfill": {"stash": stash, "fresh": index == 0}})
            result = MonthResult(month=month, expected={t: expected[t].get(month, 0) for t in names},
                                 dbt_seconds=round(invocation.dbt_elapsed, 4),
                                 sql_seconds=round(sum(n.execution_time for n in invocation.nodes), 4))
            if invocation.success:
                result.actual = target_row_counts(plan)
            else:
                result.error = invocation.failure_text()
            result.seconds = round(time.monotonic() - started, 3)
            results.append(result)
            if callable(context.heartbeat):
                context.heartbeat()
            if not result.ok:
                log(context, f"{month}: variance {result.variance} {result.error}".strip())
        whole = len(results) == every_month and undated == 0
        final, assembled = self._leave_targets_whole(context, plan, results, stash, whole)
        totals = target_row_counts(plan) if final.success else {}
        report = {"partition": {"table": partition.table, "column": partition.column}, "targets": names,
                  "expected_sql": queries, "months": [m.as_dict() for m in results], "final_rows": totals,
                  "final_run_ok": final.success, "assembled_from": assembled, "undated_source_rows": undated,
                  "seconds": round(sum(m.seconds for m in results), 3)}
        write_json(context, "backfill_report.json", "report", report)
        # Rows per target and month, as the stakeholder dashboard charts them.
        write_json(context, "row_counts.json", "data", [
            {"target": name, "month": m.month, "rows": m.actual.get(name, 0), "expected": m.expected.get(name, 0)}
            for m in results for name in names
        ])
        write(context, name="backfill_report.md", kind="report", content_type="text/markdown",
              content=report_markdown(results, names, assembled=assembled, undated=undated))
        bad = failing_months(results)
        outputs = {"months": len(results), "failing_months": bad, "final_rows": totals,
                   "variance": {m.month: m.variance for m in results if not m.ok}}
        if bad:
            return Failed(error=f"Backfill variance in {len(bad)} month(s): {', '.join(bad)} "
                                f"({'; '.join(f'{m.month} {m.variance}' for m in results if not m.ok)[:1500]})",
                          retryable=False, outputs=outputs)
        if not final.success:
            return Failed(error=f"Putting the whole targets back failed: {final.failure_text()}",
                          retryable=False, outputs=outputs)
        return Succeeded(outputs=outputs, summary=f"Backfilled {len(results)} months; every month's rows match "
                                                  f"the source.")

    @staticmethod
    def _leave_targets_whole(context: AgentContext, plan, results: list[MonthResult], stash: list[str],
                             whole: bool):
        """Leave the targets whole again: the kept months take their place when they are the whole targets (every
        month of the source built without error, every target month-partitioned, no undated source rows), else one
        full run rebuilds them. Returns the invocation and how the targets were made whole."""
        complete = whole and bool(results) and all(not m.error for m in results)
        if complete and set(stash) == {t.name for t in plan.targets}:
            swap = plan.invoke(["run-operation", "genesis_backfill_swap", "--args", json.dumps({"models": stash})],
                               target_dir=run_dir(context, "dbt-swap"), write_results=False)
            if swap.success:
                log(context, f"The {len(results)} months built are now the whole targets ({', '.join(stash)}).")
                return swap, "months"
            log(context, f"Putting the months in place failed ({swap.failure_text()}); rebuilding in full.",
                level="warning")
        else:
            log(context, "The months built are not the whole targets (some months left out or failed, undated "
                         "source rows, or a target not split by month): one full run rebuilds them.")
        BackfillAgent._discard_kept(context, plan, stash)
        return plan.invoke(["run"], target_dir=run_dir(context, "dbt-final")), "full run"

    @staticmethod
    def _discard_kept(context: AgentContext, plan, stash: list[str]) -> None:
        """Drop the months kept on the side (<TARGET>__genesis_backfill) when they will not become the targets."""
        if stash:
            plan.invoke(["run-operation", "genesis_backfill_discard", "--args", json.dumps({"models": stash})],
                        target_dir=run_dir(context, "dbt-swap"), write_results=False)
