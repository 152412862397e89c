"""``{% load wording %}``: keys shown to people as words (genesis/wording.py)."""

from django import template

from genesis import wording

register = template.Library()


@register.filter
def sentence(key, kind: str = ""):
    """``{{ check.check_type|sentence:"check" }}``, ``{{ entry.event|sentence:"event" }}``,
    ``{{ entry.to_status|sentence:"status" }}``."""
    return wording.sentence(key, kind)


@register.filter
def percent(value):
    """``{{ column.confidence|percent }}``: 0.9 reads "90%" (the one confidence format of the pages)."""
    return wording.percent(value)
