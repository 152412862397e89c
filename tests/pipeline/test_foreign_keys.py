"""Foreign keys come from evidence (values over the full columns, types, names with run-together words split,
cardinality), never from names alone: on three sources nobody tuned the profiler to, every inferred key is one a
person knows the source has, and a column whose values fit several keys with nothing to tell them apart is left
to a question."""

import sqlite3

import pytest

from agents.access import adapter_for
from pipeline.profiler import name_evidence, profile_source
from pipeline.words import tokens
from tests.pipeline import sources
from tests.pipeline.conftest import sqlite_connection


def inferred(source) -> set[tuple[str, str, str, str]]:
    with adapter_for(sqlite_connection(source.path), mission=None) as adapter:
        profile = profile_source(adapter)
    return {(fk["table"], fk["column"], fk["ref_table"], fk["ref_column"]) for fk in profile["foreign_keys"]}


@pytest.mark.parametrize("make", [sources.retail, sources.claims, sources.library, sources.subscriptions])
def test_every_inferred_foreign_key_is_a_real_one_and_none_is_missed(tmp_path, make):
    source = make(tmp_path)
    assert inferred(source) == source.relationships


def test_a_bare_id_matching_another_tables_id_is_no_evidence():
    assert name_evidence("id", "customers", "id") is None
    assert name_evidence("customer_id", "customers", "id") == "names customers"
    assert name_evidence("CUSTOMERID", "customers", "id") == "names customers"
    assert name_evidence("PATIENT", "patients", "Id") == "names patients"
    assert name_evidence("REFERRING_PROVIDER_ID", "PROVIDERS", "PROVIDER_ID") == "names PROVIDERS in a role (referring)"
    assert name_evidence("NPI", "PHYSICIANS", "NPI") == "same key name as PHYSICIANS.NPI"


@pytest.mark.parametrize(("name", "words"), [
    ("PATIENTID", ["patient", "id"]), ("SERVICEDATE", ["service", "date"]), ("DIAGNOSIS1", ["diagnosis"]),
    ("PROVIDERID", ["provider", "id"]), ("supportRepId", ["support", "rep", "id"]),
    ("PLACEOFSERVICE", ["place", "service"]), ("AmountCents", ["amount", "cent"]), ("npi", ["npi"]),
    ("SVC_DT", ["service", "date"]),
])
def test_run_together_names_are_read_as_their_words(name, words):
    assert tokens(name) == words


def test_values_that_fit_two_keys_with_no_name_to_choose_are_asked_not_guessed(tmp_path):
    path = tmp_path / "twins.sqlite3"
    db = sqlite3.connect(path)
    with db:
        db.executescript(
            "CREATE TABLE shops(id INTEGER, name TEXT); CREATE TABLE depots(id INTEGER, name TEXT);"
            "CREATE TABLE moves(move_no INTEGER, site_id INTEGER, qty INTEGER);")
        db.executemany("INSERT INTO shops VALUES (?, ?)", [(i, f"s{i}") for i in range(1, 21)])
        db.executemany("INSERT INTO depots VALUES (?, ?)", [(i, f"d{i}") for i in range(1, 21)])
        db.executemany("INSERT INTO moves VALUES (?, ?, ?)", [(i, 1 + i % 20, i % 7) for i in range(100)])
    db.close()
    with adapter_for(sqlite_connection(path), mission=None) as adapter:
        profile = profile_source(adapter)
    assert profile["foreign_keys"] == []
    assert profile["ambiguous_foreign_keys"] == [
        {"table": "moves", "column": "site_id", "candidates": ["depots.id", "shops.id"]}]


def test_a_relationship_the_spec_declares_is_taken_with_its_containment(tmp_path):
    source = sources.retail(tmp_path)
    declared = [{"table": "payments", "column": "order_id", "ref_table": "orders", "ref_column": "id"}]
    with adapter_for(sqlite_connection(source.path), mission=None) as adapter:
        profile = profile_source(adapter, relationships=declared)
    fk = next(f for f in profile["foreign_keys"] if f["table"] == "payments")
    assert fk["by"] == ["declared"] and fk["containment"] == 1.0 and fk["orphan_values"] == 0
