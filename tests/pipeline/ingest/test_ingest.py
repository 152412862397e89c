"""Ingest on SQLite, DuckDB and PostgreSQL: each format lands with DuckDB's inferred types, a re-run replaces, a
malformed file is refused naming the file, the line and the problem, and nothing is ever half-loaded."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import psycopg
import pytest

from pipeline.ingest import reading
from pipeline.ingest.errors import IngestError
from pipeline.ingest.services import files_ingest
from tests.pipeline.ingest.conftest import (
    MEMBERS,
    claims_csv,
    numbered_csv,
    write_csv,
    write_json_array,
    write_ndjson,
    write_parquet,
)

pytestmark = pytest.mark.django_db


def ingest(target, *paths, **options):
    return files_ingest(connection=target.connection, paths=[str(p) for p in paths], mission=None,
                        options=options or None)


def landed(target, rows):
    """Rows as the target gives them back: PostgreSQL and DuckDB keep dates, booleans, decimals, lists and structs;
    SQLite stores ISO text, 0/1, floats and JSON text."""
    if target.engine in {"postgresql", "duckdb"}:
        return rows

    def cell(value):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return float(value)
        if isinstance(value, list | dict):
            import json

            return json.dumps(value, separators=(",", ":"))
        return value

    return [tuple(cell(v) for v in row) for row in rows]


def refusal(target, *paths, **options) -> IngestError:
    with pytest.raises(IngestError) as caught:
        ingest(target, *paths, **options)
    return caught.value


# --- one test per format ----------------------------------------------------------------------------------------


def test_a_csv_with_a_header_lands_with_its_inferred_types(target, tmp_path):
    report = ingest(target, claims_csv(tmp_path / "claims.csv"))

    assert [(t.file, t.table, t.rows) for t in report.tables] == [(str(tmp_path / "claims.csv"), "claims", 4)]
    assert [(c["name"], c["type"]) for c in report.tables[0].columns] == [
        ("claim_id", "BIGINT"), ("member", "VARCHAR"), ("amount", "DOUBLE"), ("service_date", "DATE"),
        ("paid", "BOOLEAN")]
    assert target.rows("claims") == landed(target, [
        (1, "Ada Lovelace", 120.5, dt.date(2024, 1, 5), True),
        (2, 'Grace "Amazing" Hopper, Jr.', 80.0, dt.date(2024, 2, 29), False),
        (3, None, None, dt.date(2024, 3, 31), None),
        (4, "Édith Piaf", 1999.99, dt.date(2024, 12, 1), True),
    ])
    assert target.declared("claims") == (
        {"claim_id": "INTEGER", "member": "TEXT", "amount": "REAL", "service_date": "DATE", "paid": "BOOLEAN"}
        if target.engine == "sqlite" else
        {"claim_id": "BIGINT", "member": "VARCHAR", "amount": "DOUBLE", "service_date": "DATE", "paid": "BOOLEAN"}
        if target.engine == "duckdb" else
        {"claim_id": "bigint", "member": "text", "amount": "double precision", "service_date": "date",
         "paid": "boolean"})


def test_a_parquet_file_written_by_duckdb_lands_with_its_own_types(target, tmp_path):
    path = write_parquet(tmp_path / "orders.parquet", """
        SELECT range AS order_id, CAST(range * 1.25 AS DECIMAL(10, 2)) AS price,
               TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (range) HOUR AS ordered_at, 'item ' || range AS label,
               [range, range + 1] AS pair, range % 2 = 0 AS even
        FROM range(1000)""")

    report = ingest(target, path)

    assert report.tables[0].rows == 1000
    assert [c["type"] for c in report.tables[0].columns] == [
        "BIGINT", "DECIMAL(10,2)", "TIMESTAMP", "VARCHAR", "BIGINT[]", "BOOLEAN"]
    assert target.query('SELECT count(*) FROM "orders"') == [(1000,)]
    assert target.query('SELECT * FROM "orders" WHERE order_id = 3') == landed(target, [
        (3, Decimal("3.75"), dt.datetime.fromisoformat("2024-01-01 03:00:00"), "item 3", [3, 4], False)])


@pytest.mark.parametrize("writer, name", [(write_json_array, "members.json"), (write_ndjson, "members.ndjson")])
def test_json_arrays_and_ndjson_land_one_row_per_record_with_nested_values_as_json(target, tmp_path, writer, name):
    report = ingest(target, writer(tmp_path / name, MEMBERS))

    assert [(c["name"], c["type"]) for c in report.tables[0].columns] == [
        ("member_id", "BIGINT"), ("name", "VARCHAR"), ("score", "DOUBLE"), ("tags", "VARCHAR[]"),
        ("address", "STRUCT(zip VARCHAR)"), ("joined", "TIMESTAMP")]
    assert target.rows("members") == landed(target, [
        (1, "Ada", 9.5, ["vip", "new"], {"zip": "02139"}, dt.datetime.fromisoformat("2024-01-05 10:00:00")),
        (2, "Grace", None, [], {"zip": "10001"}, dt.datetime.fromisoformat("2024-02-01 08:30:00")),
        (3, "Alan", 7.25, ["new"], None, dt.datetime.fromisoformat("2024-03-15 23:59:59")),
    ])


def test_a_folder_of_mixed_files_lands_one_table_per_file_and_reports_what_it_skipped(target, tmp_path):
    folder = tmp_path / "exports"
    claims_csv(folder / "Claims 2024.csv")
    write_parquet(folder / "2024-Q1 totals.parquet", "SELECT 'Q1' AS quarter, 42 AS total")
    write_json_array(folder / "members.json", MEMBERS)
    write_ndjson(folder / "events.jsonl", [{"event": "joined", "member_id": 1}])
    (folder / "notes.txt").write_text("not data")
    (folder / ".hidden.csv").write_text("a\n1\n")
    (folder / "archive").mkdir()

    report = ingest(target, folder)

    assert [(t.file, t.format, t.table, t.rows) for t in report.tables] == [
        (str(folder / "2024-Q1 totals.parquet"), "parquet", "t_2024_q1_totals", 1),
        (str(folder / "Claims 2024.csv"), "csv", "claims_2024", 4),
        (str(folder / "events.jsonl"), "ndjson", "events", 1),
        (str(folder / "members.json"), "json", "members", 3),
    ]
    assert report.skipped == [f"{folder / 'archive'}/ (a folder: name it to load its files)",
                              f"{folder / 'notes.txt'} (not .csv, .tsv, .parquet, .json, .ndjson, .jsonl)"]
    assert target.tables() == ["claims_2024", "events", "members", "t_2024_q1_totals"]
    assert target.rows("t_2024_q1_totals") == [("Q1", 42)]
    assert report.rows == 9
    assert all(len(t.sha256) == 64 and t.elapsed_ms >= 0 and t.bytes > 0 for t in report.tables)


# --- idempotence --------------------------------------------------------------------------------------------------


def test_loading_the_same_file_again_replaces_its_rows_and_never_duplicates_them(target, tmp_path):
    path = claims_csv(tmp_path / "claims.csv")
    first = ingest(target, path)
    again = ingest(target, path)

    assert target.query('SELECT count(*) FROM "claims"') == [(4,)]
    assert [r[0] for r in target.rows("claims")] == [1, 2, 3, 4]
    assert first.tables[0].sha256 == again.tables[0].sha256
    assert target.tables() == ["claims"]  # no staging table left behind


def test_a_changed_file_replaces_the_table_with_its_new_rows_and_columns(target, tmp_path):
    path = claims_csv(tmp_path / "claims.csv")
    ingest(target, path)
    write_csv(path, ["claim_id", "status"], [[10, "PAID"], [11, "DENIED"]])

    report = ingest(target, path)

    assert report.tables[0].rows == 2
    assert target.rows("claims") == [(10, "PAID"), (11, "DENIED")]
    assert list(target.declared("claims")) == ["claim_id", "status"]


# --- malformed files: refused, naming file, line and problem; the earlier table intact ------------------------------


def test_a_csv_with_a_bad_row_deep_in_the_file_is_refused_naming_the_line_and_the_table_is_unchanged(target,
                                                                                                     tmp_path):
    path = numbered_csv(tmp_path / "scores.csv", 3)
    ingest(target, path)
    before = target.rows("scores")
    numbered_csv(path, 60_000, bad_line=55_002, bad="55001,row 55001,1.5,EXTRA")

    error = refusal(target, path)

    assert error.message == (f"{path}, line 55002: Expected Number of Columns: 3 Found: 4 (the line reads: "
                             "'55001,row 55001,1.5,EXTRA'). Nothing was loaded.")
    assert (error.file, error.line, error.field) == (str(path), 55002, "paths")
    assert target.rows("scores") == before == [(1, "row 1", 0.5), (2, "row 2", 1.0), (3, "row 3", 1.5)]
    assert target.tables() == ["scores"]


def test_a_value_late_in_a_csv_that_does_not_fit_the_inferred_type_is_refused_with_a_way_out(target, tmp_path):
    path = numbered_csv(tmp_path / "scores.csv", 30_000, bad_line=25_000, bad="24999,row 24999,n/a")

    error = refusal(target, path)

    assert error.line == 25_000
    assert 'Error when converting column "score". Could not convert string "n/a" to \'DOUBLE\'' in error.message
    assert "inferred from the first 20,480 rows; the option sample_size: -1 infers types from the whole file" in \
        error.message
    assert target.tables() == []
    report = ingest(target, path, sample_size=-1)  # the whole file: the column is text
    assert report.tables[0].columns[2] == {"name": "score", "type": "VARCHAR",
                                           "declared": {"sqlite": "TEXT", "duckdb": "VARCHAR"}.get(target.engine,
                                                                                                   "text")}


def test_a_truncated_parquet_file_is_refused_and_the_table_is_unchanged(target, tmp_path):
    path = write_parquet(tmp_path / "orders.parquet", "SELECT range AS order_id FROM range(5000)")
    ingest(target, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    error = refusal(target, path)

    assert error.message == f"{path}: No magic bytes found at end of file '{path}'. Nothing was loaded."
    assert target.query('SELECT count(*), max(order_id) FROM "orders"') == [(5000, 4999)]


def test_invalid_json_in_an_array_is_refused_naming_the_line(target, tmp_path):
    path = write_json_array(tmp_path / "members.json", MEMBERS)
    ingest(target, path)
    lines = path.read_text().splitlines()
    broken = next(i for i, line in enumerate(lines) if '"member_id": 3' in line)
    lines[broken] = lines[broken].replace(",", "")  # a missing comma in the third record
    path.write_text("\n".join(lines))

    error = refusal(target, path)

    # The parser notices the missing comma at the next key, on the following line.
    assert error.line == broken + 2
    assert error.message == f"{path}, line {broken + 2}: Expecting ',' delimiter (column 5). Nothing was loaded."
    assert [r[0] for r in target.rows("members")] == [1, 2, 3]


def test_invalid_ndjson_is_refused_naming_the_line(target, tmp_path):
    records = [{"id": i, "name": f"n{i}"} for i in range(30_000)]
    path = write_ndjson(tmp_path / "events.ndjson", records)
    lines = path.read_text().splitlines()
    lines[27_000] = '{"id": 27000, "name": "truncated'
    path.write_text("\n".join(lines) + "\n")

    error = refusal(target, path)

    assert error.message == f"{path}, line 27001: Unterminated string starting at (column 23). Nothing was loaded."
    assert target.tables() == []


def test_a_record_late_in_ndjson_with_a_key_the_sample_did_not_see_is_refused_naming_its_line(target, tmp_path):
    records = [{"id": i} for i in range(30_000)]
    records[25_000]["surprise"] = True
    path = write_ndjson(tmp_path / "events.ndjson", records)

    error = refusal(target, path)

    assert error.line == 25_001
    assert 'has unknown key "surprise"' in error.message
    report = ingest(target, path, sample_size=-1)
    assert [c["name"] for c in report.tables[0].columns] == ["id", "surprise"]
    assert target.query('SELECT count(*), count("surprise") FROM "events"') == [(30_000, 1)]


def test_a_malformed_file_in_a_folder_refuses_the_whole_load(target, tmp_path):
    folder = tmp_path / "exports"
    claims_csv(folder / "claims.csv")
    write_json_array(folder / "members.json", MEMBERS)
    ingest(target, folder)
    write_csv(folder / "claims.csv", ["claim_id"], [[99]])  # changed, and fine
    (folder / "members.json").write_text('[{"member_id": 1}, {"member_id": ]')

    error = refusal(target, folder)

    assert error.file == str(folder / "members.json")
    assert [r[0] for r in target.rows("claims")] == [1, 2, 3, 4]  # the good file was not loaded either
    assert [r[0] for r in target.rows("members")] == [1, 2, 3]


def test_a_failure_while_writing_rolls_back_every_table_of_the_load(target, tmp_path, monkeypatch):
    """The files read fine; the target fails half-way through the second table (a full disk, a lost session):
    the first table, already swapped in, goes back to what it was, and no staging table is left."""
    folder = tmp_path / "exports"
    numbered_csv(folder / "a_first.csv", 2)
    numbered_csv(folder / "b_second.csv", 2)
    ingest(target, folder)
    numbered_csv(folder / "a_first.csv", 30_000)
    numbered_csv(folder / "b_second.csv", 30_000)
    failure = {"sqlite": __import__("sqlite3").OperationalError("disk I/O error"),
               "duckdb": duckdb.IOException("No space left on device"),
               "postgresql": psycopg.OperationalError("server closed the connection unexpectedly")}[target.engine]
    real, real_export = reading.Reader.batches, reading.Reader.export

    def failing(self, loaded, **kwargs):
        for number, rows in enumerate(real(self, loaded, **kwargs)):
            if loaded.file.table == "b_second" and number == 1:
                raise failure
            yield rows

    def failing_export(self, loaded):
        if loaded.file.table == "b_second":  # DuckDB's rows go through a Parquet file, not batches
            raise failure
        return real_export(self, loaded)

    monkeypatch.setattr(reading.Reader, "batches", failing)
    monkeypatch.setattr(reading.Reader, "export", failing_export)

    error = refusal(target, folder)

    assert error.field == "connection"
    assert "loading" in error.message and "into table b_second failed" in error.message
    assert target.tables() == ["a_first", "b_second"]
    assert target.query('SELECT count(*) FROM "a_first"') == [(2,)]
    assert target.query('SELECT count(*) FROM "b_second"') == [(2,)]


@pytest.mark.postgres
def test_a_value_postgresql_refuses_rolls_the_load_back(pg_target, tmp_path):
    target = pg_target
    path = write_csv(tmp_path / "notes.csv", ["id", "note"], [[1, "fine"]])
    ingest(target, path)
    write_csv(path, ["id", "note"], [[i, "fine"] for i in range(20_000)] + [[20_000, "nul \x00 byte"]])

    error = refusal(target, path)

    assert "loading" in error.message and "0x00" in error.message
    assert target.rows("notes") == [(1, "fine")]


# --- names, collisions, limits and options ----------------------------------------------------------------------


def test_two_files_for_one_table_are_refused_before_anything_is_read(target, tmp_path):
    claims_csv(tmp_path / "in" / "Claims.csv")
    write_json_array(tmp_path / "in" / "claims.json", MEMBERS)

    error = refusal(target, tmp_path / "in")

    assert error.message == (f"One table per file: {tmp_path / 'in' / 'Claims.csv'} and "
                             f"{tmp_path / 'in' / 'claims.json'} would all load into table claims. Rename or move "
                             "one of them.")
    assert target.tables() == []


def test_a_view_where_a_table_would_land_is_refused(target, tmp_path):
    path = claims_csv(tmp_path / "claims.csv")
    ingest(target, claims_csv(tmp_path / "base.csv"))
    target.execute('CREATE VIEW "claims" AS SELECT * FROM "base"')

    error = refusal(target, path)

    assert error.message == (f"Connection MY_FILES: claims is a view; ingest replaces tables only ({path} would land "
                             "there). Drop the view or rename the file.")
    assert target.tables() == ["base"]


def test_a_file_over_the_size_limit_is_refused_naming_the_setting(target, tmp_path, settings):
    settings.GENESIS_INGEST_MAX_FILE_BYTES = 100
    path = numbered_csv(tmp_path / "big.csv", 50)

    error = refusal(target, path)

    assert error.message == (f"{path}: the file is {path.stat().st_size:,} bytes; at most 100 are loaded "
                             "(GENESIS_INGEST_MAX_FILE_BYTES).")


def test_a_file_over_the_column_limit_is_refused_naming_the_setting(target, tmp_path, settings):
    settings.GENESIS_INGEST_MAX_COLUMNS = 4
    path = write_csv(tmp_path / "wide.csv", [f"c{i}" for i in range(5)], [list(range(5))])

    error = refusal(target, path)

    assert error.message == f"{path}: 5 columns; at most 4 are loaded (GENESIS_INGEST_MAX_COLUMNS)."
    assert target.tables() == []


@pytest.mark.parametrize("options, field, says", [
    ({"delimiter": ""}, "options.delimiter", "The CSV delimiter is one to four bytes"),
    ({"header": "yes"}, "options.header", "header is true or false"),
    ({"encoding": "cp1252"}, "options.encoding", "encoding is one of utf-8, utf-16, latin-1"),
    ({"sample_size": 0}, "options.sample_size", "sample_size is a number of rows from 1"),
    ({"skip": -1}, "options.skip", "skip is a number of lines from 0 to 1,000"),
    ({"quote": "'"}, "options.quote", "Unknown option 'quote'"),
])
def test_a_malformed_option_is_refused_naming_it(target, tmp_path, options, field, says):
    error = refusal(target, claims_csv(tmp_path / "claims.csv"), **options)

    assert error.field == field and error.message.startswith(says)


def test_csv_options_read_a_semicolon_file_without_a_header_in_latin_1(target, tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_bytes("1;Zoë;3,5\n2;José;4\n".encode("latin-1"))

    report = ingest(target, path, delimiter=";", header=False, encoding="latin-1")

    assert [c["name"] for c in report.tables[0].columns] == ["column0", "column1", "column2"]
    assert target.rows("legacy") == [(1, "Zoë", "3,5"), (2, "José", "4")]


def test_a_line_that_looks_like_a_comment_is_kept_as_data(target, tmp_path):
    path = write_csv(tmp_path / "tags.csv", ["id", "tag"], [[1, "a"], ["#2", "b"], [3, "c"]])

    ingest(target, path)

    assert target.rows("tags", order_by="tag") == [("1", "a"), ("#2", "b"), ("3", "c")]


def test_a_title_above_the_header_is_refused_unless_the_skip_option_leaves_it_out(target, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Claims export printed 2024-12-01\nclaim_id,amount\n1,2.5\n2,3.5\n")

    error = refusal(target, path)

    assert error.message == (
        f"{path}, line 2: Expected Number of Columns: 1 Found: 2 (the line reads: 'claim_id,amount'); 2 other line(s) "
        "do not fit either. If lines above the header are a title or notes, give the option skip. Nothing was loaded.")
    assert target.tables() == []
    ingest(target, path, skip=1)
    assert target.rows("export") == [(1, 2.5), (2, 3.5)]


def test_a_malformed_line_within_the_sniffers_sample_is_refused_by_its_number(target, tmp_path):
    path = numbered_csv(tmp_path / "short.csv", 500, bad_line=400, bad="399,row 399,2.5,oops")

    error = refusal(target, path)

    assert error.message == (f"{path}, line 400: Expected Number of Columns: 3 Found: 4 (the line reads: "
                             "'399,row 399,2.5,oops'). Nothing was loaded.")


@pytest.mark.parametrize("given, why", [
    ("missing.csv", "no such file or folder"),
    ("notes.txt", "the format is not known from the extension .txt"),
    ("empty.csv", "the file is empty"),
    ("a[1].csv", "a path with any of * ? [ ] { } in it is not read"),
])
def test_files_that_cannot_be_loaded_are_refused_naming_them(target, tmp_path, given, why):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "a[1].csv").write_text("a\n1\n")

    error = refusal(target, tmp_path / given)

    assert error.message.startswith(f"{tmp_path / given}") and why in error.message
    assert error.file == str(tmp_path / given)


@pytest.mark.parametrize("location, why", [
    (":memory:", "an in-memory DuckDB database holds no data to read or build into"),
    ("md:my_db", "only a local DuckDB file is allowed"),
    ("{tmp}/no/such/folder/x.duckdb", "does not exist and neither does its folder"),
    ("{tmp}", "is a folder, not a DuckDB file"),
])
def test_a_duckdb_location_ingest_cannot_write_is_refused_naming_the_connection(db, tmp_path, location, why):
    from agents.models import Connection

    connection = Connection.objects.create(name="DUCK", engine="duckdb", location=location.format(tmp=tmp_path),
                                           purpose="source")
    with pytest.raises(IngestError) as caught:
        files_ingest(connection=connection, paths=[str(claims_csv(tmp_path / "claims.csv"))], mission=None)
    assert caught.value.field == "connection"
    assert caught.value.message.startswith("Connection DUCK: ") and why in caught.value.message


def test_a_duckdb_file_that_is_the_platforms_own_database_is_refused(db, tmp_path, monkeypatch):
    from agents.connectors import platform
    from agents.models import Connection

    platform_file = tmp_path / "platform.sqlite3"
    platform_file.write_bytes(b"")
    monkeypatch.setattr(platform, "platform_database",
                        lambda: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(platform_file)})
    connection = Connection.objects.create(name="DUCK", engine="duckdb", location=str(platform_file),
                                           purpose="source")
    with pytest.raises(IngestError) as caught:
        files_ingest(connection=connection, paths=[str(claims_csv(tmp_path / "claims.csv"))], mission=None)
    assert caught.value.code == "platform_database" and "the platform's own database" in caught.value.message
