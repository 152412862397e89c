"""The backfill agent. With table models the build is the historical load: the backfill verifies every period of each
target whose grain has one (by its own unit: day, week from Monday, month or year; rows and measure totals against
the source, both sides in one grouped pass each per unit) and rebuilds only the periods that differ (every period on
``full_refresh``), then verifies again; a variance left fails the step naming the periods. Incremental targets
(``materialized: incremental``, by day or month) are built by the build for their latest month only, and here
period by period for the rest of the history, each period once (dbt's delete+insert keyed by the period).
Targets without a period are verified whole-table and rebuilt whole if they differ."""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from agents.access import adapter_for
from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.dbt.build import (
    BuildPlan,
    log,
    plan_build,
    run_dir,
    target_file_missing,
    target_row_counts,
    write,
    write_json,
)
from pipeline.dbt.parallel import MonthWork, build_months
from pipeline.dbt.spec import TargetSpec
from pipeline.dbt.sqlgen import period_unit, target_period_sql
from pipeline.implementations.common import submit_on_adapters
from pipeline.quality.backfill import (
    PeriodCheck,
    WholeResult,
    built_totals,
    compare_periods,
    period_built_totals,
    period_measures,
    read_source_periods,
    require_partition,
    split_by_period,
    verify_whole,
)


@dataclass
class Source:
    """What the source says each month of each target must hold."""

    months: list[str]
    undated: int = 0
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    measures: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    queries: dict[str, Any] = field(default_factory=dict)
    # The periods of the source's history per unit ("day", "week", "month", "year"): the keys ``months`` unites.
    periods: dict[str, list[str]] = field(default_factory=dict)


def report_markdown(report: dict) -> str:
    lines = ["# Backfill report", ""]
    after = report["verified_after"] or report["verified_before"]
    before = {(c["target"], c["month"]): c for c in report["verified_before"]}
    rebuilt = {(t, m) for t, months in report["rebuilt"].items() for m in months}
    if after:
        lines += [f"Every month of {', '.join(report['targets'])} verified against the source: rows and measure "
                  "totals" + (" (full refresh requested)." if report["full_refresh"] else "."), "",
                  "| target | month | expected rows | built rows | variance before | rebuilt | variance after |",
                  "|---|---|---:|---:|---|---|---|"]
        for check in after:
            first = before.get((check["target"], check["month"]), check)
            lines.append(f"| {check['target']} | {check['month']}{'' if check['ok'] else ' ✗'} | "
                         f"{check['expected_rows']:,} | {check['rows']:,} | {_variance(first)} | "
                         f"{'yes' if (check['target'], check['month']) in rebuilt else ''} | {_variance(check)} |")
        bad = sorted({c["month"] for c in after if not c["ok"]})
        lines += ["", f"{len({c['month'] for c in after})} months, {len(rebuilt)} target-month(s) rebuilt, "
                      f"{len(bad)} month(s) with a variance left" + (f": {', '.join(bad)}." if bad else ".")]
        if report["verified_each"]:
            each = report["verified_each"]
            lines += ["", "## Each period verified right after its build", "",
                      "| target | period | how | expected rows | built rows | variance |",
                      "|---|---|---|---:|---:|---|"]
            lines += [f"| {c['target']} | {c['month']}{'' if c['ok'] else ' ✗'} | {c['how']} | "
                      f"{c['expected_rows']:,} | {c['rows']:,} | {_variance(c)} |" for c in each]
            if report["halted"]:
                lines += ["", f"The history build stopped at {report['halted']['target']} "
                              f"{report['halted']['month']}: it differed from the source right after its build."]
        if report["undated_source_rows"]:
            lines += ["", f"{report['undated_source_rows']:,} source row(s) without a date belong to no month."]
    if report["whole_table"]:
        lines += ["", "## Whole-table verification (targets without a period)", "",
                  "| target | expected | built | variance | grain keys on several rows | rebuilt |",
                  "|---|---:|---:|---:|---:|---|"]
        for w in report["whole_table"]:
            lines.append(f"| {w['target']}{'' if w['ok'] else ' ✗'} | {w['expected']:,} | {w['actual']:,} | "
                         f"{w['variance']:+,} | {w['duplicate_keys']:,} | "
                         f"{'yes' if w['target'] in report['rebuilt_whole'] else ''} |")
    return "\n".join(lines) + "\n"


