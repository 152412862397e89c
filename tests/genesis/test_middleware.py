"""A NUL character in any query parameter, on any page or in the API, is a 400 naming the parameter (PostgreSQL
refuses such a value with an error: the history page's ``?task=%00`` was a 500 there)."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_history_page_refuses_a_nul_in_the_task_filter_naming_it(client, lead, mission):
    client.force_login(lead)
    response = client.get(f"/missions/{mission.pk}/history/?task_key=%00")
    assert response.status_code == 400
    page = response.content.decode()
    assert "The query parameter task_key holds a NUL character, which is not allowed." in page
    assert "Error 400" in page and 'aria-label="Main"' in page  # the site's 400 page, with its navigation
    fragment = client.get(f"/missions/{mission.pk}/history/?task_key=%00", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 400 and fragment.content.decode() == (
        "The query parameter task_key holds a NUL character, which is not allowed.")
    assert client.get(f"/missions/{mission.pk}/history/?task_key=profile").status_code == 200


@pytest.mark.parametrize("query", ["owner=le%00ad", "q=a%00b", "status=active&status=%00"])
def test_the_missions_page_refuses_a_nul_in_any_filter(client, lead, query):
    client.force_login(lead)
    response = client.get(f"/missions/?{query}")
    assert response.status_code == 400
    assert query.split("=")[-2].rsplit("&", 1)[-1] in response.content.decode()


def test_the_api_refuses_a_nul_in_its_error_format_naming_each_parameter(client, lead, mission):
    client.force_login(lead)
    response = client.get(f"/api/v1/history/?mission={mission.pk}&task=%00&event=task.%00")
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid", "detail": "Invalid input in: task, event.",
        "errors": {"task": ["NUL characters are not allowed in a query parameter."],
                   "event": ["NUL characters are not allowed in a query parameter."]}}


def test_a_nul_in_a_parameter_name_is_named_too(client, lead):
    client.force_login(lead)
    response = client.get("/api/v1/tasks/?sta%00tus=ready")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["sta\\x00tus"]
