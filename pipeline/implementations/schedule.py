"""The schedule agent: a django-q2 cron schedule that refreshes the mission, checked now without rebuilding (or
proven by one full refresh with ``verify: full``)."""

from __future__ import annotations

from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.registry import register
from genesis.exceptions import DomainError
from pipeline.dbt.build import log, write_json
from pipeline.dbt.services import DEFAULT_CRON, refresh_schedule_set
from pipeline.quality.refresh import refresh_check, refresh_run
from pipeline.specfile import load_mission_spec


def cron_for(context: AgentContext) -> tuple[str, str]:
    """The cron expression and where it came from: the task's config, the mission's spec file, or the default."""
    if context.config.get("cron"):
        return str(context.config["cron"]), "task config"
    if context.mission.spec_file:
        try:
            cron = (load_mission_spec(context.mission).get("schedule") or {}).get("cron")
        except DomainError as error:
            log(context, f"The spec file could not be read for its schedule ({error}); using the default.",
                level="warning")
            cron = None
        if cron:
            return str(cron), "spec file"
    return DEFAULT_CRON, "default (daily)"


@register
class ScheduleAgent(BaseAgent):
    kind = "schedule"
    description = ("Schedules the refresh of the models (a django-q2 cron schedule from the spec, daily by default) "
                   "that rebuilds and re-checks the targets and alerts the escalation channels on failure.")

    def run(self, context: AgentContext) -> Outcome:
        verify = context.config.get("verify", "check")
        if verify not in (True, False, "full", "check"):
            return Failed(error=f"config verify: {verify!r} is not one of full, check or false.", retryable=False)
        cron, origin = cron_for(context)
        try:
            schedule = refresh_schedule_set(mission=context.mission, cron=cron, actor=context.agent,
                                            start_now=bool(context.config.get("start_now")))
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        log(context, f"Schedule {schedule.name} ({cron}, from the {origin}); next run {schedule.next_run}.")
        outputs = {"schedule_id": schedule.pk, "schedule": schedule.name, "cron": cron, "cron_from": origin,
                   "func": schedule.func, "next_run": schedule.next_run.isoformat() if schedule.next_run else None}
        mode = "full" if verify is True else verify
        if mode:
            if mode == "full":
                # Run it once now, recorded like any refresh: rebuilds and re-checks every target.
                key, what = "first_refresh", "first refresh"
                result = refresh_run(mission=context.mission, label=what, actor=context.agent)
            else:
                # The targets were just built, checked and backfilled at this revision: check what the job needs
                # (its function, the project compiling against the target, the targets) without rebuilding them.
                key, what = "check", "check"
                result = refresh_check(mission=context.mission, func=schedule.func, actor=context.agent)
            outputs[key] = result.as_dict()
            log(context, f"Schedule {what}: {'ok' if result.ok else result.error} ({result.seconds:.2f} s).")
            if not result.ok:
                write_json(context, "schedule.json", "report", outputs)
                return Failed(error=f"The schedule is set but its {what} failed: {result.error}",
                              retryable=False, outputs=outputs)
        write_json(context, "schedule.json", "report", outputs)
        return Succeeded(outputs=outputs, summary=f"Refresh scheduled ({cron}); next run {outputs['next_run']}.")
