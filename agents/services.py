"""Services of the agent framework: registering connections, granting them to missions, recording refusals.

Every change writes a history entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from agents.access import may_use, require_grant
from agents.models import Connection
from genesis.exceptions import DomainError
from history.services import Actor, history_record

if TYPE_CHECKING:
    from missions.models import Mission
    from tasks.models import Run, Task


def connection_read_refused(*, mission: Mission, connection_name: str, tables: list[str], sql: str, reason: str,
                            task: Task | None = None, run: Run | None = None, actor: Actor = None) -> None:
    """Record that an agent's read outside the mission's allowed tables was refused."""
    with transaction.atomic():
        history_record(
            mission=mission, task=task, run=run, event="connection.read_refused", actor=actor,
            message=reason, data={"connection": connection_name, "tables": tables, "sql": sql[:2000]},
        )


@transaction.atomic
def connections_grant(*, mission: Mission, connections: Iterable[Connection], actor: Actor = None,
                      reason: str = "") -> list[Connection]:
    """Put ``connections`` on the access list of ``mission`` (refused unless ``actor`` may grant each one); records
    the grant. Returns the connections newly granted."""
    connections = list(connections)
    require_grant(actor, connections)
    new = [c for c in connections if not may_use(c, mission)]
    if new:
        Connection.missions.through.objects.bulk_create(
            [Connection.missions.through(connection_id=c.pk, mission_id=mission.pk) for c in new],
            ignore_conflicts=True,
        )
        names = ", ".join(c.name for c in new)
        history_record(mission=mission, event="connection.granted", actor=actor,
                       message=f"Connection(s) {names} granted to the mission{': ' + reason if reason else ''}.",
                       data={"connections": [c.name for c in new], "reason": reason})
    return new


@transaction.atomic
def connection_register(*, name: str, engine: str, location: str, purpose: str, description: str = "",
                        groups: Iterable[str] | None = None) -> Connection:
    """Create or update a named connection (validated like the admin does: a DSN password goes to the secret).
    ``groups``: the names of the groups whose members may give it to missions, replacing its list (None: unchanged);
    a name no group has is refused and nothing is saved."""
    wanted = None if groups is None else list(dict.fromkeys(groups))
    found = list(Group.objects.filter(name__in=wanted)) if wanted else []
    missing = sorted(set(wanted or ()) - {group.name for group in found})
    if missing:
        raise DomainError(f"groups: no group is named {', '.join(map(repr, missing))}.", field="groups")
    connection = Connection.objects.filter(name=name).first() or Connection(name=name)
    connection.engine, connection.location, connection.purpose = engine, location, purpose
    connection.description = description
    try:
        connection.full_clean()
    except ValidationError as error:
        raise DomainError.from_validation(error) from None
    connection.save()
    if wanted is not None:
        connection.groups.set(found)
    return connection
