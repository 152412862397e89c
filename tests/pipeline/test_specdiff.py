"""Resolving a spec column's expression (aliases to tables) is remembered per process: the approval cards resolve
the same expressions on every render, and each parse costs sqlglot about a millisecond."""

import sqlglot

from pipeline import specdiff
from pipeline.specdiff import resolved_expression


def test_an_expression_is_parsed_once_and_resolved_by_its_own_aliases(monkeypatch):
    specdiff._resolved.cache_clear()
    parsed = []
    real = sqlglot.parse_one
    monkeypatch.setattr(specdiff.sqlglot, "parse_one", lambda *a, **k: parsed.append(a[0]) or real(*a, **k))
    first = {"f": "CLAIMS", "d1": "PROVIDERS"}
    assert resolved_expression('CAST(d1."NPI" AS INTEGER)', first, "sqlite") == "CAST(PROVIDERS.NPI AS INTEGER)"
    assert resolved_expression('CAST(d1."NPI" AS INTEGER)', dict(reversed(first.items())), "sqlite") == \
        "CAST(PROVIDERS.NPI AS INTEGER)"
    npi = 'CAST(d1."NPI" AS INTEGER)'
    assert parsed.count(npi) == 1  # the same expression, aliases and dialect: not parsed again
    # The aliases are part of what is remembered: after a new join, d1 is another table.
    assert resolved_expression('CAST(d1."NPI" AS INTEGER)', {"f": "CLAIMS", "d1": "PROVIDER_IDS"}, "sqlite") == \
        "CAST(PROVIDER_IDS.NPI AS INTEGER)"
    assert resolved_expression('CAST(d1."NPI" AS INTEGER)', first, None) == "CAST(PROVIDERS.NPI AS INT)"
    assert parsed.count(npi) == 3
    assert resolved_expression("SUM(((", first, "sqlite") == "SUM((("  # unreadable: returned as it is
    assert resolved_expression("", first, "sqlite") == ""
