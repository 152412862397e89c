"""The lineage page in Chromium: each target's graph is drawn, lines and boxes carry their names on hover."""

import pytest

from pipeline.choices import MappingStatus
from pipeline.models import MappingSpec, MappingSpecVersion
from tests.browser import requires_chromium, screenshot, sign_in
from tests.factories import MissionFactory, UserFactory

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LINEAGE = {
    "CLAIM_ID": ["CLAIMS.CLAIM_ID"],
    "PATIENT_ID": ["CLAIMS.PATIENT_ID"],
    "PROVIDER_ID": ["CLAIMS.PROVIDER_ID"],
    "CLAIM_DATE": ["CLAIMS.SERVICE_DATE"],
    "TOTAL_CHARGE": ["CLAIM_DETAILS.CHARGE_AMOUNT"],
    "TOTAL_PAID": ["CLAIM_DETAILS.PAID_AMOUNT"],
    "LINE_COUNT": ["CLAIM_DETAILS.LINE_NO"],
    "PROVIDER_SPECIALTY": ["PROVIDERS.SPECIALTY"],
    "LOADED_AT": [],
}


def test_the_lineage_graph_draws_every_computed_from(browser_context, live_server):
    owner = UserFactory(username="owner")
    mission = MissionFactory(owner=owner, name="Claims marts")
    spec = MappingSpec.objects.create(mission=mission, target_table="CLAIM_SUMMARY")
    MappingSpecVersion.objects.create(
        spec=spec, number=1, status=MappingStatus.APPROVED, dialect="sqlite", sql="SELECT 1", lineage=LINEAGE,
        content={"columns": [{"name": name, "confidence": 0.95} for name in LINEAGE]})
    page = sign_in(browser_context, live_server, "owner")
    page.goto(f"{live_server.url}/missions/{mission.pk}/lineage/")
    graph = page.get_by_role("img", name="CLAIM_SUMMARY: 9 columns computed from 8 source columns")
    graph.wait_for()
    assert page.locator("path.lineage-edge").count() == 8
    box = graph.bounding_box()
    assert box["width"] > 300 and box["height"] > 200  # drawn at its size, not squeezed
    # Every box is inside the drawing: nothing cut off at the edges.
    inside = page.evaluate("""() => { const svg = document.querySelector('.lineage-graph svg').getBoundingClientRect();
        return [...document.querySelectorAll('.lineage-graph rect')].every(r => { const b = r.getBoundingClientRect();
            return b.left >= svg.left && b.right <= svg.right && b.top >= svg.top && b.bottom <= svg.bottom; }); }""")
    assert inside
    screenshot(page, "lineage")
