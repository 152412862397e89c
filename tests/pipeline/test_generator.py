import sqlite3
import time

from pipeline.demo.generator import SCHEMA, generate, write_sqlite


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
