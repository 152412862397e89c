import pytest

from genesis.exceptions import DomainError, InvalidTransition
from history.models import HistoryEntry
from pipeline.models import MappingSpecVersion
from pipeline.selectors import mapping_spec_approved, mapping_specs_approved, mapping_specs_waiting
from pipeline.services import mapping_spec_approve, mapping_spec_diff, mapping_spec_propose, mapping_spec_reject
from workflows import tasks as task_workflows


def _content(source="CLAIMS.SERVICE_DATE"):
    table, column = source.split(".")
    return {"target": "CLAIM_SUMMARY", "sql": f"SELECT {column} FROM {table}",
            "columns": [{"name": "CLAIM_DATE", "sources": [{"table": table, "column": column}],
                         "expression": f"f.{column}", "transformation": "copied as is", "target_type": "DATE"},
                        {"name": "CLAIM_ID", "sources": [{"table": "CLAIMS", "column": "CLAIM_ID"}],
                         "expression": "f.CLAIM_ID", "transformation": "copied as is", "target_type": "INTEGER"}]}


def _propose(mission, source="CLAIMS.SERVICE_DATE"):
    content = _content(source)
    return mapping_spec_propose(mission=mission, target_table="CLAIM_SUMMARY", content=content, sql=content["sql"],
                                dialect="sqlite", lineage={"CLAIM_DATE": [source]})


def test_versions_diff_and_supersede(mission, lead):
    v1 = _propose(mission)
    assert v1.number == 1 and v1.diff["first_version"]
    v2 = _propose(mission, "CLAIMS.SVC_DT")
    v1.refresh_from_db()
    assert v1.status == "superseded" and v2.status == "proposed"
    assert v2.diff["changed"] == {"CLAIM_DATE": {
        "sources": {"from": [{"table": "CLAIMS", "column": "SERVICE_DATE"}],
                    "to": [{"table": "CLAIMS", "column": "SVC_DT"}]},
        "expression": {"from": "f.SERVICE_DATE", "to": "f.SVC_DT"}}}
    assert v2.diff["sql_changed"] and list(mapping_specs_waiting(mission=mission)) == [v2]


def test_approve_and_reject_write_history(mission, lead):
    v1 = _propose(mission)
    with pytest.raises(DomainError, match="needs feedback"):
        mapping_spec_reject(version=v1, actor=lead, feedback="  ")
    mapping_spec_reject(version=v1, actor=lead, feedback="CLAIM_DATE is wrong")
    v1.refresh_from_db()
    assert (v1.status, v1.feedback, v1.decided_by) == ("rejected", "CLAIM_DATE is wrong", lead)
    with pytest.raises(InvalidTransition, match="rejected to approved"):
        mapping_spec_approve(version=v1, actor=lead)
    v2 = _propose(mission, "CLAIMS.SVC_DT")
    mapping_spec_approve(version=v2, actor=lead)
    assert mapping_spec_approved(mission=mission, target_table="CLAIM_SUMMARY") == v2
    v3 = _propose(mission)
    mapping_spec_approve(version=v3, actor=lead)
    assert MappingSpecVersion.objects.get(pk=v2.pk).status == "superseded"
    assert mapping_specs_approved(mission=mission) == {"CLAIM_SUMMARY": v3}
    events = list(HistoryEntry.objects.filter(event__startswith="mapping_spec").values_list("event", "actor_kind"))
    assert events == [("mapping_spec.proposed", "system"), ("mapping_spec.rejected", "user"),
                      ("mapping_spec.proposed", "system"), ("mapping_spec.approved", "user"),
                      ("mapping_spec.proposed", "system"), ("mapping_spec.superseded", "user"),
                      ("mapping_spec.approved", "user")]


def test_an_empty_spec_is_refused_and_nothing_is_written(mission):
    with pytest.raises(DomainError, match="at least one column"):
        mapping_spec_propose(mission=mission, target_table="X", content={"columns": []}, sql="", dialect="sqlite")
    assert not MappingSpecVersion.objects.exists()


def test_diff_of_added_and_removed_columns():
    old = {"columns": [{"name": "A"}, {"name": "B"}], "sql": "x"}
    new = {"columns": [{"name": "B"}, {"name": "C"}], "sql": "x"}
    assert mapping_spec_diff(old, new) == {"first_version": False, "added": ["C"], "removed": ["A"], "changed": {},
                                           "sql_changed": False}


def test_sync_approves_the_versions_whose_task_was_approved(mission, lead):
    from pipeline.services import mapping_specs_sync_approvals
    from tasks import services as task_services
    from tests.factories import TaskFactory

    task = TaskFactory(mission=mission, key="map")
    v1 = _propose(mission)
    assert mapping_specs_sync_approvals(mission=mission) == []
    v1.task = task
    v1.save(update_fields=["task"])
    for step in ("ready", "running", "waiting_approval", "done"):
        task_services.task_transition(task=task, to=step)
    assert [v.pk for v in mapping_specs_sync_approvals(mission=mission, actor=lead)] == [v1.pk]
    assert mapping_spec_approved(mission=mission, target_table="CLAIM_SUMMARY").pk == v1.pk
    assert mapping_specs_sync_approvals(mission=mission, actor=lead) == []


def test_approving_the_mapping_task_approves_its_spec_version_at_once(mission, lead):
    """Task approval and spec approval happen in one transaction: the approved version is the one the task
    proposed, by the person who approved the task."""
    from history.models import HistoryEntry
    from tasks import services as task_services
    from tests.factories import AgentFactory, TaskFactory

    agent = AgentFactory(name="mapper", kind="field_mapping")
    task = TaskFactory(mission=mission, key="map_claim_summary", owner_agent=agent)
    version = _propose(mission)
    version.task = task
    version.save(update_fields=["task"])
    for step in ("ready", "queued", "running", "waiting_approval"):
        task_services.task_transition(task=task, to=step)
    task_workflows.task_approve(task=task, actor=lead, note="Looks right.")
    version.refresh_from_db()
    assert version.status == "approved"
    assert mapping_spec_approved(mission=mission, target_table="CLAIM_SUMMARY").pk == version.pk
    entry = HistoryEntry.objects.get(mission=mission, event="mapping_spec.approved")
    assert entry.actor_user == lead and "approved with its task map_claim_summary" in entry.message


def test_admin_shows_versions_and_approves_through_the_service(client, admin_user, mission):
    from django.urls import reverse

    version = _propose(mission)
    client.force_login(admin_user)
    page = client.get(reverse("admin:pipeline_mappingspecversion_change", args=[version.pk]))
    assert page.status_code == 200 and b"CLAIM_SUMMARY" in page.content
    assert client.get(reverse("admin:pipeline_mappingspec_change", args=[version.spec_id])).status_code == 200
    response = client.post(reverse("admin:pipeline_mappingspecversion_changelist"),
                           {"action": "approve", "_selected_action": [version.pk]})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == "approved" and version.decided_by == admin_user
    assert HistoryEntry.objects.filter(event="mapping_spec.approved", actor_user=admin_user).exists()
