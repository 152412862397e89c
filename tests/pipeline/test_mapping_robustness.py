"""Bronze variants with renamed columns (abbreviations, other words, meaningless names): every target column
is mapped as its meaning says, or the mapper asks about a named column. Never a silent wrong mapping, never a
crash."""

import random

import pytest

from agents.access import adapter_for
from pipeline.demo.generator import SCHEMA, generate, write_sqlite
from pipeline.mapping import Ambiguity, Catalog, TargetMapper
from pipeline.profiler import profile_source
from pipeline.specfile import load_spec_text
from pipeline.words import tokens
from tests.pipeline.conftest import SPEC_PATH, sqlite_connection
from tests.pipeline.test_field_mapping import MEANINGS

OTHER_NAMES = {
    "SERVICE_DATE": ["SVC_DT", "SRV_DATE", "DT_OF_SVC"], "DIAGNOSIS_CODE": ["DX1", "DIAG_CD", "PRIMARY_DX"],
    "STATUS": ["CLM_STATUS", "STS"], "CHARGE_AMOUNT": ["CHG_AMT", "BILLED_AMT"], "PAID_AMOUNT": ["PD_AMT", "PAID"],
    "BIRTH_DATE": ["DOB", "BDATE"], "FIRST_NAME": ["FNAME", "GIVEN_NAME"], "LAST_NAME": ["LNAME", "SURNAME"],
    "PROVIDER_NAME": ["PROV_NM", "NAME"], "CLAIM_TYPE": ["CLM_TYPE", "CLAIM_TP"], "SPECIALTY": ["SPEC"],
}


def test_abbreviations_are_expanded():
    assert tokens("SVC_DT") == ["service", "date"]
    assert tokens("DX1") == ["diagnosis"]
    assert tokens("claimLineChargeAmounts") == ["claim", "line", "charge", "amount"]
    assert tokens("The patient's date of birth") == ["patient", "date", "birth"]


@pytest.mark.parametrize("seed", range(6))
def test_renamed_bronze_is_mapped_right_or_asked_about(tmp_path, seed):
    rng = random.Random(seed)  # noqa: S311 - reproducible variants
    rename = {}
    for table, columns in SCHEMA.items():
        for column, _ in columns:
            if column in OTHER_NAMES and rng.random() < 0.5:
                rename[f"{table}.{column}"] = rng.choice(OTHER_NAMES[column] + [f"COL{rng.randint(1, 99)}"])
    path = write_sqlite(tmp_path / "variant.sqlite3", generate(claims=300, seed=seed), rename=rename)
    renamed = {key: f"{key.split('.')[0]}.{new}" for key, new in rename.items()}
    spec = load_spec_text(open(SPEC_PATH).read())
    with adapter_for(sqlite_connection(path), mission=None) as adapter:
        catalog = Catalog(profile_source(adapter))
        for target in spec["targets"]["tables"]:
            try:
                result = TargetMapper(target=target, catalog=catalog, dialect="sqlite").plan()
            except Ambiguity as question:
                assert question.question.startswith(f"{target['name']}.{question.column}:")
                assert question.options and question.options[-1] == "none"
                continue
            for column in result["columns"]:
                allowed = {renamed.get(s, s) for s in MEANINGS[target["name"]][column["name"]]}
                got = {f"{s['table']}.{s['column']}" for s in column["sources"]}
                assert got and got <= allowed, (target["name"], column["name"], got, rename)
            assert adapter.query(result["sql"], limit=1).columns == [c["name"] for c in result["columns"]]


def test_answering_none_leaves_the_column_visibly_unmapped(bronze_opaque):
    spec = load_spec_text(open(SPEC_PATH).read())
    target = spec["targets"]["tables"][0]
    with adapter_for(sqlite_connection(bronze_opaque.path), mission=None) as adapter:
        catalog = Catalog(profile_source(adapter))
        with pytest.raises(Ambiguity) as caught:
            TargetMapper(target=target, catalog=catalog, dialect="sqlite").plan()
        assert caught.value.default == "none"  # no safe guess to accept unattended
        result = TargetMapper(target=target, catalog=catalog, dialect="sqlite",
                              answers={"CLAIM_DATE": "none", "PRIMARY_DIAGNOSIS": "CLAIMS.COL7"}).plan()
        column = next(c for c in result["columns"] if c["name"] == "CLAIM_DATE")
        assert (column["sources"], column["confidence"], column["transformation"]) == ([], 0.0, "no source: NULL")
        rows = adapter.query(result["sql"], limit=3).rows
        assert [row[1] for row in rows] == [None, None, None]