def _variance(check: dict) -> str:
    parts = [f"{name} {value:+,}" for name, value in check["variance"].items() if value]
    return ", ".join(parts) or "0"


@register
class BackfillAgent(BaseAgent):
    kind = "backfill"
    description = ("Verifies every period (day, week, month or year, as each target's grain says) of each target "
                   "against the source (row counts and measure totals, one grouped pass per side) and rebuilds only "
                   "the periods that differ (all on full_refresh); builds "
                   "the history of incremental targets month by month, each month once; verifies targets without "
                   "a period whole-table.")

    def run(self, context: AgentContext) -> Outcome:
        try:
            return self._run(context)
        except _Cancelled as cancelled:
            return Failed(error=str(cancelled), retryable=False)
        except DomainError as error:
            return Failed(error=str(error), retryable=False)

    def _run(self, context: AgentContext) -> Outcome:
        started = time.monotonic()
        config = context.config or {}
        full_refresh = config.get("full_refresh", False)
        if not isinstance(full_refresh, bool):
            raise DomainError(f"full_refresh is true or false, not {full_refresh!r}.", field="full_refresh")
        plan = plan_build(mission=context.mission, config=config, connections=context.connections)
        partition = plan.project.partition
        by_month, whole = split_by_period(plan.project, plan.targets)
        periods = {t.name: sql for t in by_month if (sql := target_period_sql(t, partition)) is not None}
        whole += [t for t in by_month if t.name not in periods]
        by_month = [t for t in by_month if t.name in periods]
        units = {t.name: period_unit(t) for t in by_month}
        # The source's side and the target's side are read at the same time (a thread reads the source while this
        # one reads the built targets, the whole-table targets included): two connections, read-only queries.
        first_whole = None
        with contextlib.ExitStack() as stack:
            reading = None
            if by_month:
                # The access check (ORM) here, in this thread; the adapter connects in the thread that reads with it.
                adapter = adapter_for(plan.source, mission=plan.mission)
                if _side_by_side(plan):
                    pool = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill"))
                    # Opened and read in the pool's thread, the worker's query timeout carried there.
                    reading = submit_on_adapters(pool, BackfillAgent._read_source, (adapter,), plan, by_month,
                                                 units, config)
                else:
                    stack.enter_context(adapter)
            built_before = self._read_built(plan, by_month, periods)
            if whole and not target_file_missing(plan.target):
                first_whole = _verify_whole(plan, whole, config.get("expected_sql"))
            source = (reading.result() if reading is not None
                      else self._read_source(adapter, plan, by_month, units, config) if by_month
                      else Source(months=[]))
        wanted = set(config.get("months") or [])
        months = [m for m in source.months if not wanted or m in wanted]
        if by_month:
            log(context, f"Verifying {', '.join(t.name for t in by_month)} over {len(months)} months "
                         f"({months[0] if months else '-'} to {months[-1] if months else '-'})"
                         + ("; full refresh requested." if full_refresh else "."))
        before, missing = self._verify(plan, by_month, periods, source, wanted, built_before)
        rebuilt, builds, period_checks, halted = self._rebuild(context, plan, by_month, periods, before, missing,
                                                               source, full_refresh=full_refresh,
                                                               every_month=not wanted)
        after = self._verify(plan, by_month, periods, source, wanted)[0] if rebuilt else []
        checked, rebuilt_whole = self._whole(context, plan, whole, full_refresh, config.get("expected_sql"),
                                             first_whole) \
            if whole else ([], [])
        final = after or before
        try:
            totals = target_row_counts(plan)
        except DomainError as error:  # a target whose build failed has no table to count
            log(context, f"Counting the targets' rows failed: {error}", level="warning")
            totals = {}
        failing = sorted({c.month for c in final if not c.ok})
        report = {
            "partition": {"table": partition.table, "column": partition.column} if partition else None,
            "targets": [t.name for t in by_month],
            "incremental_targets": [t.name for t in by_month if t.materialized == "incremental"],
            "whole_table_targets": [t.name for t in whole], "full_refresh": full_refresh,
            "period_sql": periods, "source_sql": source.queries,
            "verified_before": [c.as_dict() for c in before], "missing_targets": missing,
            "rebuilt": rebuilt, "builds": builds, "verified_after": [c.as_dict() for c in after],
            # Each period rebuilt, verified right after its build (that period only), in build order; ``halted``:
            # the incremental period whose variance stopped the history build.
            "verified_each": [{**c.as_dict(), "how": how} for c, how in period_checks],
            "halted": halted.as_dict() if halted else None,
            # The months built (one record each), in the shape the pipeline bench reads.
            "months": [b for b in builds if b["month"] != "all"],
            "whole_table": [w.as_dict() for w in checked], "rebuilt_whole": rebuilt_whole,
            "final_rows": totals, "undated_source_rows": source.undated,
            "seconds": round(time.monotonic() - started, 3),
        }
        write_json(context, "backfill_report.json", "report", report)
        # Rows per target and month, as the stakeholder dashboard charts them.
        write_json(context, "row_counts.json", "data", [
            {"target": c.target, "month": c.month, "rows": c.rows, "expected": c.expected_rows} for c in final])
        write(context, name="backfill_report.md", kind="report", content_type="text/markdown",
              content=report_markdown(report))
        outputs = {
            "months": len({c.month for c in final}), "failing_months": failing, "final_rows": totals,
            "variance": _variance_by_month(final), "rebuilt": rebuilt,
            "builds": sum(len(b["targets"]) for b in builds),
            "threads_used": max((b["threads_used"] for b in builds), default=0),
            # The most months written at the same moment (PostgreSQL builds months in parallel; elsewhere 1).
            "concurrency": max((b.get("concurrency", 1) for b in builds), default=0),
            "whole_table": {w.target: {"expected": w.expected, "built": w.actual, "duplicate_keys": w.duplicate_keys}
                            for w in checked},
            "failing_whole_table": [w.target for w in checked if not w.ok],
        }
        outputs["period_variance"] = _variance_by_month([c for c, _ in period_checks])
        return _outcome(final, checked, builds, rebuilt, outputs, halted)

    @staticmethod
    def _read_source(adapter, plan: BuildPlan, targets: list[TargetSpec], units: dict[str, str],
                     config: dict) -> Source:
        """What the source says, unit by unit (the targets by day, week, month or year): the periods of each unit,
        and per target its rows and measure totals per period (``read_source_periods``: one grouped pass over the
        partition table and one per child table with measures, per unit)."""
        partition = require_partition(plan.project.partition)
        source = Source(months=[], queries={"rows": {}, "measures": []})
        for unit in sorted(set(units.values())):
            group = [t for t in targets if units[t.name] == unit]
            read = read_source_periods(adapter, group, partition, unit, config.get("expected_sql"))
            source.periods[unit], source.undated = read.keys, read.undated
            source.months = sorted({*source.months, *read.keys})
            source.rows.update(read.rows)
            source.measures.update(read.measures)
            source.queries["rows"].update(read.row_sql)
            source.queries["measures"] += read.measure_sql
        return source

    @staticmethod
    def _read_built(plan: BuildPlan, targets: list[TargetSpec], periods: dict[str, str]) -> _Built:
        """Each built target's rows and measure totals per period, one grouped pass per target table; the targets
        with no table yet have none."""
        built: _Built = {}
        if not targets or target_file_missing(plan.target):
            return built
        partition = require_partition(plan.project.partition)
        with adapter_for(plan.target, mission=plan.mission) as adapter:
            tables = {name.upper() for name in adapter.list_tables()}
            for target in targets:
                if target.name.upper() in tables:
                    measures = period_measures(target, partition)
                    built[target.name] = built_totals(adapter, target, periods[target.name], measures)[0]
        return built

    def _verify(self, plan: BuildPlan, targets: list[TargetSpec], periods: dict[str, str], source: Source,
                wanted: set[str], built: _Built | None = None) -> tuple[list[PeriodCheck], list[str]]:
        """Every period of every target (by its unit) against the source, and the targets that have no table
        yet. ``built``: the targets' side already read (``_read_built``)."""
        checks: list[PeriodCheck] = []
        missing: list[str] = []
        if not targets:
            return checks, missing
        partition = require_partition(plan.project.partition)
        if built is None:
            built = self._read_built(plan, targets, periods)
        for target in targets:
            if target.name not in built:
                missing.append(target.name)
            periods_built = built.get(target.name, {})
            if wanted:
                periods_built = {m: v for m, v in periods_built.items() if m in wanted}
            months = [m for m in source.periods.get(period_unit(target), []) if not wanted or m in wanted]
            checks += compare_periods(target, months, source.rows.get(target.name, {}),
                                      source.measures.get(target.name, {}), period_measures(target, partition),
                                      periods_built)
        return checks, missing

    def _rebuild(self, context: AgentContext, plan: BuildPlan, targets: list[TargetSpec], periods: dict[str, str],
                 checks: list[PeriodCheck], missing: list[str], source: Source, *, full_refresh: bool,
                 every_month: bool) -> tuple[dict[str, list[str]], list[dict], list[tuple[PeriodCheck, str]],
                                         PeriodCheck | None]:
        """Rebuild what differs: per month, the table targets that differ in it (their month replaced) and the
        incremental ones (dbt's delete+insert of the month). A table target with no table yet, or every month of
        one on a full refresh of the whole history, is built in one run. Each period built is verified right after
        its build (that period of the target against what the source said of it); a variance in an incremental
        target's period stops the history build there. Returns {target: months rebuilt}, one record per dbt
        invocation, the per-period checks (with how the period was built) and the check that stopped the build."""
        source_periods = {(u, k) for u, keys in source.periods.items() for k in keys}
        verify = _PeriodVerifier(plan, periods, source)
        builds: list[dict] = []
        rebuilt: dict[str, list[str]] = {}
        table = [t for t in targets if t.materialized == "table"]
        whole_runs = [t.name for t in table if t.name in missing or (full_refresh and every_month)]
        if whole_runs:
            invocation = plan.invoke(["run", "--select", *whole_runs], target_dir=run_dir(context, "dbt-backfill"))
            builds.append(_build_record("all", whole_runs, "full run", invocation))
            for name in whole_runs:
                rebuilt[name] = ["all"]
        # Keyed by (unit, period key): a day and a week can share a key (the Monday), not a range.
        todo: dict[tuple[str, str], list[TargetSpec]] = {}
        for target in targets:
            if target.name in whole_runs:
                continue
            differing = {c.month for c in checks if c.target == target.name and (full_refresh or not c.ok)}
            for month in sorted(differing):
                todo.setdefault((period_unit(target), month), []).append(target)
        if plan.target.engine == "postgresql" and settings.GENESIS_DBT_POSTGRES_THREADS > 1 and len(todo) > 1:
            builds += self._build_parallel(context, plan, todo, periods, missing, verify)
        else:
            builds += self._build_serial(context, plan, todo, periods, missing, source_periods, verify)
        for record in builds:
            if record["month"] != "all":
                for name in record["targets"]:
                    rebuilt.setdefault(name, []).append(record["month"])
        for months_rebuilt in rebuilt.values():
            months_rebuilt.sort()
        for record in builds:
            if not record["ok"]:
                log(context, f"{record['month']}: rebuilding {', '.join(record['targets'])} failed: "
                             f"{record['error']}", level="warning")
        if rebuilt:
            log(context, "Rebuilt " + "; ".join(f"{name}: {', '.join(m)}" for name, m in rebuilt.items()) + ".")
        else:
            log(context, "Every month verified equal to the source; nothing rebuilt.")
        if verify.halted is not None:
            log(context, f"{verify.halted.target} {verify.halted.month} differs from the source right after its "
                         f"build ({_variance(verify.halted.as_dict())}): the history build stopped there.",
                level="warning")
        return rebuilt, builds, verify.checks, verify.halted

    def _build_serial(self, context: AgentContext, plan: BuildPlan, todo: dict[tuple[str, str], list[TargetSpec]],
                      periods: dict[str, str], missing: list[str],
                      source_periods: set[tuple[str, str]], verify: _PeriodVerifier) -> list[dict]:
        """One period after another through dbt: the incremental targets by dbt's delete+insert, the table targets
        by replacing the period's rows with the period's SQL. A period the source no longer has leaves dbt's
        delete+insert nothing to key its delete on, so an incremental target's stale rows of it are replaced (by
        nothing) as a table target's are. Each period built is verified right after its build; a variance in an
        incremental target's period stops the build there."""
        builds: list[dict] = []
        for index, (unit, month) in enumerate(sorted(todo)):
            if verify.halted is not None:
                break
            if callable(context.cancelled) and context.cancelled():
                raise _Cancelled(f"Cancelled after {index} of {len(todo)} periods to rebuild.")
            started = time.monotonic()
            items = todo[(unit, month)]
            vanished = (unit, month) not in source_periods
            incremental = [t.name for t in items if t.materialized == "incremental"
                           and not (vanished and t.name not in missing)]
            replaced = [t for t in items if t.name not in incremental]
            if incremental:
                invocation = plan.invoke(["run", "--select", *incremental], variables=_period_vars(unit, month),
                                         target_dir=run_dir(context, "dbt-backfill"), write_results=False)
                builds.append(_build_record(month, incremental, "incremental", invocation, started))
                verify(builds[-1], [t for t in items if t.name in incremental], unit)
            if replaced:
                builds.append(self._replace_month(context, plan, replaced, periods, month, unit))
                verify(builds[-1], replaced, unit)
            if callable(context.heartbeat):
                context.heartbeat()
        return builds

    @staticmethod
    def _build_parallel(context: AgentContext, plan: BuildPlan, todo: dict[tuple[str, str], list[TargetSpec]],
                        periods: dict[str, str], missing: list[str], verify: _PeriodVerifier) -> list[dict]:
        """On PostgreSQL: dbt compiles each month's SQL, and the months' delete+insert run on up to
        GENESIS_DBT_POSTGRES_THREADS connections at once. An incremental target without a table yet gets it from
        dbt with its first month. Each period is verified after its build: the first month of such a target right
        after it, the others once the months written side by side are done."""
        builds: list[dict] = []
        todo = {month: list(items) for month, items in todo.items()}
        for unit, month in sorted(todo):
            seeds = [t.name for t in todo[(unit, month)] if t.name in missing and t.materialized == "incremental"]
            if seeds:
                started = time.monotonic()
                invocation = plan.invoke(["run", "--select", *seeds], variables=_period_vars(unit, month),
                                         target_dir=run_dir(context, "dbt-backfill"), write_results=False)
                builds.append(_build_record(month, seeds, "incremental", invocation, started))
                verify(builds[-1], [t for t in todo[(unit, month)] if t.name in seeds], unit)
                todo[(unit, month)] = [t for t in todo[(unit, month)] if t.name not in seeds]
                missing = [name for name in missing if name not in seeds]
        work = []
        for index, (unit, month) in enumerate(sorted(m for m, items in todo.items() if items)):
            if callable(context.cancelled) and context.cancelled():
                raise _Cancelled(f"Cancelled after compiling {index} of {len(todo)} periods to rebuild.")
            started = time.monotonic()
            names = [t.name for t in todo[(unit, month)]]
            compiled = plan.invoke(["compile", "--select", *names], variables=_period_vars(unit, month),
                                   target_dir=run_dir(context, "dbt-backfill"), write_results=False)
            nodes = {n.name: n for n in compiled.nodes if n.resource_type == "model"}
            if not compiled.success or set(nodes) != set(names):
                builds.append(_build_record(month, names, "parallel month", compiled, started))
                continue
            work.append(MonthWork(month=month, items=[
                {"model": t.name, "relation": nodes[t.name].relation, "period": periods[t.name],
                 "sql": nodes[t.name].compiled_code, "columns": ['"' + c.name + '"' for c in t.columns]}
                for t in todo[(unit, month)]]))
        degree = settings.GENESIS_DBT_POSTGRES_THREADS
        done, most = build_months(plan.target, work, degree=degree)
        log(context, f"{len(work)} months built on PostgreSQL, up to {degree} at once ({most} at the busiest).")
        built = [{"month": d.month, "targets": d.targets, "how": "parallel month", "ok": d.ok, "error": d.error,
                  "threads_used": 1, "concurrency": most, "seconds": d.seconds} for d in done]
        for record in sorted(built, key=lambda r: r["month"]):
            for (unit, month), items in sorted(todo.items()):  # a day and a week may share a key: by target
                if month == record["month"]:
                    verify(record, [t for t in items if t.name in record["targets"]], unit)
        builds += built
        if callable(context.heartbeat):
            context.heartbeat()
        return builds

    @staticmethod
    def _replace_month(context: AgentContext, plan: BuildPlan, targets: list[TargetSpec], periods: dict[str, str],
                       month: str, unit: str = "month") -> dict:
        """The period's SQL of each target, compiled by dbt, replaces the target's rows of that period."""
        started = time.monotonic()
        names = [t.name for t in targets]
        compiled = plan.invoke(["compile", "--select", *names], variables=_period_vars(unit, month),
                               target_dir=run_dir(context, "dbt-backfill"), write_results=False)
        sql = {n.name: n.compiled_code for n in compiled.nodes if n.resource_type == "model"}
        if not compiled.success or set(sql) != set(names):
            return _build_record(month, names, "replace month", compiled, started)
        items = [{"model": t.name, "period": periods[t.name], "sql": sql[t.name],
                  "columns": ['"' + c.name + '"' for c in t.columns]} for t in targets]
        replaced = plan.invoke(["run-operation", "genesis_replace_period", "--args",
                                json.dumps({"month": month, "items": items})],
                               target_dir=run_dir(context, "dbt-backfill"), write_results=False)
        return _build_record(month, names, "replace month", replaced, started)

    @staticmethod
    def _whole(context: AgentContext, plan: BuildPlan, whole: list[TargetSpec], full_refresh: bool,
               overrides: dict | None, first: list[WholeResult] | None = None) -> tuple[list[WholeResult], list[str]]:
        """Verify the targets without a period (``first``: that verification, already run); rebuild those that
        differ (all on a full refresh) and verify again."""
        if target_file_missing(plan.target):
            checked, redo = [], [t.name for t in whole]
        else:
            checked = first if first is not None else _verify_whole(plan, whole, overrides)
            redo = [w.target for w in checked if full_refresh or not w.ok]
        if not redo:
            return checked, []
        invocation = plan.invoke(["run", "--select", *redo], target_dir=run_dir(context, "dbt-whole"))
        if not invocation.success:
            log(context, f"Rebuilding {', '.join(redo)} failed: {invocation.failure_text()}", level="warning")
        checked = _verify_whole(plan, whole, overrides)
        for item in checked:
            if not item.ok:
                log(context, f"{item.target}: expected {item.expected:,} rows, built {item.actual:,}, "
                             f"{item.duplicate_keys:,} grain keys on several rows {item.error}".strip())
        return checked, redo


