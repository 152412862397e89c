"""Launching a mission from a blueprint (suggestions, pre-filled parameters, the objective hint) and the
stakeholder's read-only dashboard."""

import json

import pytest
from django.urls import reverse

from blueprints.forms import objective_warning
from blueprints.models import MissionOrigin
from blueprints.services import blueprint_import
from missions import services as mission_services
from missions.choices import MissionStatus, Role
from missions.models import Mission
from tasks import services as task_services
from tasks.choices import TaskStatus
from tasks.models import Task
from tests.factories import ConnectionFactory, MissionFactory, UserFactory

pytestmark = pytest.mark.django_db

NOOP_BLUEPRINT = """
slug: claims-refresh
name: Claims refresh
description: Refresh the claims summary from the bronze claims table and have it reviewed.
tags: [claims, refresh, summary]
parameters:
- name: source_connection
  type: connection
  purpose: source
  help: Where the claims are read from.
- name: months
  type: integer
  default: 36
  help: How many months to refresh.
objective: The claims summary covers {{ months }} months from {{ source_connection }}.
phases:
- name: Build
  actions:
  - key: build
    title: Build {{ months }} months of claims
    owner: noop
    config: {sleep_ms: 0}
  - key: review
    title: Review the refresh
    owner: mission_owner
    depends_on: [build]
"""

OTHER_BLUEPRINT = (
    NOOP_BLUEPRINT.replace("slug: claims-refresh", "slug: weather-feed")
    .replace("name: Claims refresh", "name: Weather feed")
    .replace("Refresh the claims summary from the bronze claims table and have it reviewed.", "Load weather data.")
    .replace("tags: [claims, refresh, summary]", "tags: [weather]")
)


@pytest.fixture
def blueprints(db, lead):
    """Two loaded blueprints; ``lead`` may add missions (a lead who owns none yet may still launch)."""
    from django.contrib.auth.models import Permission

    lead.user_permissions.add(Permission.objects.get(codename="add_mission"))
    first = blueprint_import(text=NOOP_BLUEPRINT, filename="claims-refresh.yaml", actor=lead)
    second = blueprint_import(text=OTHER_BLUEPRINT, filename="weather-feed.yaml", actor=lead)
    return first, second


@pytest.fixture
def source(db):
    return ConnectionFactory(name="BRONZE", purpose="source")


def test_objective_hint_flags_titles_and_tasks_but_not_outcomes():
    assert "title" in objective_warning("Claims pipeline")
    assert "task" in objective_warning("Build the dbt models for claims and providers")
    assert objective_warning("CLAIM_SUMMARY is refreshed daily and reconciles with the bronze claims.") == ""


def test_launch_page_suggests_fitting_blueprints_first_and_prefills_parameters(client_for, lead, blueprints, source):
    client = client_for(lead)
    url = reverse("blueprints:launch")
    content = client.get(url, {"objective": "Weather observations load hourly"}).content.decode()
    assert content.index("Weather feed") < content.index("Claims refresh")
    assert "Suggested" in content
    content = client.get(url, {"objective": "Claims summary is refreshed daily"}).content.decode()
    assert content.index("Claims refresh") < content.index("Weather feed")
    assert 'name="param__months"' in content and 'value="36"' in content
    assert '<option value="BRONZE" selected>' in content  # the only source connection is pre-filled
    assert '<label for="id_param__months">Months</label>' in content
    from tests.genesis.web.test_accessibility import headings, unlabelled_inputs

    assert unlabelled_inputs(content) == [] and headings(content) == [1]


def test_objective_fragment_warns_about_a_title(client_for, lead, blueprints):
    response = client_for(lead).get(reverse("blueprints:launch"), {"objective": "Claims"},
                                    HTTP_HX_REQUEST="true", HTTP_HX_TARGET="objective-help")
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="objective-help"') and "reads like a title" in content


