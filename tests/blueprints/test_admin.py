"""Blueprint admin: upload import (all problems shown, nothing stored), read-only versions, check results with
the waive page and the re-run action, bounded queries on the changelists."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from blueprints.models import Blueprint, BlueprintVersion, CheckEvaluation
from blueprints.services import blueprint_launch
from history.models import HistoryEntry
from tasks.models import Phase
from tasks.phase_gate import phases_advance
from tasks.services import task_transition
from tests.blueprints.conftest import FILES, load_shipped
from tests.documents import GIB, MULTIPART, claiming

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_admin(client, admin_user):
    client.force_login(admin_user)
    return client


def upload(client, name, content):
    return client.post(reverse("admin:blueprints_blueprint_add"),
                       {"file": SimpleUploadedFile(name, content.encode(), content_type="application/yaml")})


def test_uploading_a_blueprint_file_stores_a_version(client_admin, admin_user):
    text = (FILES / "field-mapping.yaml").read_text()
    response = upload(client_admin, "field-mapping.yaml", text)
    version = BlueprintVersion.objects.get(blueprint__slug="field-mapping")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:blueprints_blueprintversion_change", args=[version.pk])
    assert (version.number, version.source_name, version.created_by) == (1, "field-mapping.yaml", admin_user)
    page = client_admin.get(response["Location"]).content.decode()
    assert "Map fields onto {{ target_spec }}" in page and "review_mapping" in page
    assert "slug: field-mapping" in page  # the export is shown
    again = upload(client_admin, "field-mapping.yaml", text)
    assert again.status_code == 302 and BlueprintVersion.objects.count() == 1


def test_a_refused_upload_lists_every_problem_and_stores_nothing(client_admin):
    text = (FILES / "field-mapping.yaml").read_text().replace("owner: profiling", "owner: wizard").replace(
        "    - profile_sources\n", "    - profile_source\n")
    response = upload(client_admin, "bad.yaml", text)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Refused: 2 problem(s); nothing was stored." in page
    assert "bad.yaml: phases[0].actions[0].owner: unknown agent kind &#x27;wizard&#x27;" in page
    assert "bad.yaml: phases[1].actions[0].depends_on[0]: depends on &#x27;profile_source&#x27;" in page
    assert not Blueprint.objects.exists()


def test_versions_and_blueprints_are_read_only(client_admin, healthcare):
    page = client_admin.get(reverse("admin:blueprints_blueprintversion_change", args=[healthcare.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    post = client_admin.post(reverse("admin:blueprints_blueprintversion_change", args=[healthcare.pk]), {"name": "x"})
    assert post.status_code == 403
    blueprint = healthcare.blueprint
    assert client_admin.get(reverse("admin:blueprints_blueprint_change", args=[blueprint.pk])).status_code == 200
    assert client_admin.post(reverse("admin:blueprints_blueprint_delete", args=[blueprint.pk]),
                             {"post": "yes"}).status_code == 403


@pytest.fixture
def failed_phase(bronze, lead):
    from blueprints.services import blueprint_import
    from tests.blueprints.test_phase_gate import GATED, finish

    version = blueprint_import(text=GATED, filename="gated.yaml")
    mission = blueprint_launch(version=version, name="Gated", objective="Claims are loaded.", owner=lead)
    phases_advance(mission=mission)
    finish(mission.tasks.get(key="load"))
    phases_advance(mission=mission)
    return Phase.objects.get(mission=mission, order=1)


def test_check_results_show_evidence_and_can_be_waived_with_a_reason(client, lead, failed_phase):
    lead.is_staff = True
    lead.is_superuser = True
    lead.save()
    client.force_login(lead)
    failed = CheckEvaluation.objects.get(phase=failed_phase, passed=False)
    page = client.get(reverse("admin:blueprints_checkevaluation_change", args=[failed.pk])).content.decode()
    assert "&quot;expected&quot;: 100" in page and "Waive this failed check" in page
    listing = client.get(reverse("admin:blueprints_checkevaluation_changelist")).content.decode()
    assert "Enough claims loaded" in listing and ">failed<" in listing
    waive_url = reverse("admin:blueprints_checkevaluation_waive", args=[failed.pk])
    empty = client.post(waive_url, {"reason": ""})
    assert empty.status_code == 200 and "This field is required" in empty.content.decode()
    response = client.post(waive_url, {"reason": "Sample data only"})
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.waived and failed.waiver_reason == "Sample data only"
    page = client.get(reverse("admin:blueprints_checkevaluation_change", args=[failed.pk])).content.decode()
    assert "Waived by lead" in page and "Sample data only" in page
    failed_phase.refresh_from_db()
    assert failed_phase.status == "waived"


def test_the_rerun_action_runs_the_phase_checks_again(client, lead, failed_phase):
    lead.is_staff = True
    lead.is_superuser = True
    lead.save()
    client.force_login(lead)
    failed = CheckEvaluation.objects.get(phase=failed_phase, passed=False)
    client.post(reverse("admin:blueprints_checkevaluation_changelist"),
                {"action": "rerun_phase_checks", "_selected_action": [failed.pk]})
    assert CheckEvaluation.objects.filter(phase=failed_phase, round=2).count() == 2
    assert HistoryEntry.objects.filter(mission=failed_phase.mission, event="phase.checking",
                                       message="Checks re-run.").count() == 1


@pytest.mark.parametrize("url", ["admin:blueprints_blueprint_changelist",
                                 "admin:blueprints_blueprintversion_changelist",
                                 "admin:blueprints_checkevaluation_changelist",
                                 "admin:blueprints_missionorigin_changelist"])
def test_changelists_run_a_bounded_number_of_queries(client_admin, connections, lead, url, healthcare_spec,
                                                     django_assert_max_num_queries):
    versions = [load_shipped("build-marts"), load_shipped("source-onboarding"), load_shipped("field-mapping")]
    for i in range(12):
        mission = blueprint_launch(version=versions[0], name=f"HC {i}", objective="", owner=lead,
                                   spec=healthcare_spec)
        phases_advance(mission=mission)
        task = mission.tasks.get(key="initialize")
        task_transition(task=task, to="skipped")
        inventory = mission.tasks.get(key="inventory_sources")
        task_transition(task=inventory, to="skipped")
        phases_advance(mission=mission)
    assert CheckEvaluation.objects.count() >= 24
    with django_assert_max_num_queries(15):
        response = client_admin.get(reverse(url))
    assert response.status_code == 200


def test_an_upload_claiming_two_gigabytes_is_refused_before_its_body_is_read(admin_user, settings, caplog):
    # As in production: the CSRF check reads the form before the page does, so the limit must act before that read.
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    url = reverse("admin:blueprints_blueprint_add")
    client.get(url)
    response = client.generic("POST", url, b"--x--\r\n", content_type=MULTIPART, **claiming(2 * GIB),
                              HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 400
    assert [record.getMessage() for record in caplog.records if record.name.startswith("django.security")] == [
        f"The upload is 2,147,483,648 bytes; the limit is {settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes."]
    assert not Blueprint.objects.exists()
