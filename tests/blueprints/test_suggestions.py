"""A mission's objective suggests the blueprints that fit it, best first."""

import pytest
from django.core.management import call_command

from blueprints.selectors import blueprints_suggested_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def shipped(db):
    call_command("load_blueprint", "--shipped", stdout=open("/dev/null", "w"))  # noqa: SIM115


def test_the_healthcare_objective_suggests_build_marts_first(shipped):
    # The healthcare pipeline is build-marts plus the healthcare spec file.
    suggestions = blueprints_suggested_for(
        "CLAIM_SUMMARY, PROVIDER_SUMMARY and PATIENT_SUMMARY are built daily from the bronze claims tables.")
    assert [s.blueprint.slug for s in suggestions][0] == "build-marts"
    # Only the generic words match now: the blueprint names no target of its own.
    assert suggestions[0].matched == ["built"] and len(suggestions) == 1
    marts = blueprints_suggested_for("Build the sales marts the spec file describes, reconciled with the source")
    assert marts[0].blueprint.slug == "build-marts" and {"build", "spec", "reconciled"} <= set(marts[0].matched)
    best = marts[0]
    assert best.version.number == 1 and all(best.score > s.score for s in marts[1:])


def test_onboarding_and_mapping_objectives_rank_their_blueprints_first(shipped):
    assert blueprints_suggested_for("Onboard the billing source system and ingest its tables into the warehouse"
                                    )[0].blueprint.slug == "source-onboarding"
    assert blueprints_suggested_for("Map the fields of the CRM tables onto the customer target spec"
                                    )[0].blueprint.slug == "field-mapping"


def test_nothing_is_suggested_for_an_unrelated_objective(shipped):
    assert blueprints_suggested_for("Plan the office party menu") == []
    assert blueprints_suggested_for("") == []


def test_suggestions_read_the_latest_versions_in_one_query(shipped, django_assert_num_queries):
    with django_assert_num_queries(1):
        suggestions = blueprints_suggested_for("field mapping spec with a review")
    # The mapping blueprint first, then the blueprints that map as one of their steps.
    assert [s.blueprint.slug for s in suggestions][:2] == ["field-mapping", "build-marts"]
    assert suggestions[0].score > suggestions[1].score
