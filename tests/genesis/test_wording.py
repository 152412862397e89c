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


@pytest.mark.parametrize(("value", "shown"), [(0.9, "90%"), (0.855, "86%"), (1, "100%"), (0, "0%"), (72, "72%"),
                                              (None, ""), ("n/a", "n/a")])
def test_confidence_reads_as_one_percent_format(value, shown):
    assert Template("{% load wording %}{{ value|percent }}").render(Context({"value": value})) == shown


def test_a_mapping_rule_reads_as_a_sentence():
    from pipeline.rule_words import rule_sentence

    assert rule_sentence({"sum": "charge amount", "round": 2}) == "Sum of charge amount, rounded to 2 decimals"
    assert rule_sentence({"fraction": {"column": "claim status", "equals": "DENIED"}, "default": 0}) == \
        "Share of rows where claim status is DENIED, 0 when missing"
    assert rule_sentence({"difference": ["TOTAL_CHARGE", "TOTAL_PAID"]}) == "TOTAL_CHARGE minus TOTAL_PAID"
    assert rule_sentence({"concat": [{"column": "first name"}, {"literal": " "}, {"column": "last name"}]}) == \
        "Joined text of first name + “ ” + last name"
    assert rule_sentence({"month_of": "period"}) == "Month of the period"
    assert rule_sentence({"median": {"of": "paid amount"}}) == "Median: of paid amount"
    assert rule_sentence({}) == "" and rule_sentence(None) == ""
