"""The cockpit's Environments panel: the mission's environments and what was last built there, and a Build button
for those who may build (a recorded, permission-checked background job)."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from history.models import HistoryEntry
from pipeline.dbt import services as dbt_services
from pipeline.models import Environment
from tests.factories import ConnectionFactory, MissionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def environments(mission, lead):
    """dev, stage and prod of the shared mission; stage was built once."""
    made = {name: dbt_services.environment_set(mission=mission, name=name, actor=lead,
                                               target=ConnectionFactory(name=f"HCLS_{name.upper()}", purpose="target"))
            for name in ("prod", "dev", "stage")}
    Environment.objects.filter(pk=made["stage"].pk).update(
        last_built_at=timezone.now().replace(year=2026, month=3, day=14, hour=9, minute=30),
        last_revision="0123456789abcdef0123456789abcdef")
    return made


def _panel(content: str) -> str:
    return re.search(r'<div id="environments".*?</table>', content, re.S).group(0)


def _build_url(mission, environment):
    return reverse("missions:environment_build", args=[mission.pk, environment.pk])


def _requested(mission):
    return list(HistoryEntry.objects.filter(mission=mission, event="environment.build_requested")
                .values_list("actor_user__username", "data"))


def test_the_panel_lists_environments_in_promotion_order_with_what_was_last_built(client_for, lead, mission,
                                                                                 environments):
    panel = _panel(client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode())
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(\w+).*?<td>(\w+)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", panel,
                      re.S)
    assert [(name, target) for name, target, _, _ in rows] == [
        ("Development", "HCLS_DEV"), ("Stage", "HCLS_STAGE"), ("Production", "HCLS_PROD")]
    assert rows[0][2] == "Never" and rows[0][3] == "—"
    assert "2026-03-14 09:30" in rows[1][2] and ">0123456789ab</code>" in rows[1][3]
    assert panel.count("Build<span") == 3
    for environment in environments.values():
        assert f'hx-post="{_build_url(mission, environment)}"' in panel


def test_a_mission_without_environments_says_how_to_define_one(client_for, lead, viewer, mission):
    content = client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert "No environments yet. Define dev, test, stage or prod" in content
    content = client_for(viewer).get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert "No environments yet." in content and "Define dev" not in content


def test_the_owner_builds_from_the_panel_the_request_is_recorded_and_the_job_enqueued(
        client_for, lead, mission, environments, enqueued, django_capture_on_commit_callbacks):
    stage = environments["stage"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(lead).post(_build_url(mission, stage), HTTP_HX_REQUEST="true",
                                         HTTP_HX_TARGET="environments")
    assert response.status_code == 200
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="environments"')
    assert ('role="status">Build of the dbt project in stage (HCLS_STAGE) requested: it runs in the background'
            in content)
    assert response["HX-Trigger"] == "genesis:changed"
    assert _requested(mission) == [("lead", {"environment": "stage"})]
    assert enqueued == [("pipeline.jobs.environment_build", (stage.pk, lead.pk),
                         {"task_name": f"environment-build-{stage.pk}"})]


def test_without_htmx_a_build_goes_back_to_the_cockpit_with_a_message(client_for, lead, mission, environments,
                                                                     enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(lead).post(_build_url(mission, environments["dev"]), follow=True)
    assert response.redirect_chain == [(reverse("missions:cockpit", args=[mission.pk]), 302)]
    assert "Build of the dbt project in dev (HCLS_DEV) requested" in response.content.decode()
    assert len(enqueued) == 1


def test_stakeholders_see_no_build_button_and_a_hand_made_post_is_403(client_for, viewer, mission, environments,
                                                                      enqueued, django_capture_on_commit_callbacks):
    client = client_for(viewer)
    content = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    panel = _panel(content)
    assert "HCLS_STAGE" in panel and "Build<span" not in panel and "<form" not in panel
    with django_capture_on_commit_callbacks(execute=True):
        for environment in environments.values():
            assert client.post(_build_url(mission, environment), HTTP_HX_REQUEST="true").status_code == 403
    assert _requested(mission) == [] and enqueued == []


def test_a_task_owner_builds_in_dev_but_not_in_prod(client_for, analyst, mission, environments, enqueued,
                                                    django_capture_on_commit_callbacks):
    client = client_for(analyst)
    panel = _panel(client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode())
    assert f'hx-post="{_build_url(mission, environments["dev"])}"' in panel
    assert _build_url(mission, environments["prod"]) not in panel
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(_build_url(mission, environments["prod"]), HTTP_HX_REQUEST="true")
        accepted = client.post(_build_url(mission, environments["dev"]), HTTP_HX_REQUEST="true")
    assert refused.status_code == 403 and accepted.status_code == 200
    assert _requested(mission) == [("analyst", {"environment": "dev"})]
    assert [args for _, args, _ in enqueued] == [(environments["dev"].pk, analyst.pk)]


def test_another_missions_environments_are_404(client_for, lead, outsider, mission, environments):
    elsewhere = MissionFactory(owner=lead, name="Another mission of the lead")
    # The outsider cannot see the mission at all; the lead cannot reach an environment through another mission.
    assert client_for(outsider).post(_build_url(mission, environments["dev"])).status_code == 404
    assert client_for(lead).post(_build_url(elsewhere, environments["dev"])).status_code == 404
    assert client_for(lead).get(_build_url(mission, environments["dev"])).status_code == 405
    assert _requested(mission) == []


def test_the_panel_refreshes_as_a_fragment_in_one_query(client_for, lead, mission, environments,
                                                        django_assert_max_num_queries):
    client = client_for(lead)
    client.get(reverse("missions:cockpit", args=[mission.pk]))  # the session is loaded
    with django_assert_max_num_queries(4):  # session, user, the mission, its environments with their targets
        response = client.get(reverse("missions:cockpit", args=[mission.pk]), HTTP_HX_REQUEST="true",
                              HTTP_HX_TARGET="environments")
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="environments"') and "HCLS_PROD" in content


def test_the_cockpit_costs_the_same_queries_with_one_environment_or_four(client_for, lead):
    client = client_for(lead)
    counts = []
    for names in (["dev"], ["dev", "test", "stage", "prod"]):
        mission = MissionFactory(owner=lead)
        for name in names:
            dbt_services.environment_set(mission=mission, name=name, target=ConnectionFactory(), actor=lead)
        with CaptureQueriesContext(connection) as queries:
            content = client.get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
        assert _panel(content).count("Build<span") == len(names)
        counts.append(len(queries))
    assert counts[0] == counts[1]
