"""Profiling on several threads: each thread on its own adapter, the same profile as one after the other, and
cancellation and errors as one after the other."""

import contextvars
import threading
import time

import pytest

from agents.access import adapter_for
from agents.connectors import ConnectorError
from agents.connectors.base import query_timeout
from pipeline.profiler import _Workers, profile_markdown, profile_source
from tests.pipeline.conftest import ALLOWED, pg_connection, sqlite_connection

# The profiling threads' names start with this.
THREAD_NAME = "profile_"


class Opener:
    """Opens adapters like the profiling agent does, and records on which thread each ran its queries, with which
    timeout, and on which thread each was closed; ``fail`` maps a table name to the error its queries raise."""

    def __init__(self, connection, fail=None):
        self.connection, self.fail, self.adapters, self.calls = connection, fail or {}, [], []
        self.thread_names, self.closed = set(), []

    def __call__(self):
        adapter = adapter_for(self.connection, mission=None, allowed_tables=ALLOWED)
        execute, opener = adapter._execute, self

        def recorded(sql, *, limit, timeout):
            opener.calls.append((id(adapter), threading.get_ident(), timeout))
            opener.thread_names.add(threading.current_thread().name)
            for table, message in opener.fail.items():
                if f'FROM "{table}"' in sql:
                    raise ConnectorError(message)
            return execute(sql, limit=limit, timeout=timeout)

        def closed(close=adapter.close):
            if adapter._raw is not None:
                opener.closed.append((id(adapter), threading.get_ident()))
            close()

        adapter._execute, adapter.close = recorded, closed
        self.adapters.append(adapter)
        return adapter

    def closed_where_used(self):
        """Every adapter that ran a query was closed once, on the one thread that ran its queries."""
        used = {(i, t) for i, t, _ in self.calls}
        return bool(used) and sorted(self.closed) == sorted(used)


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
    assert opener.closed_where_used()
    assert all(name.startswith(THREAD_NAME) for name in opener.thread_names)
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]
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
    assert threads == 1 or opener.closed_where_used()
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]


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
    # The threads are gone, each of their adapters closed on its own thread (on one thread, the caller's adapter
    # is the caller's to close).
    if threads == 2:
        assert len(opener.adapters) == 2 and all(a._raw is None for a in opener.adapters)
        assert opener.closed_where_used()
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]


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


class FakeAdapter:
    """Records on which threads it was connected, used and closed."""

    def __init__(self):
        self.connected, self.used, self.closed = [], [], []

    def connect(self):
        self.connected.append(threading.get_ident())

    def close(self):
        self.closed.append(threading.get_ident())


def _ran_and_closed_on_one_thread(adapters):
    return all(len(set(a.used)) == 1 and a.closed == [a.used[0]] and set(a.connected) == set(a.used)
               for a in adapters)


def test_the_pool_raises_the_first_error_in_order_once_the_running_jobs_are_done():
    adapters, ran = [FakeAdapter(), FakeAdapter(), FakeAdapter()], []
    second_failed, slow_started = threading.Event(), threading.Event()

    def first(adapter):
        adapter.used.append(threading.get_ident())
        assert second_failed.wait(10)  # fails only after the second job has failed
        ran.append("first")
        raise ValueError("first")

    def second(adapter):
        adapter.used.append(threading.get_ident())
        assert slow_started.wait(10)  # fails only once the third job runs
        ran.append("second")
        second_failed.set()
        raise ValueError("second")

    def slow(adapter):
        adapter.used.append(threading.get_ident())
        slow_started.set()
        assert second_failed.wait(10)
        time.sleep(0.2)
        ran.append("slow")

    def later(adapter):
        ran.append("later")

    with _Workers(adapters) as workers:
        with pytest.raises(ValueError, match="first"):
            workers.run([first, second, slow, later, later])
        # Raised once the running jobs were done; nothing submitted after the failure.
        assert sorted(ran) == ["first", "second", "slow"]
    assert _ran_and_closed_on_one_thread(adapters)
    assert len({a.used[0] for a in adapters}) == 3
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]


def test_the_pool_asks_before_each_job_and_runs_them_in_the_callers_context():
    adapters, asked, announced = [FakeAdapter(), FakeAdapter()], [], []
    where = contextvars.ContextVar("where", default="unset")
    where.set("caller")

    def job(adapter):
        adapter.used.append(threading.get_ident())
        return where.get(), threading.current_thread().name

    with _Workers(adapters) as workers:
        results = workers.run([job] * 5, before=announced.append)
        assert [r[0] for r in results] == ["caller"] * 5
        assert all(r[1].startswith(THREAD_NAME) for r in results)
        with pytest.raises(InterruptedError, match="cancelled"):
            workers.run([job] * 5, cancelled=lambda: asked.append(1) or len(asked) > 2, before=announced.append)
    assert len(asked) == 3 and announced == [0, 1, 2, 3, 4, 0, 1]
    assert _ran_and_closed_on_one_thread(a for a in adapters if a.used)
    assert all(a.closed for a in adapters)
