"""factory_boy factories for the domain objects."""

import factory
from django.contrib.auth import get_user_model

from agents.models import Agent, Connection
from missions.choices import Role
from missions.models import Membership, Mission
from tasks.models import Dependency, Phase, Task


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("pw-for-tests-1")


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Agent{n}")
    kind = "noop"
    description = "An agent for tests."


class ConnectionFactory(factory.django.DjangoModelFactory):
    """A connection the platform leads (``tests.conftest.leads_group``) may give to missions; ``leads=False`` makes
    one that only staff may give."""

    class Meta:
        model = Connection
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"CONN_{n}")
    engine = "sqlite"
    location = factory.Sequence(lambda n: f"/tmp/genesis-test-{n}.sqlite3")
    purpose = "source"

    @factory.post_generation
    def leads(obj, create, extracted, **kwargs):
        if create and extracted is not False:
            from tests.conftest import leads_group

            obj.groups.add(leads_group())


class MissionFactory(factory.django.DjangoModelFactory):
    """A mission row with its owner's membership (built directly, without a 'created' history entry)."""

    class Meta:
        model = Mission
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Mission {n}")
    objective = "Summary tables are refreshed daily and reconcile with the source."
    owner = factory.SubFactory(UserFactory)

    @factory.post_generation
    def owner_membership(obj, create, extracted, **kwargs):
        if create:
            Membership.objects.get_or_create(mission=obj, user=obj.owner, defaults={"role": Role.MISSION_OWNER})


class PhaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Phase

    mission = factory.SubFactory(MissionFactory)
    order = factory.Sequence(lambda n: n + 1)
    name = factory.Sequence(lambda n: f"Phase {n}")


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    mission = factory.SubFactory(MissionFactory)
    key = factory.Sequence(lambda n: f"t{n}")
    title = factory.LazyAttribute(lambda o: f"Task {o.key}")
    owner_agent = factory.SubFactory(AgentFactory, name="NoopAgent")
    owner_user = None


class DependencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dependency

    task = factory.SubFactory(TaskFactory)
    depends_on = factory.SubFactory(TaskFactory, mission=factory.SelfAttribute("..task.mission"))


def build_mission_graph(mission, *, tasks: int, phases: int = 3, agent=None, user=None) -> list[Task]:
    """``tasks`` tasks spread over ``phases`` phases, each depending on the one before (bulk, no history)."""
    phase_rows = Phase.objects.bulk_create(
        [Phase(mission=mission, order=i + 1, name=f"Phase {i + 1}") for i in range(phases)]
    )
    rows = []
    for i in range(tasks):
        owner = {"owner_agent": agent} if agent is not None else {"owner_user": user or mission.owner}
        rows.append(Task(mission=mission, key=f"t{i:04d}", title=f"Task number {i}", position=i,
                         phase=phase_rows[i * phases // tasks], **owner))
    created = Task.objects.bulk_create(rows)
    Dependency.objects.bulk_create(
        [Dependency(task=created[i], depends_on=created[i - 1]) for i in range(1, len(created))]
    )
    return created
