"""What the engine handed to django-q2's ORM broker (its queue rows), for the engine and worker tests."""

from django_q.models import OrmQ


def messages() -> list[list[int]]:
    """The queue rows so far, in order, each as the run ids it carries (``execute_run(run_id)`` or
    ``execute_runs([run_id, ...])``)."""
    carried = (message.task["args"][0] for message in OrmQ.objects.order_by("pk"))
    return [runs if isinstance(runs, list) else [runs] for runs in carried]


def deliveries() -> list[int]:
    """The runs handed to the queue so far, by run id."""
    return sorted(run for message in messages() for run in message)


def clear() -> None:
    OrmQ.objects.all().delete()
