"""The parts of an ingest on their own: table names, how types land, DuckDB's sandbox (offline, only the files of
the load), and the SQLite file a first load creates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from agents.models import Connection
from pipeline.ingest.errors import IngestError
from pipeline.ingest.files import SourceFile, table_name_for
from pipeline.ingest.landing import landing_for
from pipeline.ingest.reading import IngestOptions, Reader
from pipeline.ingest.services import files_ingest
from tests.pipeline.ingest.conftest import claims_csv, sqlite_target

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("file, table", [
    ("claims.csv", "claims"),
    ("Claims 2024 (final).CSV", "claims_2024_final"),
    ("2024-Q1.parquet", "t_2024_q1"),
    ("Bénéficiaires.json", "beneficiaires"),
    ("sqlite_stat1.csv", "t_sqlite_stat1"),
    ("pg_users.ndjson", "t_pg_users"),
    ("--members--.jsonl", "members"),
    ("x" * 80 + ".csv", "x" * 63),
    ("a.b.c.tsv", "a_b_c"),
])
def test_a_table_is_named_after_its_file_sanitised(file, table):
    assert table_name_for(file) == table


def test_a_file_name_with_nothing_to_name_a_table_after_is_refused():
    with pytest.raises(IngestError, match=r"the file name has no letter or digit to name a table after"):
        table_name_for("---.csv")


@pytest.mark.parametrize("duck_type, sqlite, postgresql", [
    ("BIGINT", ("INTEGER", "{}"), ("bigint", "{}")),
    ("DOUBLE", ("REAL", "{}"), ("double precision", "{}")),
    ("DECIMAL(12,2)", ("DECIMAL(12,2)", "CAST({} AS DOUBLE)"), ("numeric(12,2)", "CAST({} AS VARCHAR)")),
    ("HUGEINT", ("NUMERIC", "CAST({} AS VARCHAR)"), ("numeric", "CAST({} AS VARCHAR)")),
    ("DATE", ("DATE", "CAST({} AS VARCHAR)"), ("date", "CAST({} AS VARCHAR)")),
    ("TIMESTAMP WITH TIME ZONE", ("TIMESTAMPTZ", "CAST({} AS VARCHAR)"), ("timestamptz", "CAST({} AS VARCHAR)")),
    ("VARCHAR[]", ("TEXT", "CAST(to_json({}) AS VARCHAR)"), ("jsonb", "CAST(to_json({}) AS VARCHAR)")),
    ("STRUCT(zip VARCHAR)", ("TEXT", "CAST(to_json({}) AS VARCHAR)"), ("jsonb", "CAST(to_json({}) AS VARCHAR)")),
    ("ENUM('a', 'b')", ("TEXT", "CAST({} AS VARCHAR)"), ("text", "CAST({} AS VARCHAR)")),
])
def test_each_duckdb_type_lands_as_a_declared_type_and_a_value_the_driver_binds(duck_type, sqlite, postgresql):
    assert tuple(vars(landing_for(duck_type, "sqlite")).values()) == sqlite
    assert tuple(vars(landing_for(duck_type, "postgresql")).values()) == postgresql


def test_a_link_loads_into_the_table_named_after_the_link_not_its_target(tmp_path):
    from pipeline.ingest.files import files_resolve

    claims_csv(tmp_path / "exports" / "export_2024_v3.csv")
    (tmp_path / "claims.csv").symlink_to(tmp_path / "exports" / "export_2024_v3.csv")

    files, _skipped = files_resolve([tmp_path / "claims.csv"], root=None, max_files=10, max_bytes=10_000)

    assert [(f.table, f.path) for f in files] == [("claims", tmp_path / "exports" / "export_2024_v3.csv")]


def test_an_unreadable_folder_is_refused_naming_it(tmp_path, monkeypatch):
    from pipeline.ingest.files import files_resolve

    (tmp_path / "locked").mkdir()

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", denied)

    with pytest.raises(IngestError) as caught:
        files_resolve([tmp_path / "locked"], root=None, max_files=10, max_bytes=10_000)

    assert caught.value.message == f"{tmp_path / 'locked'}: Permission denied."


# --- DuckDB: offline and sandboxed ------------------------------------------------------------------------------


def test_the_wheel_carries_the_readers_ingest_uses_so_nothing_is_ever_downloaded():
    with duckdb.connect() as db:
        modes = dict(db.execute("SELECT extension_name, install_mode FROM duckdb_extensions() "
                                "WHERE extension_name IN ('json', 'parquet')").fetchall())
    assert modes == {"json": "STATICALLY_LINKED", "parquet": "STATICALLY_LINKED"}


def _reader(tmp_path: Path, *files: Path) -> Reader:
    sources = [SourceFile(path=f.resolve(), shown=f.name, format="csv", table=f.stem, size=f.stat().st_size)
               for f in files]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Reader(sources, scratch=scratch, options=IngestOptions(), max_columns=10)


def test_the_duckdb_of_a_load_reads_only_its_own_files_and_never_installs_or_loads_an_extension(tmp_path):
    mine = claims_csv(tmp_path / "claims.csv")
    other = claims_csv(tmp_path / "other.csv")
    with _reader(tmp_path, mine) as reader:
        settings = dict(reader.db.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('autoinstall_known_extensions', "
            "'autoload_known_extensions', 'enable_external_access', 'lock_configuration')").fetchall())
        assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
                            "enable_external_access": "false", "lock_configuration": "true"}
        assert reader.db.execute("SELECT count(*) FROM read_csv(?)", [str(mine.resolve())]).fetchone() == (4,)
        for elsewhere in (str(other), "https://example.com/claims.csv", "/etc/passwd"):
            with pytest.raises(duckdb.PermissionException):
                reader.db.execute("SELECT * FROM read_csv(?)", [elsewhere])
        with pytest.raises(duckdb.Error, match="locked"):
            reader.db.execute("SET enable_external_access = true")


# --- the SQLite file ----------------------------------------------------------------------------------------------


def test_a_first_load_creates_the_sqlite_file_of_the_connection(tmp_path):
    target = sqlite_target(tmp_path / "new" / "mine.sqlite3")

    report = files_ingest(connection=target.connection, paths=[claims_csv(tmp_path / "claims.csv")], mission=None)

    assert report.created is True and report.where == str(tmp_path / "new" / "mine.sqlite3")
    assert target.tables() == ["claims"]
    again = files_ingest(connection=target.connection, paths=[tmp_path / "claims.csv"], mission=None)
    assert again.created is False


def test_a_sqlite_file_whose_folder_does_not_exist_is_refused(db, tmp_path):
    connection = Connection.objects.create(name="NOWHERE", engine="sqlite", purpose="source",
                                           location=str(tmp_path / "missing" / "mine.sqlite3"))

    with pytest.raises(IngestError) as caught:
        files_ingest(connection=connection, paths=[claims_csv(tmp_path / "claims.csv")], mission=None)

    assert caught.value.field == "connection"
    assert caught.value.message == (
        f"Connection NOWHERE: the SQLite file {tmp_path / 'missing' / 'mine.sqlite3'} does not exist and neither does "
        f"its folder {tmp_path / 'missing'}; create the folder, or register the connection elsewhere.")
    assert not (tmp_path / "missing").exists()


def test_a_sqlite_file_a_failed_first_load_created_is_removed(tmp_path, monkeypatch):
    from pipeline.ingest import writing

    target = sqlite_target(tmp_path / "new" / "mine.sqlite3")

    def disk_full(*_args, **_kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(writing.SQLiteTarget, "_insert", disk_full)

    with pytest.raises(IngestError, match="into table claims failed: database or disk is full. Nothing was loaded"):
        files_ingest(connection=target.connection, paths=[claims_csv(tmp_path / "claims.csv")], mission=None)

    assert list((tmp_path / "new").iterdir()) == []


def test_the_platforms_own_sqlite_file_is_refused(db, tmp_path, monkeypatch):
    from agents.connectors import platform

    own = tmp_path / "genesis.sqlite3"
    own.write_bytes(b"")
    monkeypatch.setattr(platform, "platform_database", lambda: {"ENGINE": "django.db.backends.sqlite3",
                                                                "NAME": str(own)})
    connection = Connection.objects.create(name="OWN", engine="sqlite", location=str(own), purpose="source")

    with pytest.raises(IngestError, match="this location is refused: it is the platform's own database"):
        files_ingest(connection=connection, paths=[claims_csv(tmp_path / "claims.csv")], mission=None)

    assert own.read_bytes() == b""
