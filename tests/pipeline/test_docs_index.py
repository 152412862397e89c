import pytest

from agents.base import NeedsInput
from genesis.exceptions import DomainError
from pipeline.models import DocsIndex, IndexedDocument, MappingSpecVersion, Passage
from pipeline.selectors import docs_search
from pipeline.services import docs_index_add_document
from tests.pipeline.conftest import SPEC_PATH

LEGACY_EXPORT = (
    "target_column,source,rule\n"
    "CLAIM_DATE,CLAIMS.EVENT_TS,date of service as received\n"
    "CLAIM_STATUS,CLAIMS.STATUS,adjudication status\n"
)
NOTES = (
    "# Legacy ETL notes\n\nThe old warehouse loaded claim headers nightly.\n\n"
    "Provider names came from the credentialing system, not from claims."
)


def test_documents_are_split_and_found_by_full_text_search(db):
    csv_doc = docs_index_add_document(index_name="legacy", title="Legacy mapping export", content=LEGACY_EXPORT,
                                      filename="mapping.csv")
    docs_index_add_document(index_name="legacy", title="ETL notes", content=NOTES, filename="notes.md")
    docs_index_add_document(index_name="other", title="Unrelated", content="CLAIM_DATE is irrelevant here.")
    assert list(Passage.objects.filter(document=csv_doc).values_list("text", flat=True)) == [
        "target_column: CLAIM_DATE; source: CLAIMS.EVENT_TS; rule: date of service as received",
        "target_column: CLAIM_STATUS; source: CLAIMS.STATUS; rule: adjudication status",
    ]
    hits = docs_search(index_name="legacy", query="CLAIM_DATE")
    assert [(h["title"], h["position"]) for h in hits] == [("Legacy mapping export", 1)]
    assert docs_search(index_name="legacy", query="credentialing providers", phrase=False)[0]["title"] == "ETL notes"
    assert docs_search(index_name="legacy", query="nothing matches this") == []
    assert DocsIndex.objects.count() == 2


def test_documents_that_are_not_text_are_refused(db):
    with pytest.raises(DomainError, match="only UTF-8 text"):
        docs_index_add_document(index_name="legacy", title="binary", content=b"\xff\xfe\x00")
    with pytest.raises(DomainError, match="no text"):
        docs_index_add_document(index_name="legacy", title="empty", content="  \n\n ")
    assert not IndexedDocument.objects.exists()


def test_the_mapping_agent_uses_and_cites_the_docs_index(mission, run_agent, source_for, bronze_opaque):
    docs_index_add_document(index_name="hcls-legacy", title="Legacy mapping export", content=LEGACY_EXPORT,
                            filename="mapping.csv", mission=mission)
    source = source_for(bronze_opaque.path)
    config = {"target": "CLAIM_SUMMARY", "spec_path": SPEC_PATH, "source_connection": source.name,
              "docs_index": "hcls-legacy"}
    result = run_agent("field_mapping", mission=mission, config=config)
    # CLAIM_DATE is no longer a question (the export names its source); the diagnosis column still is.
    assert isinstance(result.outcome, NeedsInput)
    assert result.outcome.context["column"] == "CLAIM_SUMMARY.PRIMARY_DIAGNOSIS"
    answers = [{"question": result.outcome.question, "answer": "CLAIMS.COL7", "context": result.outcome.context}]
    final = run_agent("field_mapping", mission=mission, config=config, answers=answers)
    version = MappingSpecVersion.objects.get(number=final.outcome.outputs["version"])
    columns = {c["name"]: c for c in version.content["columns"]}
    assert columns["CLAIM_DATE"]["sources"] == [{"table": "CLAIMS", "column": "EVENT_TS"}]
    assert columns["CLAIM_DATE"]["citations"][0]["title"] == "Legacy mapping export"
    assert columns["CLAIM_DATE"]["citations"][0]["position"] == 1
    assert "cited in “Legacy mapping export” §1" in columns["CLAIM_DATE"]["reasoning"]
    assert version.content["docs_index"] == "hcls-legacy"


def test_index_docs_command_and_admin(db, tmp_path, client, admin_user):
    from io import StringIO

    from django.core.management import call_command
    from django.urls import reverse

    export = tmp_path / "legacy.csv"
    export.write_text(LEGACY_EXPORT)
    out = StringIO()
    call_command("index_docs", str(export), index="legacy", stdout=out)
    assert "legacy.csv: 2 passages indexed in legacy" in out.getvalue()
    client.force_login(admin_user)
    index = DocsIndex.objects.get(name="legacy")
    page = client.get(reverse("admin:pipeline_docsindex_change", args=[index.pk]))
    assert page.status_code == 200 and b"legacy.csv" in page.content