class _Cancelled(Exception):
    pass


# {target: {period: (rows, {measure column: total})}}
_Built = dict[str, dict[str, tuple[int, dict[str, float]]]]


def _side_by_side(plan: BuildPlan) -> bool:
    """Whether the source and the built targets may be read at the same time: two connections, except to DuckDB
    (a file one process opens once; its reads stay one after another)."""
    return "duckdb" not in {plan.source.engine, plan.target.engine}


class _PeriodVerifier:
    """Verifies one period of the targets just built in it against what the source said of that period: the
    target's rows of that period only (one query per target), the source's side read before the builds. Keeps the
    checks in build order, and the first variance of an incremental target (which stops the history build)."""

    def __init__(self, plan: BuildPlan, periods: dict[str, str], source: Source) -> None:
        self.plan, self.periods, self.source = plan, periods, source
        self.partition = require_partition(plan.project.partition)
        self.checks: list[tuple[PeriodCheck, str]] = []
        self.halted: PeriodCheck | None = None

    def __call__(self, record: dict, targets: list[TargetSpec], unit: str) -> None:
        if not record["ok"] or not targets:
            return  # a failed build is reported as such
        month = record["month"]
        with adapter_for(self.plan.target, mission=self.plan.mission) as adapter:
            for target in targets:
                measures = period_measures(target, self.partition)
                built = period_built_totals(adapter, target, self.periods[target.name], measures, month)[0]
                expected = self.source.periods.get(unit, [])
                (check,) = compare_periods(target, [month] if month in expected else [],
                                           self.source.rows.get(target.name, {}),
                                           self.source.measures.get(target.name, {}), measures, {month: built})
                self.checks.append((check, record["how"]))
                if not check.ok and target.materialized == "incremental" and self.halted is None:
                    self.halted = check


