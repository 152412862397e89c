import pytest
from django.db import DatabaseError, connection, transaction

from history.models import HistoryEntry
from history.services import history_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(mission, lead):
    return history_record(mission=mission, event="note", actor=lead, message="original")


def test_records_who_acted(mission, lead, agent):
    by_user = history_record(mission=mission, event="a", actor=lead)
    by_agent = history_record(mission=mission, event="b", actor=agent)
    by_system = history_record(mission=mission, event="c")
    assert [e.actor_label for e in (by_user, by_agent, by_system)] == ["lead", "NoopAgent", "system"]
    assert [e.actor_kind for e in (by_user, by_agent, by_system)] == ["user", "agent", "system"]


def test_an_entry_cannot_be_changed_or_deleted_through_the_orm(entry):
    entry.message = "rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        HistoryEntry.objects.filter(pk=entry.pk).update(message="rewritten")
    with pytest.raises(PermissionError):
        HistoryEntry.objects.filter(pk=entry.pk).delete()
    assert HistoryEntry.objects.get(pk=entry.pk).message == "original"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL")
def test_postgresql_refuses_update_and_delete_in_sql(entry):
    for statement in (
        "UPDATE tasks_historyentry SET message = 'rewritten' WHERE id = %s",
        "DELETE FROM tasks_historyentry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(statement, [entry.pk])
    assert HistoryEntry.objects.get(pk=entry.pk).message == "original"


def test_a_batch_inserts_its_entries_in_order_with_one_statement_when_it_ends(mission, lead):
    from django.test.utils import CaptureQueriesContext

    from history.services import history_batch

    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        with history_batch():
            history_record(mission=mission, event="first", actor=lead)
            with history_batch():  # nested: joins the outer batch
                history_record(mission=mission, event="second")
            assert not HistoryEntry.objects.filter(event__in=["first", "second"]).exists()
        inserts = [q for q in ctx.captured_queries if q["sql"].startswith('INSERT INTO "tasks_historyentry"')]
    assert len(inserts) == 1
    events = HistoryEntry.objects.filter(mission=mission, event__in=["first", "second"]).order_by("id")
    assert list(events.values_list("event", flat=True)) == ["first", "second"]


def test_a_batch_that_raises_writes_nothing(mission):
    from history.services import history_batch

    with pytest.raises(ValueError), transaction.atomic(), history_batch():
        history_record(mission=mission, event="lost")
        raise ValueError("boom")
    assert not HistoryEntry.objects.filter(event="lost").exists()
    history_record(mission=mission, event="after")  # no batch left open: written at once
    assert HistoryEntry.objects.filter(event="after").exists()
