import hashlib
import sqlite3
import time
import weakref

import duckdb
import pytest

from pipeline.demo import generator
from pipeline.demo.generator import SCHEMA, generate, stream, write_duckdb, write_sqlite


def test_same_seed_same_rows_other_seed_other_rows():
    a, b, c = generate(claims=500, seed=1), generate(claims=500, seed=1), generate(claims=500, seed=2)
    assert a.tables == b.tables
    assert a.tables["CLAIMS"] != c.tables["CLAIMS"]


def test_the_bronze_schema_is_the_contract(tmp_path):
    path = write_sqlite(tmp_path / "b.sqlite3", generate(claims=300, seed=3))
    db = sqlite3.connect(path)
    for table, columns in SCHEMA.items():
        names = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        assert names == [c for c, _ in columns]
    assert [r[1] for r in db.execute("PRAGMA table_info(CLAIMS)")] == [
        "CLAIM_ID", "PATIENT_ID", "PROVIDER_ID", "SERVICE_DATE", "CLAIM_TYPE", "STATUS", "DIAGNOSIS_CODE"]


def test_realistic_rules_hold(tmp_path):
    data = generate(claims=20_000, seed=42)
    claims, lines = data.tables["CLAIMS"], data.tables["CLAIM_DETAILS"]
    assert len(claims) == 20_000
    dates = sorted(c[3] for c in claims)
    assert dates[0][:4] == "2022" and dates[-1][:4] == "2024"
    assert {c[5] for c in claims} == {"PAID", "DENIED", "PENDING"}
    status = {c[0]: c[5] for c in claims}
    assert all(line[5] == 0 for line in lines if status[line[1]] == "DENIED")
    assert any(line[5] > 0 for line in lines if status[line[1]] == "PAID")
    with_lines = {line[1] for line in lines}
    no_lines = [c for c in claims if c[0] not in with_lines]
    assert 200 < len(no_lines) < 2_000
    assert any(c[6] is None for c in claims)  # diagnosis code is optional
    assert any(p[5] is None for p in data.tables["PATIENTS"])  # zip code
    assert any(line[6] is None for line in lines)  # units
    patient_ids = {p[0] for p in data.tables["PATIENTS"]}
    provider_ids = {p[0] for p in data.tables["PROVIDERS"]}
    assert all(c[1] in patient_ids and c[2] in provider_ids for c in claims)


def test_default_size_is_generated_in_a_few_seconds(tmp_path):
    started = time.monotonic()
    write_sqlite(tmp_path / "demo.sqlite3", generate())
    assert time.monotonic() - started < 5
    db = sqlite3.connect(tmp_path / "demo.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM CLAIMS").fetchone()[0] == 20_000


def test_renamed_variant(tmp_path):
    path = write_sqlite(tmp_path / "r.sqlite3", generate(claims=50, seed=1), rename={"CLAIMS.SERVICE_DATE": "SVC_DT"})
    names = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(CLAIMS)")]
    assert "SVC_DT" in names and "SERVICE_DATE" not in names


def test_the_rows_of_a_seed_are_those_the_demo_always_had():
    # Digests of the rows the generator gave before it streamed (tests and results elsewhere rely on them).
    for claims, seed, digest in [
        (2000, 42, "4ed83c0c884572beff16ca483a0b42a4b83f96afca643ceedb80968d77c165e9"),
        (777, 5, "23af5701f676baefbaf84ac7433bea7730e96088b84536d58e672d6601d27204"),
    ]:
        assert hashlib.sha256(repr(generate(claims=claims, seed=seed).tables).encode()).hexdigest() == digest


@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 5_000])
def test_streamed_chunks_are_the_rows_of_one_piece(chunk_rows):
    whole = generate(claims=900, seed=11).tables
    got: dict[str, list[tuple]] = {table: [] for table in SCHEMA}
    order = []
    for table, rows in stream(claims=900, seed=11, chunk_rows=chunk_rows):
        assert 0 < len(rows) <= chunk_rows
        got[table].extend(rows)
        order.append(table)
    assert got == whole
    # Patients, then providers, then claims and their lines: a table's rows arrive in key order.
    assert order.index("PROVIDERS") > max(i for i, t in enumerate(order) if t == "PATIENTS")
    assert order.index("CLAIMS") > max(i for i, t in enumerate(order) if t == "PROVIDERS")
    if chunk_rows < 900:
        assert order.count("CLAIMS") > 1 and order.count("CLAIM_DETAILS") > 1


class _Rows(list):
    """A chunk whose lifetime a test can follow (a plain list cannot be referenced weakly)."""


def _tracked(chunks, alive):
    """``chunks`` as ``_Rows``; before handing out each chunk, records how many chunks handed out earlier are still
    referenced by someone (the writer, if it gathered them)."""
    handed = []
    for table, rows in chunks:
        alive.append(sum(ref() is not None for ref in handed))
        chunk = _Rows(rows)
        handed.append(weakref.ref(chunk))
        yield table, chunk


def _duckdb_tables(path):
    db = duckdb.connect(str(path), read_only=True)
    try:
        return {table: [tuple(float(v) if table == "CLAIM_DETAILS" and i in (4, 5) else v
                              for i, v in enumerate(row))
                        for row in db.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()]  # noqa: S608
                for table in SCHEMA}
    finally:
        db.close()


def test_the_writers_consume_chunks_one_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "DUCKDB_BATCH_ROWS", 300)  # several batches per table
    want = generate(claims=1_500, seed=4).tables
    for write, read in [
        (write_sqlite, lambda path: {t: sqlite3.connect(path).execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                                     for t in SCHEMA}),
        (write_duckdb, _duckdb_tables),
    ]:
        alive: list[int] = []
        path = write(tmp_path / f"streamed.{write.__name__}", _tracked(stream(claims=1_500, seed=4, chunk_rows=50),
                                                                        alive))
        assert len(alive) > 60 and max(alive) <= 1  # the writer keeps no earlier chunk: memory does not grow
        assert read(path) == want
