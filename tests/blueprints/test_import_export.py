"""Import, export (round trip), versioning: a stored version never changes; a mission keeps its version."""

from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from blueprints.models import ActionTemplate, Blueprint, BlueprintVersion, PhaseTemplate
from blueprints.services import blueprint_export, blueprint_import, blueprint_launch
from blueprints.validation import BlueprintInvalid, normalize
from tests.blueprints.conftest import FILES, load_shipped

pytestmark = pytest.mark.django_db

SHIPPED = sorted(FILES.glob("*.yaml"))


def test_three_blueprints_are_shipped():
    # The healthcare pipeline is build-marts plus the healthcare spec file, not a blueprint of its own.
    assert [p.stem for p in SHIPPED] == ["build-marts", "field-mapping", "source-onboarding"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_export_of_an_import_is_the_original_file(path):
    original = yaml.safe_load(path.read_text())
    version = blueprint_import(text=path.read_text(), filename=str(path))
    exported = yaml.safe_load(blueprint_export(blueprint_version=version))
    assert exported.pop("version") == 1
    assert exported == original  # same keys, same values, nothing added or lost
    again = blueprint_import(text=blueprint_export(blueprint_version=version), filename="export.yaml")
    assert (again.pk, again.created) == (version.pk, False)


def test_round_trip_keeps_defaults_spelled_out_in_the_original_equivalent():
    text = (FILES / "source-onboarding.yaml").read_text().replace(
        "    owner: backfill\n", "    owner: backfill\n    max_attempts: 3\n    acceptance_criteria: []\n")
    version = blueprint_import(text=text, filename="explicit.yaml")
    exported = yaml.safe_load(blueprint_export(blueprint_version=version))
    exported.pop("version")
    assert normalize(exported) == normalize(yaml.safe_load(text))


def test_loading_the_same_file_twice_keeps_one_version(healthcare):
    path = FILES / "build-marts.yaml"
    again = blueprint_import(text=path.read_text(), filename=str(path))
    assert again.pk == healthcare.pk and not again.created
    assert BlueprintVersion.objects.count() == 1


def test_a_changed_file_makes_a_new_version_and_the_old_one_stays(healthcare):
    text = (FILES / "build-marts.yaml").read_text().replace(
        "title: Schedule refresh and alerts", "title: Schedule the refresh and its alerts")
    newer = blueprint_import(text=text, filename="hc-v2.yaml")
    assert (newer.number, newer.created) == (2, True)
    assert healthcare.phases.get(order=5).actions.get(key="schedule_refresh").title == "Schedule refresh and alerts"
    assert newer.phases.get(order=5).actions.get(key="schedule_refresh").title == \
        "Schedule the refresh and its alerts"
    blueprint = Blueprint.objects.get(slug="build-marts")
    assert blueprint.latest_version() == newer
    # Two versions of five phases and ten actions (the mapping action is one, expanded per target at launch).
    assert PhaseTemplate.objects.count() == 10 and ActionTemplate.objects.count() == 20


def test_stored_versions_cannot_be_edited(healthcare):
    healthcare.name = "Changed in place"
    with pytest.raises(PermissionError, match="immutable"):
        healthcare.save()
    action = ActionTemplate.objects.filter(phase__version=healthcare).first()
    action.title = "x"
    with pytest.raises(PermissionError):
        action.save()


def test_an_explicit_version_that_exists_with_other_content_is_refused(healthcare):
    text = (FILES / "build-marts.yaml").read_text()
    changed = "version: 1\n" + text.replace("name: Build marts from a spec file", "name: Build marts")
    with pytest.raises(BlueprintInvalid) as caught:
        blueprint_import(text=changed, filename="hc.yaml")
    assert caught.value.lines() == [
        "hc.yaml: version: version 1 of 'build-marts' is already stored with other content, and a "
        "stored version never changes: remove 'version' or use 2"
    ]
    bumped = blueprint_import(text=changed.replace("version: 1", "version: 5"), filename="hc.yaml")
    assert bumped.number == 5


def test_a_changed_blueprint_makes_a_new_version_while_a_running_mission_keeps_its_own(healthcare, healthcare_spec,
                                                                                     connections, lead):
    mission = blueprint_launch(version=healthcare, name="HC", objective="", owner=lead, spec=healthcare_spec)
    text = (FILES / "build-marts.yaml").read_text().replace(
        "title: Inventory source fields", "title: Inventory and profile source fields")
    newer = blueprint_import(text=text, filename="hc.yaml")
    mission.refresh_from_db()
    assert mission.origin.blueprint_version == healthcare and newer.number == 2
    assert mission.tasks.get(key="inventory_sources").title == "Inventory source fields"
    later = blueprint_launch(version=newer, name="HC 2", objective="", owner=lead, spec=healthcare_spec)
    assert later.tasks.get(key="inventory_sources").title == "Inventory and profile source fields"
    assert later.origin.blueprint_version == newer
    with pytest.raises(Exception, match="protected"):
        healthcare.delete()


def test_load_and_export_commands(tmp_path):
    out = StringIO()
    call_command("load_blueprint", "--shipped", stdout=out)
    assert out.getvalue().splitlines() == [
        "loaded as build-marts version 1", "loaded as field-mapping version 1", "loaded as source-onboarding version 1",
    ]
    out = StringIO()
    call_command("load_blueprint", str(FILES / "field-mapping.yaml"), stdout=out)
    assert out.getvalue().strip() == "unchanged: field-mapping version 1"
    exported = StringIO()
    call_command("export_blueprint", "field-mapping", "--version", "1", stdout=exported)
    data = yaml.safe_load(exported.getvalue())
    assert data.pop("version") == 1
    assert data == yaml.safe_load((FILES / "field-mapping.yaml").read_text())
    with pytest.raises(CommandError, match="No version 9 of blueprint 'field-mapping' is loaded"):
        call_command("export_blueprint", "field-mapping", "--version", "9")
    with pytest.raises(CommandError, match="Name at least one blueprint file"):
        call_command("load_blueprint")


def test_a_blueprint_no_longer_shipped_stays_stored_and_loading_the_shipped_ones_leaves_it(connections, lead):
    """A database that loaded a blueprint Genesis no longer ships (the hand-written healthcare pipeline) keeps it,
    and the missions launched from it: ``load_blueprint --shipped`` loads the shipped files and touches nothing
    else."""
    text = (FILES / "field-mapping.yaml").read_text().replace("slug: field-mapping", "slug: healthcare-data-pipeline")
    retired = blueprint_import(text=text, filename="healthcare-data-pipeline.yaml")
    mission = blueprint_launch(version=retired, name="Old HC", objective="", owner=lead,
                               params={"source_tables": ["claims"], "target_spec": "CLAIM_SUMMARY"})
    out = StringIO()
    call_command("load_blueprint", "--shipped", stdout=out)
    assert out.getvalue().splitlines() == [
        "loaded as build-marts version 1", "loaded as field-mapping version 1", "loaded as source-onboarding version 1",
    ]
    again = StringIO()
    call_command("load_blueprint", "--shipped", stdout=again)
    assert again.getvalue().splitlines() == [
        "unchanged: build-marts version 1", "unchanged: field-mapping version 1",
        "unchanged: source-onboarding version 1",
    ]
    assert Blueprint.objects.get(slug="healthcare-data-pipeline").latest_version() == retired
    mission.refresh_from_db()
    assert mission.origin.blueprint_version == retired
    assert mission.tasks.count() == ActionTemplate.objects.filter(phase__version=retired).count() == 4
    assert load_shipped("build-marts").blueprint.slug == "build-marts"
