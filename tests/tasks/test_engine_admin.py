"""The engine's models in the admin: questions and notifications are listed read-only with bounded queries."""

import pytest
from django.urls import reverse

from tasks import services
from tasks.models import Notification, Question
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db


def test_question_and_notification_changelists_render_with_bounded_queries(
    client, admin_user, mission, lead, agent, django_assert_max_num_queries
):
    for i in range(30):
        task = TaskFactory(mission=mission, owner_agent=agent, key=f"q{i}")
        services.question_create(task=task, run=None, addressed_to=lead, text=f"Which key {i}?", options=["A", "B"])
        Notification.objects.create(mission=mission, task=task, event="question.asked", channel="email",
                                    target="lead@example.com", subject=f"Question {i}", body="...")
    client.force_login(admin_user)
    for name, text in (("question", "Which key 29?"), ("notification", "Question 29")):
        with django_assert_max_num_queries(12):
            response = client.get(reverse(f"admin:tasks_{name}_changelist"))
        assert response.status_code == 200
        assert text in response.content.decode()
    question = Question.objects.first()
    page = client.get(reverse("admin:tasks_question_change", args=[question.pk]))
    assert question.text in page.content.decode()