def _period_vars(unit: str, key: str) -> dict[str, str]:
    """The dbt vars that point the period filter at one period: a month by its key alone, as before periods of other
    units existed (so a month's command line stays ``genesis_month: YYYY-MM``)."""
    return {"genesis_month": key} if unit == "month" else {"genesis_month": key, "genesis_period_unit": unit}


def _verify_whole(plan: BuildPlan, whole: list[TargetSpec], overrides: dict | None) -> list[WholeResult]:
    with adapter_for(plan.source, mission=plan.mission) as source, \
            adapter_for(plan.target, mission=plan.mission) as built:
        return verify_whole(source, built, whole, overrides)


def _build_record(month: str, targets: list[str], how: str, invocation, started: float | None = None) -> dict:
    return {"month": month, "targets": targets, "how": how, "ok": invocation.success,
            "error": "" if invocation.success else invocation.failure_text(),
            "threads_used": invocation.threads_used,
            "seconds": round(time.monotonic() - started, 3) if started else round(invocation.elapsed, 3),
            # dbt's own time and the models' SQL within it, as the pipeline bench reads them.
            "dbt_seconds": round(invocation.dbt_elapsed, 4),
            "sql_seconds": round(sum(n.execution_time for n in invocation.nodes), 4)}


def _variance_by_month(checks: list[PeriodCheck]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for check in checks:
        if not check.ok:
            out.setdefault(check.month, {})[check.target] = {k: v for k, v in check.variance.items() if v}
    return out


def _outcome(final: list[PeriodCheck], checked: list[WholeResult], builds: list[dict],
             rebuilt: dict[str, list[str]], outputs: dict, halted: PeriodCheck | None = None) -> Outcome:
    """Failed on an incremental period that differs right after its build (the history build stopped there), a
    month's variance left after the rebuild, a failed rebuild or a whole-table variance; else Succeeded, saying
    what was verified and rebuilt."""
    if halted is not None:
        left = sorted({c.month for c in final if not c.ok} - {halted.month})
        return Failed(error=f"Backfill variance in {halted.target} {halted.month} right after building it "
                            f"({_variance(halted.as_dict())}): the history build stopped there"
                            + (f"; {len(left)} other month(s) differ: {', '.join(left)}" if left else "")
                            + ".", retryable=False, outputs=outputs)
    failing = outputs["failing_months"]
    if failing:
        detail = "; ".join(f"{c.target} {c.month} {({k: v for k, v in c.variance.items() if v})}"
                           for c in final if not c.ok)
        return Failed(error=f"Backfill variance in {len(failing)} month(s) after rebuilding: {', '.join(failing)} "
                            f"({detail[:1500]})", retryable=False, outputs=outputs)
    broken = [b for b in builds if not b["ok"]]
    if broken:
        return Failed(error="Rebuilding failed: " + "; ".join(
            f"{b['month']} {', '.join(b['targets'])}: {b['error']}" for b in broken)[:1500],
            retryable=False, outputs=outputs)
    if any(not w.ok for w in checked):
        return Failed(error="Whole-table verification failed: " + "; ".join(
            f"{w.target} expected {w.expected:,} rows (the source's distinct grain keys), built {w.actual:,}"
            + (f", {w.duplicate_keys:,} grain keys on several rows" if w.duplicate_keys else "")
            + (f" ({w.error})" if w.error else "") for w in checked if not w.ok)[:1500],
            retryable=False, outputs=outputs)
    parts = []
    if final:
        count = sum(len(m) for m in rebuilt.values())
        parts.append(f"Verified {len({c.month for c in final})} months of "
                     f"{', '.join(sorted({c.target for c in final}))} against the source; "
                     + (f"rebuilt {count} target-month(s)" if count else "none differed"))
    if checked:
        parts.append(f"{', '.join(w.target for w in checked)} verified whole-table against the source")
    return Succeeded(outputs=outputs, summary="; ".join(parts) + ".")