def test_launch_creates_the_mission_from_the_blueprint_and_starts_it(client_for, lead, blueprints, source,
                                                                     django_capture_on_commit_callbacks):
    version = blueprints[0]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(lead).post(reverse("blueprints:launch"), {
            "version": version.pk, "name": "Claims refresh 2026", "mode": "continuous", "start_now": "on",
            "objective": "The claims summary covers 12 months and reconciles with the source.",
            "param__source_connection": "BRONZE", "param__months": "12",
        })
    mission = Mission.objects.get(name="Claims refresh 2026")
    assert response.status_code == 302 and response["Location"] == reverse("missions:cockpit", args=[mission.pk])
    assert mission.owner == lead and mission.mode == "continuous" and mission.status == MissionStatus.ACTIVE
    assert MissionOrigin.objects.get(mission=mission).params == {"source_connection": "BRONZE", "months": 12}
    tasks = dict(Task.objects.filter(mission=mission).values_list("key", "status"))
    assert tasks == {"build": TaskStatus.DONE, "review": TaskStatus.WAITING_APPROVAL}
    assert Task.objects.get(mission=mission, key="build").title == "Build 12 months of claims"


def test_launch_refuses_bad_parameters_naming_the_field(client_for, lead, blueprints, source):
    response = client_for(lead).post(reverse("blueprints:launch"), {
        "version": blueprints[0].pk, "name": "Bad", "mode": "step", "objective": "Claims are refreshed monthly.",
        "param__source_connection": "BRONZE", "param__months": "many",
    })
    assert response.status_code == 422
    content = response.content.decode()
    assert "Enter a whole number." in content
    assert not Mission.objects.filter(name="Bad").exists()


def test_a_person_who_only_follows_missions_may_not_launch(client_for, mission, viewer, blueprints):
    client = client_for(viewer)
    assert client.get(reverse("blueprints:launch")).status_code == 403
    assert client.post(reverse("blueprints:launch"), {"version": blueprints[0].pk}).status_code == 403
    assert "Launch a mission" not in client.get(reverse("missions:list")).content.decode()


def test_dashboard_shows_followed_missions_progress_checks_rows_and_downloads(client_for, mission, viewer, lead,
                                                                              agent):
    phase = task_services.phase_create(mission=mission, order=1, name="Mapping", exit_criteria=[])
    task_services.task_create(mission=mission, key="inventory", title="Inventory", owner_agent=agent, phase=phase)
    rows = [{"target": "CLAIM_SUMMARY", "month": f"2024-{m:02d}", "rows": 100 + m} for m in range(1, 4)]
    task_services.artifact_create(mission=mission, kind="report", name="row_counts.json", file=json.dumps(rows),
                                  actor=lead)
    spec = task_services.artifact_create(mission=mission, kind="spec", name="claim_summary.yml", file="a: 1",
                                         actor=lead)
    from blueprints.models import CheckEvaluation

    CheckEvaluation.objects.create(mission=mission, phase=phase, scope="exit", criterion_index=0, round=1,
                                   check_type="row_count", description="Claims backfilled", passed=False,
                                   message="CLAIM_SUMMARY has 0 rows; expected at least 1.")
    other = MissionFactory(name="Not followed")
    content = client_for(viewer).get(reverse("missions:dashboard")).content.decode()
    assert mission.name in content and other.name not in content
    assert "0 of 1 tasks done" in content
    assert "Claims backfilled" in content and ">Failed<" in content and "expected at least 1" in content
    assert "CLAIM_SUMMARY: 306 rows, 2024-01 to 2024-03" in content
    assert '<td>2024-02</td><td class="num">102</td>' in content
    assert reverse("tasks:artifact_download", args=[spec.pk]) in content
    assert 'method="post"' not in content.split("<main", 1)[1]


def test_dashboard_lists_only_missions_followed_as_stakeholder(client_for, mission, lead):
    content = client_for(lead).get(reverse("missions:dashboard")).content.decode()
    assert "You do not follow any mission" in content


def test_dashboard_runs_a_bounded_number_of_queries(client_for, lead, django_assert_max_num_queries):
    reader = UserFactory(username="reader")
    for i in range(12):
        m = MissionFactory(owner=lead, name=f"Followed {i}")
        mission_services.membership_set(mission=m, user=reader, role=Role.STAKEHOLDER, actor=lead)
        task_services.artifact_create(mission=m, kind="doc", name="notes.md", file="# hi", actor=lead)
    client = client_for(reader)
    # The session and user, the missions, progress, phases, checks, artifacts, the newest reports, the refresh
    # events, the dbt builds, the refresh schedules, the sign-offs and the stakeholders asked to sign off.
    with django_assert_max_num_queries(13):
        content = client.get(reverse("missions:dashboard")).content.decode()
    assert content.count('class="card dash"') == 12
