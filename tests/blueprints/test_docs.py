"""The complete example in docs/blueprints.md is a valid blueprint that launches."""

import re
from pathlib import Path

import pytest

from blueprints.services import blueprint_import, blueprint_launch

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "blueprints.md"


def test_the_documented_example_loads_and_launches(bronze, lead):
    example = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S).group(1)
    version = blueprint_import(text=example, filename="docs/blueprints.md")
    assert version.blueprint.slug == "claims-refresh"
    mission = blueprint_launch(version=version, name="Claims", objective="", owner=lead)
    assert list(mission.tasks.order_by("position").values_list("key", "owner_user__username")) == [
        ("profile", None), ("build", None), ("review", "lead")]
    assert mission.objective == "Claims from claims, claim_lines are summarised daily."
    assert mission.tasks.get(key="profile").config == {"connection": "BRONZE", "tables": ["claims", "claim_lines"]}
    assert mission.success_criteria[1]["params"]["min"] == 1
