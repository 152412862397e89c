"""The schedule agent: a django-q2 cron schedule that refreshes the mission, proven by one refresh now."""

from __future__ import annotations

from agents.base import AgentContext, BaseAgent, Failed, Outcome, Succeeded
from agents.dbt.build import log, write_json
from agents.dbt.services import DEFAULT_CRON, refresh_schedule_set
from agents.quality.refresh import refresh_run
from agents.registry import register
from genesis.exceptions import DomainError


def cron_for(context: AgentContext) -> tuple[str, str]:
    """The cron expression and where it came from: the task's config, the mission's spec file, or the default."""
    if context.config.get("cron"):
        return str(context.config["cron"]), "task config"
    if context.mission.spec_file:
        try:
            from agents.specfile import load_mission_spec

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
        cron, origin = cron_for(context)
        try:
            schedule = refresh_schedule_set(mission=context.mission, cron=cron, actor=context.agent,
                                            start_now=bool(context.config.get("start_now")))
        except DomainError as error:
            return Failed(error=str(error), retryable=False)
        log(context, f"Schedule {schedule.name} ({cron}, from the {origin}); next run {schedule.next_run}.")
        outputs = {"schedule_id": schedule.pk, "schedule": schedule.name, "cron": cron, "cron_from": origin,
                   "func": schedule.func, "next_run": schedule.next_run.isoformat() if schedule.next_run else None}
        if context.config.get("verify", True):
            # Prove the refresh works before relying on it: run it once now, recorded like any refresh.
            result = refresh_run(mission=context.mission, label="first refresh", actor=context.agent)
            outputs["first_refresh"] = result.as_dict()
            if not result.ok:
                write_json(context, "schedule.json", "report", outputs)
                return Failed(error=f"The schedule is set but its first refresh failed: {result.error}",
                              retryable=False, outputs=outputs)
        write_json(context, "schedule.json", "report", outputs)
        return Succeeded(outputs=outputs, summary=f"Refresh scheduled ({cron}); next run {outputs['next_run']}.")
