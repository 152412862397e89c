"""Keys shown to people as words: check types, history events and statuses."""

import pytest
from django.template import Context, Template

from genesis.wording import check_sentence, event_sentence, sentence, status_words, words


def test_known_keys_read_as_sentences():
    assert check_sentence("all_tasks_done") == "All tasks in scope are done"
    assert check_sentence("artifact_exists") == "The expected artifacts are attached"
    assert event_sentence("notification.sent") == "Notification sent"
    assert event_sentence("task.waiting_approval") == "Task waits for approval"
    assert status_words("waiting_approval") == "waiting for approval"


def test_unknown_keys_still_read_as_words():
    assert event_sentence("docs_index.document_added") == "Document added to the index"
    assert event_sentence("warehouse.table_dropped") == "Warehouse: table dropped"
    assert check_sentence("freshness_within") == "Freshness within"
    assert status_words("on_hold") == "on hold"


@pytest.mark.parametrize("text", ["Three mapping specs are attached", "Row count of CLAIM_SUMMARY matches", ""])
def test_written_text_is_left_as_it_is(text):
    assert words(text) == text
    assert sentence(text, "check") == text


def test_the_template_filter_shows_words_never_keys():
    template = Template('{% load wording %}{{ check|sentence:"check" }} | {{ event|sentence:"event" }} | '
                        '{{ status|sentence:"status" }} | {{ other|sentence }}')
    shown = template.render(Context({"check": "all_tasks_done", "event": "notification.sent",
                                     "status": "waiting_input", "other": "row_count"}))
    assert shown == ("All tasks in scope are done | Notification sent | waiting for an answer | "
                     "The table holds the expected number of rows")
    assert "_" not in shown
