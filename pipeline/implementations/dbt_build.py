"""The dbt building agent: generate the project from the approved specs and run ``dbt build`` in-process.

With ``tests: false`` in the task's config it runs ``dbt run`` instead (the models only): the blueprint's own
data-quality task runs the project's tests right after, on the same targets, so each test runs once per pass of the
mission and its result is recorded where the blueprint looks for it (that task's run_results)."""

from __future__ import annotations

from pathlib import Path

from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.dbt.build import BuildPlan, log, plan_build, run_dir, target_row_counts, write, write_json
from pipeline.dbt.runner import Invocation


def attach_invocation(context: AgentContext, plan: BuildPlan, invocation: Invocation, *, prefix: str = "") -> None:
    """run_results, manifest, compiled SQL per model and the log of one invocation, as artifacts."""
    target_dir = invocation.target_dir or Path()
    results = target_dir / "run_results.json"
    if results.is_file():
        write(context, name=f"{prefix}run_results.json", kind="report", content=results.read_bytes(),
              content_type="application/json")
    else:
        write_json(context, f"{prefix}run_results.json", "report", invocation.summary())
    manifest = target_dir / "manifest.json"
    if not manifest.is_file():
        manifest = plan.project_dir / "target" / "manifest.json"
    if manifest.is_file():
        write(context, name=f"{prefix}manifest.json", kind="data", content=manifest.read_bytes(),
              content_type="application/json")
    for node in invocation.nodes:
        if node.resource_type == "model" and node.compiled_code:
            write(context, name=f"{prefix}compiled-{node.name}.sql", kind="sql", content=node.compiled_code,
                  content_type="text/x-sql")
    write(context, name=f"{prefix}dbt.log", kind="log", content="\n".join(invocation.log_lines) + "\n",
          content_type="text/plain")


@register
class DbtBuildAgent(BaseAgent):
    kind = "dbt_build"
    description = ("Generates a dbt project from the approved mapping specs (sources, one model per target, "
                   "schema docs and tests) and runs dbt build in-process with a warm, cached manifest (dbt run, the "
                   "models only, when its config says tests: false and a data-quality task runs the tests).")

    def run(self, context: AgentContext) -> Outcome:
        try:
            plan = plan_build(mission=context.mission, config=context.config, connections=context.connections)
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        log(context, f"dbt project {plan.project.name} revision {plan.project.revision[:12]}: "
                     f"{', '.join(t.name for t in plan.targets)} into {plan.target.name} ({plan.target.engine}).")
        for relative, text in sorted(plan.project.files.items()):
            if relative.startswith("models/") and relative.endswith(".sql"):
                write(context, name=f"model-{Path(relative).name}", kind="sql", content=text,
                      content_type="text/x-sql")
        tests = context.config.get("tests", True)
        if tests not in (True, False):
            return Failed(error=f"config tests: {tests!r} is not true or false.", retryable=False)
        command = "build" if tests else "run"
        invocation = plan.invoke([command], target_dir=run_dir(context, "dbt-build"))
        start = " from the template" if invocation.parsed_from_template else ""
        log(context, f"dbt {command}: {'succeeded' if invocation.success else 'failed'} in {invocation.elapsed:.2f}s "
                     f"(parse {invocation.parse_elapsed:.2f}s{start}, manifest reused: {invocation.reused_manifest}).")
        attach_invocation(context, plan, invocation)
        outputs = {"revision": plan.project.revision, "project": plan.project.name, "target": plan.target.name,
                   "dbt": invocation.summary()}
        if not invocation.success:
            failed = invocation.failed_nodes
            names = ", ".join(n.name for n in failed) or "the project"
            return Failed(error=f"dbt {command} failed in {names}: {invocation.failure_text()}", retryable=False,
                          outputs=outputs)
        outputs["rows"] = target_row_counts(plan)
        rows = ", ".join(f"{name} {count:,}" for name, count in outputs["rows"].items())
        if not tests:
            outputs["tests"] = "not run here: the data-quality task runs them"
            return Succeeded(outputs=outputs, summary=f"dbt run materialized {rows} rows; the data-quality task "
                                                      f"runs the tests.")
        warnings = [f"{n.name}: {n.message}" for n in invocation.warned_nodes]
        outputs["test_warnings"] = warnings
        return Succeeded(outputs=outputs, summary=f"dbt build materialized {rows} rows"
                         + (f"; {len(warnings)} test warning(s)" if warnings else "") + ".")
