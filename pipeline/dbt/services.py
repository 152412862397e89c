"""Services of the build side: environments, the refresh schedule and environment builds (recorded, checked)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import django_q.tasks
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule, validate_cron

from agents.access import require_grant, require_use
from agents.connectors import ConnectorError
from agents.models import Connection
from agents.services import connections_grant
from genesis.exceptions import DomainError
from history.services import Actor, history_record
from missions.choices import Role
from missions.permissions import role_of
from pipeline.dbt.project import bronze_problem
from pipeline.models import Environment
from pipeline.quality.refresh import RefreshResult, refresh_run

if TYPE_CHECKING:
    from missions.models import Mission

REFRESH_FUNC = "pipeline.jobs.refresh_mission"
DEFAULT_CRON = "0 2 * * *"  # daily at 02:00


def _require_role(*, mission: Mission, actor: Actor, roles: set[str], action: str) -> None:
    if actor is None:
        return  # the system (a job, the engine)
    if getattr(actor, "is_staff", False):
        return
    if role_of(actor, mission) not in roles:
        raise DomainError(f"{actor} may not {action} on “{mission}”: it needs the role "
                          f"{' or '.join(sorted(roles))}.", code="permission_denied")


@transaction.atomic
def environment_set(*, mission: Mission, name: str, target: Connection, actor: Actor = None,
                    description: str = "") -> Environment:
    """Create or change the mission's environment ``name`` (dev, test, stage, prod)."""
    if name not in Environment.Name.values:
        raise DomainError(f"Unknown environment {name!r}; choose one of {', '.join(Environment.Name.values)}.",
                          field="name")
    _require_role(mission=mission, actor=actor, roles={Role.MISSION_OWNER}, action="change environments")
    source = mission.source_connection
    problem = bronze_problem(target=target, source=source) if source is not None else None
    if problem:
        raise DomainError(problem, field="target")

    try:
        require_use(target, mission)
    except ConnectorError:
        require_grant(actor, [target], field="target")

        connections_grant(mission=mission, connections=[target], actor=actor, reason=f"environment {name}")
    environment, created = Environment.objects.update_or_create(
        mission=mission, name=name, defaults={"target": target, "description": description})
    history_record(mission=mission, event="environment.created" if created else "environment.updated", actor=actor,
                   message=f"Environment {name} builds into {target.name}.",
                   data={"environment": name, "target": target.name})
    return environment


def environment_build_roles(name: str) -> set[str]:
    """The mission roles that may build in environment ``name``: prod needs the Mission Owner, the others a
    Mission Owner or a Task Owner (staff may always)."""
    return {Role.MISSION_OWNER} if name == Environment.Name.PROD else {Role.MISSION_OWNER, Role.TASK_OWNER}


@transaction.atomic
def environment_build_request(*, environment: Environment, actor: Actor) -> None:
    """Ask for the mission's approved dbt project to be built in ``environment`` (a background job)."""
    mission = environment.mission
    _require_role(mission=mission, actor=actor, roles=environment_build_roles(environment.name),
                  action=f"build in {environment.name}")
    history_record(mission=mission, event="environment.build_requested", actor=actor,
                   message=f"Build of the dbt project in {environment.name} ({environment.target.name}) requested.",
                   data={"environment": environment.name})
    actor_id = getattr(actor, "pk", None)
    transaction.on_commit(lambda: django_q.tasks.async_task("pipeline.jobs.environment_build", environment.pk, actor_id,
                                                            task_name=f"environment-build-{environment.pk}"))


def environment_build(*, environment: Environment, actor: Actor = None) -> RefreshResult:
    """Build now (the job calls this): a refresh aimed at the environment's target, recorded like any refresh."""
    result = refresh_run(mission=environment.mission, label=f"{environment.name} build", target=environment.target,
                         actor=actor)
    if result.ok:
        Environment.objects.filter(pk=environment.pk).update(last_built_at=timezone.now(),
                                                             last_revision=result.revision)
    return result


@transaction.atomic
def refresh_schedule_set(*, mission: Mission, cron: str = DEFAULT_CRON, actor: Actor = None,
                         start_now: bool = False) -> Schedule:
    """Create or update the django-q2 schedule that refreshes the mission (visible in the admin)."""
    try:
        validate_cron(cron)
    except Exception as error:  # django's ValidationError or croniter's errors
        raise DomainError(f"Invalid cron expression {cron!r}: {error}", field="cron") from None
    name = f"genesis-refresh-mission-{mission.pk}"
    schedule, created = Schedule.objects.update_or_create(
        name=name, defaults={"func": REFRESH_FUNC, "args": repr((mission.pk,)), "schedule_type": Schedule.CRON,
                             "cron": cron, "repeats": -1})
    history_record(mission=mission, event="schedule.created" if created else "schedule.updated", actor=actor,
                   message=f"Refresh scheduled ({cron}); next run {schedule.next_run:%Y-%m-%d %H:%M %Z}.",
                   data={"schedule": schedule.pk, "cron": cron, "name": name,
                         "next_run": schedule.next_run.isoformat() if schedule.next_run else None})
    if start_now:
        transaction.on_commit(lambda: django_q.tasks.async_task(REFRESH_FUNC, mission.pk, task_name=f"{name}-now"))
    return schedule
