"""Blueprints over the API (import, export, launch), exit-check results with waivers, phase re-checks, and
mapping spec review."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from blueprints.models import Blueprint, CheckEvaluation
from history.models import HistoryEntry
from missions.models import Mission
from pipeline import services as agent_services
from tasks.models import Phase
from tasks.phase_gate import phases_advance
from tests.blueprints.conftest import (  # noqa: F401  (fixtures reused here)
    FILES,
    bronze,
    connections,
    healthcare,
    healthcare_spec_text,
    load_shipped,
    validation_db,
    warehouse,
)
from tests.blueprints.test_phase_gate import GATED, finish
from tests.documents import GIB, MULTIPART, billion_laughs_blueprint, claiming, deep_block_yaml, deep_flow_yaml
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

MARTS = (FILES / "build-marts.yaml").read_text()


def test_import_as_text_then_the_same_content_again_is_not_a_new_version(as_user, lead):
    client = as_user(lead)
    first = client.post("/api/v1/blueprints/import/", {"text": MARTS, "filename": "hdp.yaml"})
    assert first.status_code == 201, first.json()
    assert (first.json()["slug"], first.json()["number"], first.json()["created"]) == (
        "build-marts", 1, True,
    )
    again = client.post("/api/v1/blueprints/import/", {"text": MARTS, "filename": "hdp.yaml"})
    assert (again.json()["number"], again.json()["created"]) == (1, False)
    listed = client.get("/api/v1/blueprints/").json()["results"]
    assert [(b["slug"], b["latest_version"], b["version_count"]) for b in listed] == [
        ("build-marts", 1, 1),
    ]


def test_import_as_a_file_and_export_round_trip(as_user, lead):
    client = as_user(lead)
    upload = SimpleUploadedFile("hdp.yaml", MARTS.encode(), "application/yaml")
    created = client.post("/api/v1/blueprints/import/", {"file": upload}, format="multipart")
    assert created.status_code == 201, created.json()
    blueprint_id = created.json()["blueprint"]
    exported = client.get(f"/api/v1/blueprints/{blueprint_id}/export/")
    assert exported.status_code == 200 and exported["Content-Type"] == "application/yaml"
    reimported = client.post("/api/v1/blueprints/import/", {"text": exported.content.decode(), "filename": "x.yaml"})
    assert (reimported.json()["number"], reimported.json()["created"]) == (1, False)
    assert client.get(f"/api/v1/blueprints/{blueprint_id}/export/", {"version": 7}).status_code == 404
    assert client.get(f"/api/v1/blueprints/{blueprint_id}/export/", {"version": "x"}).status_code == 400


def test_a_refused_file_lists_every_problem_and_stores_nothing(as_user, lead):
    text = "slug: broken\nname: Broken\nphases:\n- name: One\n  actions:\n  - {key: a, title: A, owner: nobody}\n" \
           "  - {key: a, title: B, owner: noop, depends_on: [zzz], colour: red}\n"
    response = as_user(lead).post("/api/v1/blueprints/import/", {"text": text, "filename": "broken.yaml"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_blueprint"
    problems = body["errors"]["file"]
    assert len(problems) >= 3 and all(p.startswith("broken.yaml: phases[0].actions") for p in problems)
    assert not Blueprint.objects.filter(slug="broken").exists()


def test_launch_builds_the_twelve_tasks_and_can_start_the_mission(as_user, lead, healthcare):  # noqa: F811
    ConnectionFactory(name="HCLS_SOURCE", purpose="source")
    ConnectionFactory(name="HCLS_TARGET", purpose="target")
    ConnectionFactory(name="HCLS_CHECK", purpose="validation")  # the only one: the parameter is pre-filled
    # The healthcare pipeline: build-marts with the healthcare spec file, which names the source and the target.
    response = as_user(lead).post(f"/api/v1/blueprints/{healthcare.blueprint_id}/launch/", {
        "name": "HCLS demo", "objective": "Summary tables are built daily.", "start": True,
        "spec": healthcare_spec_text(source="HCLS_SOURCE", target="HCLS_TARGET"),
    })
    assert response.status_code == 201, response.json()
    body = response.json()
    mission = Mission.objects.get(pk=body["id"])
    assert (body["status"], body["owner"], body["my_role"]) == ("active", "lead", "mission_owner")
    assert mission.tasks.count() == 12 and body["progress"]["total"] == 12
    assert mission.origin.blueprint_version == healthcare
    assert mission.origin.params["source_connection"] == "HCLS_SOURCE"
    assert mission.origin.params["validation_connection"] == "HCLS_CHECK"
    assert sorted(mission.tasks.filter(key__startswith="map_").values_list("key", flat=True)) == [
        "map_claim_summary", "map_patient_summary", "map_provider_summary"]


def test_launch_refuses_an_unknown_parameter_and_an_unknown_version(as_user, lead, healthcare):  # noqa: F811
    client = as_user(lead)
    url = f"/api/v1/blueprints/{healthcare.blueprint_id}/launch/"
    unknown = client.post(url, {"name": "X", "params": {"no_such_param": 1}})
    assert unknown.status_code == 400 and "params.no_such_param" in unknown.json()["errors"]
    missing = client.post(url, {"name": "X", "version": 9})
    assert missing.status_code == 404
    assert Mission.objects.count() == 0


@pytest.fixture
def failed_phase(bronze, lead):  # noqa: F811
    from blueprints.services import blueprint_import, blueprint_launch

    version = blueprint_import(text=GATED, filename="gated.yaml")
    mission = blueprint_launch(version=version, name="Gated", objective="Claims are loaded.", owner=lead)
    phases_advance(mission=mission)
    finish(mission.tasks.get(key="load"))
    phases_advance(mission=mission)
    return Phase.objects.get(mission=mission, order=1)


def test_check_results_are_read_and_a_failure_is_waived_by_the_owner(as_user, lead, viewer, failed_phase):
    from missions.choices import Role
    from missions.services import membership_set

    membership_set(mission=failed_phase.mission, user=viewer, role=Role.STAKEHOLDER)
    failed = CheckEvaluation.objects.get(phase=failed_phase, passed=False)
    rows = as_user(viewer).get("/api/v1/check-results/", {"phase": failed_phase.pk, "passed": "false"}).json()
    assert [(r["id"], r["description"], r["waived"]) for r in rows["results"]] == [
        (failed.pk, "Enough claims loaded", False),
    ]
    assert as_user(viewer).post(f"/api/v1/check-results/{failed.pk}/waive/", {"reason": "x"}).status_code == 403
    no_reason = as_user(lead).post(f"/api/v1/check-results/{failed.pk}/waive/", {})
    assert no_reason.status_code == 400 and list(no_reason.json()["errors"]) == ["reason"]
    waived = as_user(lead).post(f"/api/v1/check-results/{failed.pk}/waive/", {"reason": "Sample data only"})
    assert waived.status_code == 200, waived.json()
    assert (waived.json()["waived"], waived.json()["waived_by"], waived.json()["waiver_reason"]) == (
        True, "lead", "Sample data only",
    )
    failed_phase.refresh_from_db()
    assert failed_phase.status == "waived"
    assert HistoryEntry.objects.filter(mission=failed_phase.mission, event="check.waived").exists()


def test_a_phase_recheck_runs_the_checks_again(as_user, lead, failed_phase):
    rounds_before = CheckEvaluation.objects.filter(phase=failed_phase).count()
    response = as_user(lead).post(f"/api/v1/phases/{failed_phase.pk}/recheck/")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "failed"
    assert CheckEvaluation.objects.filter(phase=failed_phase).count() > rounds_before


def test_a_pending_phase_cannot_be_rechecked(as_user, lead, failed_phase):
    later = Phase.objects.get(mission=failed_phase.mission, order=2)
    response = as_user(lead).post(f"/api/v1/phases/{later.pk}/recheck/")
    assert response.status_code == 409
    assert response.json()["transition"]["from"] == "pending"


def _propose(mission, target="CLAIM_SUMMARY"):
    return agent_services.mapping_spec_propose(
        mission=mission, target_table=target, dialect="sqlite", sql="SELECT claim_id AS CLAIM_ID FROM claims",
        content={"target": target, "columns": [{"name": "CLAIM_ID", "source": "CLAIMS.CLAIM_ID"}]},
    )


def test_mapping_specs_are_approved_or_rejected_by_the_mission_owner(as_user, lead, analyst, mission):
    version = _propose(mission)
    listed = as_user(analyst).get("/api/v1/mapping-specs/", {"mission": mission.pk, "status": "proposed"}).json()
    assert [(v["id"], v["target_table"], v["number"]) for v in listed["results"]] == [
        (version.pk, "CLAIM_SUMMARY", 1),
    ]
    assert as_user(analyst).post(f"/api/v1/mapping-specs/{version.pk}/approve/").status_code == 403
    no_feedback = as_user(lead).post(f"/api/v1/mapping-specs/{version.pk}/reject/", {"feedback": ""})
    assert no_feedback.status_code == 400
    rejected = as_user(lead).post(f"/api/v1/mapping-specs/{version.pk}/reject/", {"feedback": "Use SVC_DT"})
    assert (rejected.json()["status"], rejected.json()["feedback"]) == ("rejected", "Use SVC_DT")
    second = _propose(mission)
    approved = as_user(lead).post(f"/api/v1/mapping-specs/{second.pk}/approve/", {"note": "Good"})
    assert approved.status_code == 200
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "lead")
    again = as_user(lead).post(f"/api/v1/mapping-specs/{version.pk}/approve/")
    assert again.status_code == 409


# --- files that held a worker (genesis/documents.py, genesis/uploads.py) --------------------------------------------

def test_a_billion_laughs_is_refused_in_well_under_a_second_naming_the_limit(as_user, admin_user):
    started = time.perf_counter()
    response = as_user(admin_user).post("/api/v1/blueprints/import/",
                                        {"text": billion_laughs_blueprint(), "filename": "laughs.yaml"})
    elapsed = time.perf_counter() - started
    assert elapsed < 2, f"took {elapsed:.2f} s"
    assert response.status_code == 400
    assert response.json()["errors"] == {"file": [
        "laughs.yaml: line 14, column 31: 56,815 nodes by here once aliases are followed, over the limit of 50,000 "
        "(GENESIS_YAML_MAX_NODES)"]}
    assert not Blueprint.objects.exists()


@pytest.mark.parametrize("text", [deep_flow_yaml(20_000), deep_block_yaml(20_000)])
def test_yaml_nested_twenty_thousand_levels_is_a_400_naming_the_depth_limit(as_user, admin_user, text):
    response = as_user(admin_user).post("/api/v1/blueprints/import/", {"text": text, "filename": "deep.yaml"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_blueprint"
    [problem] = body["errors"]["file"]
    assert problem.startswith("deep.yaml: line 1, column ")
    assert problem.endswith(": lists and mappings nested 65 levels deep, over the limit of 64 (GENESIS_YAML_MAX_DEPTH)")


def test_an_upload_claiming_two_gigabytes_is_refused_before_its_body_is_read(as_user, admin_user, settings):
    response = as_user(admin_user).generic("POST", "/api/v1/blueprints/import/", b"--x--\r\n", content_type=MULTIPART,
                                           **claiming(2 * GIB))
    assert response.status_code == 400
    message = f"The upload is 2,147,483,648 bytes; the limit is {settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes."
    assert response.json() == {"code": "file_too_large", "detail": message, "errors": {"file": [message]}}


def test_a_blueprint_file_over_the_upload_limit_is_refused(as_user, admin_user, settings):
    padded = MARTS + "#" * settings.GENESIS_MAX_UPLOAD_BYTES + "\n"  # a valid blueprint, too large
    upload = SimpleUploadedFile("hdp.yaml", padded.encode(), "application/yaml")
    response = as_user(admin_user).post("/api/v1/blueprints/import/", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert response.json()["errors"] == {"file": [
        f"The file is {len(padded.encode()):,} bytes; the limit is {settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes."]}
    assert not Blueprint.objects.exists()


def test_a_list_parameter_given_as_json_text_nested_too_deep_is_a_400(as_user, lead, connections):  # noqa: F811
    url = f"/api/v1/blueprints/{load_shipped('field-mapping').blueprint_id}/launch/"
    response = as_user(lead).post(url, {"name": "X", "params": {"source_tables": "[" * 5_000 + "]" * 5_000}})
    assert response.status_code == 400
    [message] = response.json()["errors"]["params.source_tables"]
    assert message.startswith("Parameter source_tables: '[[[") and message.endswith("]]]' is not a JSON list.")
    assert Mission.objects.count() == 0
