"""``{% load wording %}``: keys shown to people as words (genesis/wording.py)."""

from django import template

from genesis import wording

register = template.Library()


@register.filter
def sentence(key, kind: str = ""):
    """``{{ check.check_type|sentence:"check" }}``, ``{{ entry.event|sentence:"event" }}``,
    ``{{ entry.to_status|sentence:"status" }}``."""
    return wording.sentence(key, kind)
