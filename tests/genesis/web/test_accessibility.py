"""Basic accessibility of every page: one h1 and headings that never skip a level, a label for every input,
and status written as text (never colour alone)."""

import re

import pytest
from django.urls import reverse

from tasks import services as task_services

pytestmark = pytest.mark.django_db


def headings(content: str) -> list[int]:
    return [int(h) for h in re.findall(r"<h([1-6])[\s>]", content)]


def unlabelled_inputs(content: str) -> list[str]:
    """Inputs, selects and textareas that have neither a <label for> nor an enclosing <label>."""
    labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', content))
    problems = []
    for match in re.finditer(r"<(input|select|textarea)\b([^>]*)>", content):
        attrs = match.group(2)
        if re.search(r'type="(hidden|submit)"', attrs):
            continue
        ident = re.search(r'id="([^"]+)"', attrs)
        before = content[: match.start()]
        inside_label = before.rfind("<label") > before.rfind("</label>")
        if not inside_label and not (ident and ident.group(1) in labelled):
            problems.append(match.group(0))
    return problems


@pytest.fixture
def pages(mission, lead, agent):
    phase = task_services.phase_create(mission=mission, order=1, name="Mapping", exit_criteria=["Specs approved"])
    task = task_services.task_create(mission=mission, key="inventory", title="Inventory", owner_agent=agent,
                                     phase=phase)
    artifact = task_services.artifact_create(mission=mission, kind="sql", name="a.sql", file="select 1", actor=lead)
    return [
        reverse("login"),
        reverse("missions:list"),
        reverse("missions:cockpit", args=[mission.pk]),
        reverse("missions:history", args=[mission.pk]),
        reverse("missions:my_work"),
        reverse("missions:dashboard"),
        reverse("tasks:detail", args=[task.pk]),
        reverse("tasks:artifact", args=[artifact.pk]),
    ]


def test_every_page_has_ordered_headings_and_labelled_inputs(client, client_for, pages, lead):
    for url in pages:
        response = (client if url == reverse("login") else client_for(lead)).get(url)
        assert response.status_code == 200, url
        content = response.content.decode()
        levels = headings(content)
        assert levels and levels[0] == 1 and levels.count(1) == 1, url
        assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), (url, levels)
        assert unlabelled_inputs(content) == [], url
        assert '<html lang="en">' in content


def test_status_badges_carry_text(client_for, pages, lead, mission):
    content = client_for(lead).get(reverse("missions:cockpit", args=[mission.pk])).content.decode()
    for badge in re.findall(r'<span[^>]*class="status status-[a-z_]+"[^>]*>([^<]*)</span>', content):
        assert badge.strip(), "a status badge without text"
