"""A spec file attached at launch, alike from the command, the launch page and the API (the blueprint's launch and
POST /api/v1/missions/ with a blueprint): validated before anything is written, required by build-marts, and the
shape it gives the mission (one mapping task per target)."""

import json
import re
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from blueprints.models import MissionOrigin
from missions.models import Mission
from pipeline.management.commands.load_demo import SPEC_FILE
from pipeline.specfile import load_mission_spec
from tasks.models import Dependency, Task
from tests.blueprints.test_launch import TWELVE

pytestmark = pytest.mark.django_db

# A target's grain names an unknown key: the spec file is refused naming the path at fault.
BAD_PATH = "targets.tables[1].grain"


def bad(spec: str) -> str:
    return spec.replace("        entity: order\n", "        entity: order\n        colour: red\n")


def nothing_written():
    return not Mission.objects.exists() and not Task.objects.exists() and not MissionOrigin.objects.exists()


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_launch_mission_attaches_the_spec_file_and_expands_one_mapping_task_per_target(marts, retail_spec, lead,
                                                                                       retail, tmp_path):
    path = tmp_path / "retail.yml"
    path.write_text(retail_spec)
    out = StringIO()
    call_command("launch_mission", "--blueprint", "build-marts", "--name", "Retail", "--owner", "lead",
                 "--param", "validation_connection=RETAIL_CHECK", "--spec-file", str(path), stdout=out)
    mission = Mission.objects.get(pk=int(out.getvalue().strip()))
    assert load_mission_spec(mission)["name"] == "Retail marts"
    assert mission.source_connection.name == "RETAIL" and mission.target_connection.name == "RETAIL_MARTS"
    maps = {t.key: t for t in mission.tasks.filter(key__startswith="map_")}
    assert {k: (t.title, t.config["target"]) for k, t in maps.items()} == {
        "map_customer_dim": ("Define CUSTOMER_DIM mapping spec", "CUSTOMER_DIM"),
        "map_order_fact": ("Define ORDER_FACT mapping spec", "ORDER_FACT")}
    review = mission.tasks.get(key="review_mapping_specs")
    assert sorted(Dependency.objects.filter(task=review).values_list("depends_on__key", flat=True)) == sorted(maps)
    assert mission.tasks.get(key="implement_dbt_models").config["select"] == ["CUSTOMER_DIM", "ORDER_FACT"]
    assert mission.phases.get(order=2).exit_criteria[1]["params"]["min_count"] == 2


