"""The data-quality agent: checks the built targets and fails (naming counts and keys) when any check fails."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor

from agents.access import adapter_for
from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.dbt.build import log, plan_build, run_dir, write, write_json
from pipeline.implementations.common import submit_on_adapters
from pipeline.quality.checks import dbt_proven, independent_checks, run_checks
from pipeline.quality.results import CheckResult


def report_markdown(results: list[CheckResult]) -> str:
    lines = ["# Data-quality report", "", "| check | target | column | result | failing rows | sample keys |",
             "|---|---|---|---|---:|---|"]
    for r in results:
        sample = ", ".join(str(k) for k in r.sample_keys[:5])
        lines.append(f"| {r.check} | {r.target} | {r.column} | {'pass' if r.passed else 'FAIL'} | "
                     f"{r.failing_rows:,} | {sample} |")
    failed = [r for r in results if not r.passed]
    lines += ["", f"{len(results) - len(failed)} of {len(results)} checks passed."]
    for r in failed:
        lines.append(f"- {r.describe()}")
    return "\n".join(lines) + "\n"


def queries_sql(results: list[CheckResult]) -> str:
    chunks = []
    for r in results:
        chunks.append(f"-- {r.check} on {r.target}{'.' + r.column if r.column else ''}")
        chunks += [q.rstrip(";") + ";" for q in r.sql]
        chunks.append("")
    return "\n".join(chunks)


def waived(result: CheckResult, waivers: list[dict]) -> dict | None:
    """The Mission Owner's waiver that covers this failed check (same check, target and, if given, column) and
    gives a reason; a waiver without a reason waives nothing."""
    for waiver in waivers:
        if not isinstance(waiver, dict) or not str(waiver.get("reason") or "").strip():
            continue
        if (waiver.get("check") == result.check and str(waiver.get("target", "")).upper() == result.target.upper()
                and (not waiver.get("column") or str(waiver["column"]).upper() == result.column.upper())):
            return waiver
    return None


@register
class DataQualityAgent(BaseAgent):
    kind = "data_quality"
    description = ("Checks the built targets: non-null keys, type conformity, referential integrity against the "
                   "bronze tables and grain uniqueness; records failing counts and sample keys.")

    # The checks that do not depend on dbt's results run in a second thread while dbt test runs (each thread
    # on its own database connections). Not on DuckDB: dbt-duckdb holds the file read-write for the invocation.
    overlap = True

    def run(self, context: AgentContext) -> Outcome:
        try:
            plan = plan_build(mission=context.mission, config=context.config, connections=context.connections)
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        if not (self.overlap and "duckdb" not in {plan.target.engine, plan.source.engine}):
            return self._run(context, plan, None)
        try:
            # The access checks (ORM) here, in this thread; the adapters connect in the worker.
            adapters = (adapter_for(plan.target, mission=context.mission),
                        adapter_for(plan.source, mission=context.mission))
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="data-quality") as pool:
            # The worker's query timeout (a ContextVar) goes with the copied context.
            early = submit_on_adapters(pool, independent_checks, adapters, plan.targets, plan.project.partition)
            return self._run(context, plan, early)

    def _run(self, context: AgentContext, plan, early: Future | None) -> Outcome:
        targets = plan.targets
        # dbt's own tests of the project (not_null, unique, grain, relationships) on the warm manifest: their
        # run_results are the record dbt keeps; the checks below add the failing counts and sample keys. (The
        # build-marts blueprint's build task runs the models only, so these tests run once per pass.)
        invocation = plan.invoke(["test"], target_dir=run_dir(context, "dbt-test"))
        results_file = (invocation.target_dir or run_dir(context, "dbt-test")) / "run_results.json"
        if results_file.is_file():
            write(context, name="run_results.json", kind="report", content=results_file.read_bytes(),
                  content_type="application/json")
        write(context, name="dbt_test.log", kind="log", content="\n".join(invocation.log_lines) + "\n",
              content_type="text/plain")
        if not invocation.nodes:
            return Failed(error=f"dbt test could not run: {invocation.failure_text()}", retryable=False)
        errored = invocation.failed_nodes  # a test that could not run, or failed at severity error
        manifest_file = plan.project_dir / "target" / "manifest.json"
        # The grain and reference checks a dbt test just proved on these targets are not run a second time.
        proven = dbt_proven(json.loads(manifest_file.read_bytes()) if manifest_file.is_file() else {},
                            {n.unique_id: n.status for n in invocation.nodes})
        try:
            independent = early.result() if early is not None else None
            results = run_checks(mission=context.mission, targets=targets, target_connection=plan.target,
                                 source_connection=plan.source, references=context.config.get("references"),
                                 proven=proven, independent=independent, partition=plan.project.partition)
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        failed = [r for r in results if not r.passed]
        waivers = context.config.get("waivers") or []
        waived_results = [(r, w) for r in failed if (w := waived(r, waivers))]
        failed = [r for r in failed if not waived(r, waivers)]
        log(context, f"{len(results)} data-quality checks on {', '.join(t.name for t in targets)}: "
                     f"{len(failed)} failed.")
        for r in failed:
            log(context, r.describe())
        write_json(context, "dq_results.json", "report", [r.as_dict() for r in results])
        write(context, name="dq_report.md", kind="report", content=report_markdown(results),
              content_type="text/markdown")
        write(context, name="dq_queries.sql", kind="sql", content=queries_sql(results), content_type="text/x-sql")
        for r, w in waived_results:
            log(context, f"WAIVED by the Mission Owner ({w['reason']}): {r.describe()}", level="warning")
        outputs = {"checks": len(results), "failed": [r.as_dict() for r in failed],
                   "waived": [{**r.as_dict(), "reason": w["reason"]} for r, w in waived_results],
                   "passed": len(results) - len(failed), "dbt_tests": {n.name: n.status for n in invocation.nodes}}
        if errored:
            return Failed(error="dbt tests failed: " + "; ".join(f"{n.name} {n.status}: {n.message}"
                                                           for n in errored)
                          + ("; " + "; ".join(r.describe() for r in failed) if failed else ""),
                          retryable=False, outputs=outputs)
        if failed:
            return Failed(error="Data-quality checks failed: " + "; ".join(r.describe() for r in failed),
                          retryable=False, outputs=outputs)
        if waived_results:
            return Succeeded(outputs=outputs, summary=f"{len(results) - len(waived_results)} of {len(results)} "
                             f"data-quality checks passed; {len(waived_results)} failed and waived by the Mission "
                             f"Owner: " + "; ".join(f"{r.describe()} (reason: {w['reason']})"
                                                   for r, w in waived_results))
        return Succeeded(outputs=outputs, summary=f"All {len(results)} data-quality checks passed.")
