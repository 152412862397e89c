"""The stakeholder dashboard: per-table data quality and reconciliation read from what the agents recorded, the
freshness of the targets (last successful refresh, next scheduled run), the deliverables as a table, and the chart's
data for Chart.js, in a bounded number of queries."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from history.models import HistoryEntry
from history.services import history_record
from missions import services as mission_services
from missions.choices import Role
from pipeline import reports
from pipeline.dbt.services import refresh_schedule_set
from tasks import services as task_services
from tests.factories import MissionFactory, UserFactory

pytestmark = pytest.mark.django_db

DQ_RESULTS = [
    {"check": "not_null", "target": "CLAIM_SUMMARY", "column": "CLAIM_ID", "passed": True, "failing_rows": 0},
    {"check": "grain", "target": "CLAIM_SUMMARY", "column": "", "passed": False, "failing_rows": 3,
     "detail": "3 duplicated key(s)"},
    {"check": "references", "target": "CLAIM_SUMMARY", "column": "NPI", "passed": False, "failing_rows": 12,
     "detail": "PROVIDERS.NPI"},
    {"check": "not_null", "target": "PROVIDER_SUMMARY", "column": "NPI", "passed": True, "failing_rows": 0},
]
ROW_COUNTS = [
    {"target": "CLAIM_SUMMARY", "month": "2024-01", "rows": 1200, "expected": 1200},
    {"target": "CLAIM_SUMMARY", "month": "2024-02", "rows": 1310, "expected": 1315},
    {"target": "CLAIM_SUMMARY", "month": "2024-03", "rows": 1250, "expected": 1250},
]
VALIDATION = {"connection": "WAREHOUSE", "engine": "sqlite", "targets": [
    {"target": "CLAIM_SUMMARY", "exists": True, "row_count": 3760, "missing_columns": [], "type_mismatches": []},
    {"target": "PROVIDER_SUMMARY", "exists": True, "row_count": 80, "missing_columns": ["SPECIALTY"],
     "type_mismatches": [{"column": "NPI", "expected": "TEXT", "actual": "INTEGER"}]},
]}


def attach(mission, name, content, *, kind="report", actor=None):
    return task_services.artifact_create(mission=mission, kind=kind, name=name, file=json.dumps(content),
                                         actor=actor or mission.owner)


def test_quality_is_summed_per_table_with_failing_counts():
    tables = reports.quality_by_target(DQ_RESULTS)
    assert [(t.target, t.checks, t.passed, t.failing_rows, t.ok) for t in tables] == [
        ("CLAIM_SUMMARY", 3, 1, 15, False), ("PROVIDER_SUMMARY", 1, 1, 0, True)]
    assert tables[0].failures == ["grain on CLAIM_SUMMARY: 3 failing rows (3 duplicated key(s))",
                                  "references on CLAIM_SUMMARY.NPI: 12 failing rows (PROVIDERS.NPI)"]


def test_reconciliation_names_each_month_that_differs_and_each_validation_problem():
    tables = reports.reconciliation_by_target(ROW_COUNTS, VALIDATION)
    claims, providers = tables
    assert (claims.total, claims.expected_total, claims.reconciled, claims.compared) == (3760, 3765, 2, 3)
    assert claims.variances == [{"month": "2024-02", "rows": 1310, "expected": 1315, "difference": -5}]
    assert not claims.ok and claims.validation_problems == []
    assert providers.months == [] and providers.validation_problems == [
        "lacks column SPECIALTY", "NPI is INTEGER, spec says TEXT"]
    chart = claims.chart("c1")
    assert chart["labels"] == ["2024-01", "2024-02", "2024-03"] and chart["x_title"] == "Month"
    assert [d["label"] for d in chart["datasets"]] == ["Rows built", "Rows in the source"]
    assert chart["datasets"][1]["data"] == [1200, 1315, 1250]


def test_malformed_reports_read_as_absent():
    assert reports.quality_by_target({"not": "a list"}) == []
    odd = reports.quality_by_target([1, "x", {"target": "T", "passed": False, "failing_rows": "many"}])
    assert [(t.target, t.checks, t.failing_rows) for t in odd] == [("T", 1, 0)]
    assert reports.reconciliation_by_target([{"target": "T", "month": "2024-01", "rows": "x"}]) == []


def test_dashboard_shows_quality_reconciliation_freshness_and_deliverables(client_for, mission, viewer, lead):
    attach(mission, "dq_results.json", [{**r, "target": "OLD"} for r in DQ_RESULTS])  # an older report
    attach(mission, "dq_results.json", DQ_RESULTS)
    attach(mission, "row_counts.json", ROW_COUNTS, kind="data")
    attach(mission, "validation.json", VALIDATION)
    task_services.artifact_create(mission=mission, kind="report", name="dq_report.md", file="# DQ\n" * 300,
                                  actor=lead)
    history_record(mission=mission, event="refresh.succeeded", message="Scheduled refresh built rows.")
    schedule = refresh_schedule_set(mission=mission, cron="0 6 * * *", actor=lead)

    content = client_for(viewer).get(reverse("missions:dashboard")).content.decode()
    quality = content.split("<h3>Data quality per table</h3>", 1)[1].split("<h3>", 1)[0]
    assert "OLD" not in quality  # the newest report only
    assert "2 failing checks." in quality
    assert '<th scope="row">CLAIM_SUMMARY</th>' in quality and ">Failed<" in quality and "1 of 3" in quality
    assert "references on CLAIM_SUMMARY.NPI: 12 failing rows (PROVIDERS.NPI)" in quality
    assert '<td class="num">15</td>' in quality and ">Passed<" in quality
    recon = content.split("<h3>Reconciliation with the source</h3>", 1)[1].split("<h3>", 1)[0]
    assert "2024-02: 1,310 built, 1,315 in the source (-5)" in recon and "2 of 3" in recon
    assert "lacks column SPECIALTY" in recon and "NPI is INTEGER, spec says TEXT" in recon
    assert "CLAIM_SUMMARY: 3,760 rows, 2024-01 to 2024-03" in recon and 'data-chart="rows-chart-' in recon
    chart = json.loads(recon.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert chart["labels"] == ["2024-01", "2024-02", "2024-03"] and chart["datasets"][0]["data"] == [1200, 1310, 1250]
    freshness = content.split("<h3>Freshness</h3>", 1)[1].split("<h3>", 1)[0]
    refreshed = HistoryEntry.objects.get(mission=mission, event="refresh.succeeded").created_at
    assert refreshed.strftime("%Y-%m-%d %H:%M") in freshness and "a refresh" in freshness
    assert schedule.next_run.strftime("%Y-%m-%d %H:%M") in freshness and "0 6 * * *" in freshness
    deliverables = content.split("<h3>Deliverables</h3>", 1)[1]
    assert "Data-quality report: every check per target" in deliverables and "1.5\xa0KB" in deliverables
    assert deliverables.count(">dq_results.json</a>") == 1  # the newest version of each file once
    assert 'method="post"' not in content.split("<main", 1)[1]


def test_freshness_says_when_the_last_refresh_failed_after_the_last_success(client_for, mission, viewer,
                                                                            monkeypatch):
    yesterday = timezone.now() - timedelta(days=1)
    with monkeypatch.context() as patched:  # history is append-only: the entry is written as of yesterday
        patched.setattr(timezone, "now", lambda: yesterday)
        history_record(mission=mission, event="refresh.succeeded", message="ok")
    history_record(mission=mission, event="refresh.failed", message="dbt build failed")
    content = client_for(viewer).get(reverse("missions:dashboard")).content.decode()
    freshness = content.split("<h3>Freshness</h3>", 1)[1].split("<h3>", 1)[0]
    assert ">Failed<" in freshness and "the data shown is from the last successful one" in freshness
    assert "No refresh is scheduled." in freshness


def test_dashboard_without_reports_says_what_is_missing(client_for, mission, viewer):
    content = client_for(viewer).get(reverse("missions:dashboard")).content.decode()
    assert "No data-quality results yet" in content and "No row counts or validation yet" in content
    assert "the targets have not been built" in content and "No artifacts yet." in content


def test_dashboard_queries_stay_bounded_with_reports_on_every_mission(client_for, lead,
                                                                      django_assert_max_num_queries):
    reader = UserFactory(username="reader")
    for i in range(8):
        m = MissionFactory(owner=lead, name=f"Followed {i}")
        mission_services.membership_set(mission=m, user=reader, role=Role.STAKEHOLDER, actor=lead)
        attach(m, "dq_results.json", DQ_RESULTS)
        attach(m, "row_counts.json", ROW_COUNTS, kind="data")
        history_record(mission=m, event="refresh.succeeded", message="ok")
        refresh_schedule_set(mission=m, cron="0 6 * * *", actor=lead)
    client = client_for(reader)
    with django_assert_max_num_queries(13):
        content = client.get(reverse("missions:dashboard")).content.decode()
    assert content.count('class="card dash"') == 8 and content.count("<canvas data-chart=") == 8


def test_freshness_counts_the_dbt_build_task_as_a_successful_build(client_for, mission, viewer, lead):
    from agents.models import Agent
    from tasks.models import Run

    builder = Agent.objects.create(name="Builder", kind="dbt_build")
    task = task_services.task_create(mission=mission, key="build", title="Build models", owner_agent=builder)
    finished = timezone.now() - timedelta(hours=2)
    Run.objects.create(task=task, attempt=1, status="succeeded", started_at=finished - timedelta(minutes=3),
                       finished_at=finished)
    Run.objects.create(task=task, attempt=2, status="failed", started_at=finished, finished_at=timezone.now())
    freshness = reports.freshness_of([mission.pk])[mission.pk]
    assert freshness.last_success == finished and freshness.last_success_by == "dbt build"
    content = client_for(viewer).get(reverse("missions:dashboard")).content.decode()
    assert "the dbt build)" in content and finished.strftime("%Y-%m-%d %H:%M") in content


def test_a_scheduled_refresh_report_newer_than_the_agents_is_the_one_shown(mission, lead):
    attach(mission, "dq_results.json", DQ_RESULTS)
    attach(mission, "refresh-20260101T060000-dq_results.json",
           [{"check": "grain", "target": "CLAIM_SUMMARY", "passed": True, "failing_rows": 0}])
    found = reports.mission_reports([mission.pk])[mission.pk]
    assert found.quality_report.name == "refresh-20260101T060000-dq_results.json"
    assert [(t.target, t.checks, t.ok) for t in found.quality] == [("CLAIM_SUMMARY", 1, True)]
    assert reports.describe_artifact(found.quality_report) == (
        "Scheduled refresh: Data-quality results per check (failing rows, sample keys), as JSON")
