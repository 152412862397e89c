"""Artifact previews (SQL highlighted, tables as tables, Markdown rendered and escaped) and downloads."""

import pytest
from django.urls import reverse

from tasks import services as task_services

pytestmark = pytest.mark.django_db


def _artifact(mission, lead, name, content, kind="report"):
    return task_services.artifact_create(mission=mission, kind=kind, name=name, file=content, actor=lead)


def test_sql_is_highlighted(client_for, mission, lead):
    artifact = _artifact(mission, lead, "claim_summary.sql", "SELECT claim_id, SUM(paid) FROM claims GROUP BY 1;",
                         kind="sql")
    content = client_for(lead).get(reverse("tasks:artifact", args=[artifact.pk])).content.decode()
    assert '<div class="highlight">' in content
    assert '<span class="k">SELECT</span>' in content


def test_csv_is_shown_as_a_table(client_for, mission, lead):
    artifact = _artifact(mission, lead, "rows.csv", "target,month,rows\nCLAIM_SUMMARY,2024-01,120\n", kind="data")
    content = client_for(lead).get(reverse("tasks:artifact", args=[artifact.pk])).content.decode()
    assert '<th scope="col">target</th>' in content and "<td>CLAIM_SUMMARY</td>" in content
    assert "<td>120</td>" in content


def test_json_records_are_a_table_and_other_json_is_pretty(client_for, mission, lead):
    records = _artifact(mission, lead, "profile.json", '[{"column": "CLAIM_ID", "nulls": 0}]', kind="data")
    content = client_for(lead).get(reverse("tasks:artifact", args=[records.pk])).content.decode()
    assert '<th scope="col">column</th>' in content and "<td>CLAIM_ID</td>" in content
    nested = _artifact(mission, lead, "spec.json", '{"target": {"columns": 3}}', kind="spec")
    content = client_for(lead).get(reverse("tasks:artifact", args=[nested.pk])).content.decode()
    assert '<div class="highlight">' in content and "columns" in content


def test_markdown_is_rendered_and_raw_html_escaped(client_for, mission, lead):
    artifact = _artifact(mission, lead, "handoff.md", "# Handoff\n\n* **done**\n\n<script>alert(1)</script>",
                         kind="doc")
    content = client_for(lead).get(reverse("tasks:artifact", args=[artifact.pk])).content.decode()
    assert "<h1>Handoff</h1>" in content and "<strong>done</strong>" in content
    assert "<script>alert(1)</script>" not in content and "&lt;script&gt;" in content


def test_download_sends_the_file_as_an_attachment(client_for, mission, lead, viewer):
    artifact = _artifact(mission, lead, "notes.txt", "hello world", kind="doc")
    response = client_for(viewer).get(reverse("tasks:artifact_download", args=[artifact.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"hello world"
    assert 'attachment; filename="notes.txt"' in response["Content-Disposition"]


def test_artifacts_of_another_mission_are_404(client_for, mission, lead, outsider):
    artifact = _artifact(mission, lead, "secret.sql", "select 1", kind="sql")
    client = client_for(outsider)
    assert client.get(reverse("tasks:artifact", args=[artifact.pk])).status_code == 404
    assert client.get(reverse("tasks:artifact_download", args=[artifact.pk])).status_code == 404


def test_cockpit_lists_artifacts_with_preview_and_download_links(client_for, mission, lead):
    artifact = _artifact(mission, lead, "model.sql", "select 1", kind="sql")
    content = client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    assert reverse("tasks:artifact", args=[artifact.pk]) in content
    assert reverse("tasks:artifact_download", args=[artifact.pk]) in content


def test_json_nested_too_deep_is_shown_as_text_with_the_reason(client_for, mission, lead):
    # Decoding it used to raise RecursionError: the artifact page was a 500.
    artifact = _artifact(mission, lead, "deep.json", "[" * 5_000 + "]" * 5_000, kind="data")
    response = client_for(lead).get(reverse("tasks:artifact", args=[artifact.pk]))
    assert response.status_code == 200
    assert "Not shown as JSON: lists and objects nested more than 64 levels deep (GENESIS_JSON_MAX_DEPTH)." in \
        response.content.decode()
