"""Profiling on several threads: each thread on its own adapter, the same profile as one after the other, and
cancellation and errors as one after the other."""

import threading

import pytest

from agents.access import adapter_for
from agents.connectors import ConnectorError
from agents.connectors.base import query_timeout
from pipeline.profiler import profile_markdown, profile_source
from tests.pipeline.conftest import ALLOWED, pg_connection, sqlite_connection


class Opener:
    """Opens adapters like the profiling agent does, and records on which thread each ran its queries, with which
    timeout; ``fail`` maps a table name to the error its queries raise."""

    def __init__(self, connection, fail=None):
        self.connection, self.fail, self.adapters, self.calls = connection, fail or {}, [], []

    def __call__(self):
        adapter = adapter_for(self.connection, mission=None, allowed_tables=ALLOWED)
        execute, opener = adapter._execute, self

        def recorded(sql, *, limit, timeout):
            opener.calls.append((id(adapter), threading.get_ident(), timeout))
            for table, message in opener.fail.items():
                if f'FROM "{table}"' in sql:
                    raise ConnectorError(message)
            return execute(sql, limit=limit, timeout=timeout)

        adapter._execute = recorded
        self.adapters.append(adapter)
        return adapter


def _without_time(profile):
    return {k: v for k, v in profile.items() if k != "generated_at"}


def _same_profile_on_one_and_two_threads(connection):
    with adapter_for(connection, mission=None, allowed_tables=ALLOWED) as adapter:
        sequential = profile_source(adapter, sample_above=500, sample_rows=200)
        opener = Opener(connection)
        with query_timeout(123):
            threaded = profile_source(adapter, sample_above=500, sample_rows=200, threads=2, open_adapter=opener)
        names = [t.name for t in adapter.introspect()]
    assert _without_time(threaded) == _without_time(sequential)
    assert list(threaded["tables"]) == list(sequential["tables"]) == names
    assert [(fk["table"], fk["column"]) for fk in threaded["foreign_keys"]] == [
        ("CLAIMS", "PATIENT_ID"), ("CLAIMS", "PROVIDER_ID"), ("CLAIM_DETAILS", "CLAIM_ID")]
    threaded["generated_at"] = sequential["generated_at"]
    assert profile_markdown(threaded) == profile_markdown(sequential)
    # Two adapters of their own, each used by one thread only (never the caller's), each closed at the end, with
    # the caller's query timeout.
    assert len(opener.adapters) == 2 and all(a._raw is None for a in opener.adapters)
    threads_of = {a: {t for i, t, _ in opener.calls if i == a} for a in {i for i, _, _ in opener.calls}}
    assert len(threads_of) == 2 and all(len(t) == 1 for t in threads_of.values())
    assert threading.get_ident() not in set().union(*threads_of.values())
    assert {timeout for _, _, timeout in opener.calls} == {123.0}
    return threaded


def test_two_threads_give_the_same_profile_on_sqlite(demo_small):
    profile = _same_profile_on_one_and_two_threads(sqlite_connection(demo_small))
    assert profile["tables"]["CLAIMS"]["sampling"]["of_rows"] == 2000


@pytest.mark.postgres
def test_two_threads_give_the_same_profile_on_postgresql(pg_schema, db):
    profile = _same_profile_on_one_and_two_threads(pg_connection(pg_schema))
    assert profile["tables"]["CLAIMS"]["row_count"] == 300


@pytest.mark.parametrize("threads", [1, 2])
def test_a_cancel_stops_before_the_next_table(demo_small, threads):
    connection, asked, said = sqlite_connection(demo_small), [], []
    opener = Opener(connection)

    def cancelled():
        asked.append(1)
        return len(asked) > 2

    with adapter_for(connection, mission=None, allowed_tables=ALLOWED) as adapter:
        names = [t.name for t in adapter.introspect()]
        with pytest.raises(InterruptedError):
            profile_source(adapter, progress=said.append, cancelled=cancelled, threads=threads, open_adapter=opener)
    assert len(asked) == 3
    assert [m.split()[1] for m in said] == names[:2]
    # The third table was never queried; the threads are gone and their adapters closed.
    assert all(a._raw is None for a in opener.adapters)
    assert not [t for t in threading.enumerate() if t.name.startswith("profile-")]


@pytest.mark.parametrize("threads", [1, 2])
def test_the_first_failing_table_in_order_fails_the_profile(demo_small, threads):
    connection = sqlite_connection(demo_small)
    with adapter_for(connection, mission=None, allowed_tables=ALLOWED) as adapter:
        names = [t.name for t in adapter.introspect()]
        fail = {names[1]: f"{names[1]} is broken", names[2]: f"{names[2]} is broken"}
        opener = Opener(connection, fail=fail)
        # One after the other, the caller's adapter fails the same way.
        with pytest.raises(ConnectorError) as error:
            profile_source(adapter if threads == 2 else opener(), threads=threads, open_adapter=opener)
    assert error.value.message == f"{names[1]} is broken"
    assert not [t for t in threading.enumerate() if t.name.startswith("profile-")]


def test_duckdb_stays_on_one_thread(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    from agents.models import Connection

    path = tmp_path / "d.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE A(ID INTEGER, NAME TEXT)")
        db.execute("INSERT INTO A SELECT i, 'a' || i FROM range(1, 51) t(i)")
        db.execute("CREATE TABLE B(ID INTEGER, A_ID INTEGER)")
        db.execute("INSERT INTO B SELECT i, 1 + i % 50 FROM range(1, 201) t(i)")
    connection = Connection(name="D", engine="duckdb", location=str(path), purpose="source")
    opener = Opener(connection)
    with adapter_for(connection, mission=None) as adapter:
        profile = profile_source(adapter, threads=2, open_adapter=opener)
    assert opener.adapters == []
    assert [(fk["table"], fk["column"], fk["ref_table"]) for fk in profile["foreign_keys"]] == [("B", "A_ID", "A")]
