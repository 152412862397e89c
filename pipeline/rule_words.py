"""A mapping rule of the spec language (docs/spec-file.md) as the words a person reads: ``{"sum": "charge
amount", "round": 2}`` is "sum of charge amount, rounded to 2 decimals". A rule kind this module does not know
yet still reads as words ("kind: value"), never as a Python dict."""

from __future__ import annotations

from typing import Any

from genesis.wording import words


def _concat(parts: Any) -> str:
    shown = []
    for part in parts if isinstance(parts, list) else [parts]:
        if isinstance(part, dict) and "column" in part:
            shown.append(str(part["column"]))
        elif isinstance(part, dict) and "literal" in part:
            shown.append(f"“{part['literal']}”")
        else:
            shown.append(_value(part))
    return "joined text of " + " + ".join(shown)


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{words(str(k)).lower()} {_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    return str(value)


_KINDS = {
    "sum": lambda v: f"sum of {_value(v)}",
    "count": lambda v: f"count of {_value(v)}",
    "count_distinct": lambda v: f"number of distinct {_value(v)}",
    "fraction": lambda v: (f"share of rows where {v.get('column')} is {v.get('equals')}" if isinstance(v, dict)
                           else f"share of {_value(v)}"),
    "difference": lambda v: (f"{v[0]} minus {v[1]}" if isinstance(v, list) and len(v) == 2
                             else f"difference of {_value(v)}"),
    "concat": _concat,
    "age_years": lambda v: (f"age in years from {v.get('birth')} at the start of the period" if isinstance(v, dict)
                            else f"age in years from {_value(v)}"),
    "bands": lambda v: (f"bands of {v.get('of')}: {', '.join(map(str, v.get('labels', [])))}"
                        if isinstance(v, dict) else f"bands of {_value(v)}"),
    "year_of": lambda v: "year of the period" if v == "period" else f"year of {_value(v)}",
    "month_of": lambda v: "month of the period" if v == "period" else f"month of {_value(v)}",
}


def rule_sentence(rule: Any) -> str:
    """The rule as one phrase, first letter capital; "" for no rule."""
    if not rule:
        return ""
    if not isinstance(rule, dict):
        return str(rule)
    phrases = []
    for kind, value in rule.items():
        if kind in {"default", "round"}:
            continue
        phrase = _KINDS.get(kind)
        phrases.append(phrase(value) if phrase else f"{words(str(kind)).lower()}: {_value(value)}")
    if "default" in rule:
        phrases.append(f"{rule['default']} when missing")
    if "round" in rule:
        phrases.append(f"rounded to {rule['round']} decimal{'s' if rule['round'] != 1 else ''}")
    text = ", ".join(phrases)
    return text[:1].upper() + text[1:]
