"""``manage.py connection_add``: a connection registered from the command line, validated as the admin validates it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.models import Connection

pytestmark = pytest.mark.django_db


def add(*args: str) -> str:
    out = StringIO()
    call_command("connection_add", *args, stdout=out)
    return out.getvalue()


def test_a_sqlite_source_is_added_with_the_groups_that_may_give_it_to_missions(tmp_path):
    Group.objects.create(name="Analysts")
    Group.objects.create(name="Leads")
    path = tmp_path / "mine.sqlite3"

    out = add("MY_FILES", "--engine", "sqlite", "--location", str(path), "--purpose", "source",
              "--description", "My own exports", "--group", "Leads", "--group", "Analysts")

    connection = Connection.objects.get(name="MY_FILES")
    assert (connection.engine, connection.location, connection.purpose, connection.description) == (
        "sqlite", str(path), "source", "My own exports")
    assert sorted(connection.groups.values_list("name", flat=True)) == ["Analysts", "Leads"]
    assert out == (f"Connection MY_FILES added: sqlite at {path}, purpose source; may be given to missions by: "
                   "Analysts, Leads.\n")
    assert not path.exists()  # created by the first ingest, not here


def test_a_password_in_the_dsn_goes_to_the_write_only_secret_and_is_never_printed():
    out = add("WAREHOUSE", "--engine", "postgresql", "--purpose", "target",
              "--location", "postgres://loader:s3cr3t-pw@db.example.com:5432/warehouse")

    connection = Connection.objects.get(name="WAREHOUSE")
    assert (connection.location, connection.secret) == ("postgres://loader@db.example.com:5432/warehouse",
                                                         "s3cr3t-pw")
    assert "s3cr3t" not in out
    assert out.splitlines() == [
        "Connection WAREHOUSE added: postgresql at postgres://loader@db.example.com:5432/warehouse, purpose target; "
        "may be given to missions by: staff only.",
        "The password in the DSN is kept as the connection's write-only secret, not in its location.",
    ]


def test_adding_again_updates_the_connection_and_keeps_its_groups_unless_given(tmp_path):
    Group.objects.create(name="Leads")
    add("MY_FILES", "--engine", "sqlite", "--location", str(tmp_path / "a.sqlite3"), "--purpose", "source",
        "--group", "Leads")

    out = add("MY_FILES", "--engine", "sqlite", "--location", str(tmp_path / "b.sqlite3"), "--purpose", "validation")

    connection = Connection.objects.get(name="MY_FILES")
    assert (connection.location, connection.purpose) == (str(tmp_path / "b.sqlite3"), "validation")
    assert list(connection.groups.values_list("name", flat=True)) == ["Leads"]
    assert out.startswith("Connection MY_FILES updated: ")


def test_an_unknown_group_is_refused_and_nothing_is_saved(tmp_path):
    with pytest.raises(CommandError, match=r"^groups: no group is named 'Nobody'\.$"):
        add("MY_FILES", "--engine", "sqlite", "--location", str(tmp_path / "a.sqlite3"), "--purpose", "source",
            "--group", "Nobody")

    assert not Connection.objects.filter(name="MY_FILES").exists()


def test_the_platforms_own_database_is_refused(monkeypatch, tmp_path):
    from agents.connectors import platform

    own = tmp_path / "genesis.sqlite3"
    own.write_bytes(b"")
    monkeypatch.setattr(platform, "platform_database", lambda: {"ENGINE": "django.db.backends.sqlite3",
                                                                "NAME": str(own)})

    with pytest.raises(CommandError, match=r"^location: This location is refused: it is the platform's own database"):
        add("OWN", "--engine", "sqlite", "--location", str(own), "--purpose", "source")

    assert not Connection.objects.filter(name="OWN").exists()


def test_a_postgresql_location_that_is_not_a_dsn_is_refused_naming_the_field():
    with pytest.raises(CommandError, match=r"^location: A PostgreSQL connection needs a DSN"):
        add("PG", "--engine", "postgresql", "--location", "db.example.com", "--purpose", "source")


def test_a_duckdb_connection_is_added_and_a_remote_one_refused_naming_the_field(tmp_path):
    out = add("WAREHOUSE", "--engine", "duckdb", "--location", str(tmp_path / "w.duckdb"), "--purpose", "target")
    assert "Connection WAREHOUSE added: duckdb at" in out
    assert Connection.objects.get(name="WAREHOUSE").engine == "duckdb"
    with pytest.raises(CommandError, match=r"^location: A DuckDB connection needs a local file path"):
        add("CLOUD", "--engine", "duckdb", "--location", "md:analytics", "--purpose", "source")
    assert not Connection.objects.filter(name="CLOUD").exists()