def test_launch_mission_refuses_a_bad_spec_file_and_a_missing_one_writing_nothing(marts, retail_spec, lead, retail,
                                                                                 tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(bad(retail_spec))
    with pytest.raises(CommandError, match=re.escape(f"--spec-file {path}: spec file bad.yml is invalid: {BAD_PATH}: "
                                                     "unknown key(s) 'colour'")):
        call_command("launch_mission", "--blueprint", "build-marts", "--name", "Retail", "--owner", "lead",
                     "--param", "validation_connection=RETAIL_CHECK", "--spec-file", str(path))
    with pytest.raises(CommandError, match=r"build-marts requires a spec file \(requires: \[spec_file\]\)"):
        call_command("launch_mission", "--blueprint", "build-marts", "--name", "Retail", "--owner", "lead",
                     "--param", "validation_connection=RETAIL_CHECK", "--param", "source_connection=RETAIL",
                     "--param", "target_connection=RETAIL_MARTS")
    with pytest.raises(CommandError, match="no such file"):
        call_command("launch_mission", "--blueprint", "build-marts", "--name", "Retail", "--owner", "lead",
                     "--spec-file", str(tmp_path / "missing.yml"))
    assert nothing_written()


def test_the_launch_page_uploads_the_spec_file_and_refuses_a_bad_one(client, marts, retail_spec, lead, retail):
    client.force_login(lead)
    form = {"version": marts.pk, "name": "Retail from the page", "mode": "step", "start_now": "",
            "objective": "Customer and order marts are built daily and reconcile with the shop's database.",
            "param__validation_connection": "RETAIL_CHECK", "param__dbt_project": "marts",
            "param__refresh_cron": "0 6 * * *"}
    page = client.get(reverse("blueprints:launch"), {"blueprint": "build-marts"}).content.decode()
    assert 'enctype="multipart/form-data"' in page and "required by build-marts" in page

    refused = client.post(reverse("blueprints:launch"), {**form, "spec_file": ContentFile(
        bad(retail_spec).encode(), name="bad.yml")})
    assert refused.status_code == 422
    assert f"spec file bad.yml is invalid: {BAD_PATH}: unknown key(s) &#x27;colour&#x27;" in refused.content.decode()
    missing = client.post(reverse("blueprints:launch"), form)
    assert missing.status_code == 422 and "build-marts requires a spec file" in missing.content.decode()
    assert nothing_written()

    done = client.post(reverse("blueprints:launch"), {**form, "spec_file": ContentFile(
        retail_spec.encode(), name="retail.yml")})
    mission = Mission.objects.get(name="Retail from the page")
    assert done.status_code == 302 and done["Location"] == reverse("missions:cockpit", args=[mission.pk])
    assert load_mission_spec(mission)["targets"]["connection"] == "RETAIL_MARTS"
    assert mission.tasks.filter(key__startswith="map_").count() == 2


def test_the_api_launches_with_a_spec_file_on_both_endpoints_and_refuses_a_bad_one(marts, retail_spec, lead,
                                                                                   retail):
    client = api(lead)
    body = {"name": "Retail over the API", "params": json.dumps({"validation_connection": "RETAIL_CHECK"})}
    refused = client.post("/api/v1/missions/", {**body, "blueprint": "build-marts", "spec_file": ContentFile(
        bad(retail_spec).encode(), name="bad.yml")}, format="multipart")
    assert refused.status_code == 400
    assert refused.json()["errors"]["spec_file"][0].startswith(
        f"spec file bad.yml is invalid: {BAD_PATH}: unknown key(s) 'colour'")
    required = client.post(f"/api/v1/blueprints/{marts.blueprint_id}/launch/", {
        "name": "No spec", "params": {"validation_connection": "RETAIL_CHECK", "source_connection": "RETAIL",
                                      "target_connection": "RETAIL_MARTS"}}, format="json")
    assert required.status_code == 400
    assert "requires a spec file" in required.json()["errors"]["spec_file"][0]
    unknown = client.post("/api/v1/missions/", {"blueprint": "nope", "name": "x"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["errors"]["blueprint"] == ["No blueprint 'nope' is loaded."]
    assert nothing_written()

    created = client.post("/api/v1/missions/", {**body, "blueprint": "build-marts", "spec_file": ContentFile(
        retail_spec.encode(), name="retail.yml")}, format="multipart")
    assert created.status_code == 201, created.json()
    mission = Mission.objects.get(pk=created.json()["id"])
    assert created.json()["spec_file"].endswith(f"/api/v1/missions/{mission.pk}/spec-file/")
    assert mission.tasks.filter(key__startswith="map_").count() == 2
    # The blueprint's own launch endpoint takes the spec as text in a JSON body.
    as_text = client.post("/api/v1/blueprints/build-marts/launch/", {
        "name": "Retail as text", "spec": retail_spec, "params": {"validation_connection": "RETAIL_CHECK"}},
        format="json")
    assert as_text.status_code == 201, as_text.json()
    assert load_mission_spec(Mission.objects.get(name="Retail as text"))["name"] == "Retail marts"


def test_an_oversized_spec_file_is_refused_naming_the_limit(marts, retail_spec, lead, retail, settings):
    settings.GENESIS_MAX_UPLOAD_BYTES = 100
    response = api(lead).post("/api/v1/missions/", {
        "blueprint": "build-marts", "name": "Too big", "params": json.dumps({"validation_connection": "RETAIL_CHECK"}),
        "spec_file": ContentFile(retail_spec.encode(), name="retail.yml")}, format="multipart")
    assert response.status_code == 400
    assert "the limit is 100 bytes" in response.json()["errors"]["spec_file"][0]
    assert nothing_written()


def test_the_healthcare_pipeline_is_build_marts_plus_the_healthcare_spec(db, lead, tmp_path):
    """load_demo --launch: build-marts with the demo's spec gives the healthcare pipeline's 12 steps and 13 edges."""
    call_command("load_demo", claims=200, seed=1, dir=str(tmp_path), launch=True, stdout=StringIO())
    mission = Mission.objects.get()
    assert mission.origin.blueprint_version.blueprint.slug == "build-marts"
    assert mission.source_connection.name == "HCLS_DEMO_1_SOURCES"
    assert mission.target_connection.name == "HCLS_DEMO_1_TARGET"
    assert list(mission.tasks.order_by("position").values_list("key", flat=True)) == [key for key, _, _ in TWELVE]
    edges = {(t, d) for t, d in Dependency.objects.filter(task__mission=mission).values_list("task__key",
                                                                                            "depends_on__key")}
    assert edges == {(key, dep) for key, _, deps in TWELVE for dep in deps}
    assert mission.tasks.count() == 12
    assert Dependency.objects.filter(task__mission=mission).count() == 13
    owners = dict(mission.tasks.values_list("key", "owner_agent__kind"))
    assert owners["map_claim_summary"] == owners["map_patient_summary"] == "field_mapping"
    assert mission.tasks.get(key="initialize").config["dbt_project"] == "healthcare"
    assert mission.tasks.get(key="inventory_sources").config["tables"] == [
        "PATIENTS", "PROVIDERS", "CLAIMS", "CLAIM_DETAILS"]
    assert not any("COUNT(DISTINCT" in json.dumps(p.exit_criteria) for p in mission.phases.all())


def test_a_spec_file_read_from_disk_is_the_demo_spec(db):
    assert SPEC_FILE.is_file()
