"""Every admin page renders for a superuser; changelists stay within a fixed query budget; admin edits go
through the services (history written, cycles refused with their path)."""

import pytest
from django import forms
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from agents.models import Connection
from genesis.documents import LimitedJSONDecoder
from history.models import HistoryEntry
from history.services import history_record
from missions.models import Mission
from tasks.models import Artifact, Dependency, Run, Task
from tasks.services import artifact_create, dependency_add, phase_create, run_create
from tests.documents import GIB, MULTIPART, claiming
from tests.factories import AgentFactory, MissionFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db

MODELS = [model for model in admin.site._registry]


@pytest.fixture
def client_admin(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def populated(mission, lead, agent):
    phase = phase_create(mission=mission, order=1, name="Discovery")
    a = TaskFactory(mission=mission, key="profile", owner_agent=agent, phase=phase)
    b = TaskFactory(mission=mission, key="map", owner_user=lead, owner_agent=None, phase=phase)
    dependency_add(task=b, depends_on=a)
    run_create(task=a)
    artifact_create(mission=mission, task=a, kind="sql", name="x.sql", file=b"select 1")
    Connection.objects.create(name="SRC", engine="postgresql", location="postgres://u@h/db", secret="hunter2")
    return mission


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_changelist_add_and_change_pages_render(client_admin, populated, model):
    response = client_admin.get(_url(model, "changelist"))
    assert response.status_code == 200
    model_admin = admin.site._registry[model]
    obj = model._default_manager.first()
    if obj is not None:
        response = client_admin.get(_url(model, "change", obj.pk))
        assert response.status_code == 200
        assert str(obj)[:20].encode() in response.content or model_admin.has_view_permission
    response = client_admin.get(_url(model, "add"))
    expected = 200 if model_admin.has_add_permission(response.wsgi_request) else 403
    assert response.status_code == expected


def test_the_secret_of_a_connection_is_never_shown(client_admin, populated):
    conn = Connection.objects.get(name="SRC")
    page = client_admin.get(_url(Connection, "change", conn.pk)).content.decode()
    listing = client_admin.get(_url(Connection, "changelist")).content.decode()
    assert "hunter2" not in page and "hunter2" not in listing


def test_a_password_typed_into_a_dsn_is_moved_to_the_secret(client_admin):
    response = client_admin.post(_url(Connection, "add"), {
        "name": "WH", "engine": "postgresql", "location": "postgres://etl:s3cret@db.internal:5432/wh",
        "secret": "", "purpose": "target", "description": "",
    })
    assert response.status_code == 302, response.content
    conn = Connection.objects.get(name="WH")
    assert conn.location == "postgres://etl@db.internal:5432/wh"
    assert conn.secret == "s3cret"
    page = client_admin.get(_url(Connection, "change", conn.pk)).content.decode()
    assert "s3cret" not in page


def test_a_duckdb_connection_is_added_in_the_admin_and_a_remote_one_refused(client_admin, tmp_path):
    response = client_admin.post(_url(Connection, "add"), {
        "name": "DUCK_WH", "engine": "duckdb", "location": str(tmp_path / "wh.duckdb"), "secret": "",
        "purpose": "target", "description": "",
    })
    assert response.status_code == 302, response.content
    assert Connection.objects.get(name="DUCK_WH").engine == "duckdb"
    response = client_admin.post(_url(Connection, "add"), {
        "name": "DUCK_CLOUD", "engine": "duckdb", "location": "md:analytics", "secret": "", "purpose": "source",
        "description": "",
    })
    assert response.status_code == 200
    assert "A DuckDB connection needs a local file path" in response.content.decode()
    assert not Connection.objects.filter(name="DUCK_CLOUD").exists()


def _make_rows(n, agent):
    owner = UserFactory(username="bulk-owner")
    missions = [MissionFactory(owner=owner, name=f"Bulk {i}") for i in range(n)]
    Task.objects.bulk_create([
        Task(mission=m, key=f"k{i}", title=f"T{i}", owner_agent=agent) for i, m in enumerate(missions)
    ])
    tasks = list(Task.objects.all())
    Run.objects.bulk_create([Run(task=t, attempt=1, status="succeeded") for t in tasks])
    for t in tasks:
        history_record(mission=t.mission, task=t, event="note", actor=agent)
    for t in tasks[:n]:
        artifact_create(mission=t.mission, task=t, kind="link", name="l", url="https://example.com/x")
    return missions


@pytest.mark.parametrize("model", [Mission, Task, Run, Artifact, HistoryEntry, Dependency],
                         ids=lambda m: m._meta.label)
def test_changelists_run_a_bounded_number_of_queries(client_admin, agent, model, django_assert_max_num_queries):
    _make_rows(200, agent)
    with django_assert_max_num_queries(20):
        response = client_admin.get(_url(model, "changelist"), {"all": ""})
    assert response.status_code == 200


def test_admin_mission_creation_writes_history_and_owner_role(client_admin, admin_user):
    owner = UserFactory(username="owner")
    response = client_admin.post(_url(Mission, "add"), {
        "name": "Claims", "objective": "Claims are summarised daily.", "scope": "", "success_criteria": "[]",
        "owner": owner.pk, "mode": "step", "docs_index": "", "escalation_emails": "[]",
        "escalation_webhook": "",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
        "phases-TOTAL_FORMS": "0", "phases-INITIAL_FORMS": "0",
        "tasks-TOTAL_FORMS": "1", "tasks-INITIAL_FORMS": "0",
        "tasks-0-key": "profile", "tasks-0-title": "Profile sources", "tasks-0-owner_user": owner.pk,
        "tasks-0-position": "1",
        "artifacts-TOTAL_FORMS": "0", "artifacts-INITIAL_FORMS": "0",
    })
    assert response.status_code == 302, response.context["errors"] if response.context else response
    mission = Mission.objects.get(name="Claims")
    assert mission.status == "draft"
    assert mission.memberships.get(user=owner).role == "mission_owner"
    events = list(HistoryEntry.objects.filter(mission=mission).values_list("event", "actor_user__username"))
    assert events == [("mission.created", "root"), ("task.created", "root")]


def test_admin_refuses_a_cycle_and_names_the_path(client_admin, populated):
    profile, mapping = Task.objects.get(key="profile"), Task.objects.get(key="map")
    page = client_admin.get(_url(Task, "change", profile.pk))
    assert page.status_code == 200
    data = {
        "mission": profile.mission_id, "phase": profile.phase_id, "key": "profile", "title": profile.title,
        "description": "", "acceptance_criteria": "[]", "owner_user": "", "owner_agent": profile.owner_agent_id,
        "config": "{}", "max_attempts": 3, "timeout_seconds": 3600, "position": 1,
        "dependency_links-TOTAL_FORMS": "1", "dependency_links-INITIAL_FORMS": "0",
        "dependency_links-0-depends_on": mapping.pk,
        "runs-TOTAL_FORMS": "1", "runs-INITIAL_FORMS": "1", "runs-0-id": profile.runs.get().pk,
        "runs-0-task": profile.pk,
        "artifacts-TOTAL_FORMS": "1", "artifacts-INITIAL_FORMS": "1",
        "artifacts-0-id": profile.artifacts.get().pk, "artifacts-0-task": profile.pk,
    }
    response = client_admin.post(_url(Task, "change", profile.pk), data)
    assert response.status_code == 200
    assert "profile → map → profile" in response.content.decode()
    assert not Dependency.objects.filter(task=profile).exists()


def test_admin_actions_call_the_services(client_admin, mission):
    url = _url(Mission, "changelist")
    client_admin.post(url, {"action": "action_launched", "_selected_action": [mission.pk]})
    mission.refresh_from_db()
    assert mission.status == "active"
    client_admin.post(url, {"action": "action_paused", "_selected_action": [mission.pk]})
    mission.refresh_from_db()
    assert mission.status == "paused"
    response = client_admin.post(url, {"action": "action_paused", "_selected_action": [mission.pk]}, follow=True)
    assert "cannot go from paused to paused" in response.content.decode()
    assert list(HistoryEntry.objects.filter(mission=mission, event__in=["mission.active", "mission.paused"])
                .values_list("actor_user__username", flat=True)) == ["root", "root"]


def test_artifact_upload_in_the_admin_uses_a_generated_name(client_admin, mission):
    upload = SimpleUploadedFile("../../evil name.sql", b"select 42", content_type="text/plain")
    response = client_admin.post(_url(Artifact, "add"), {
        "mission": mission.pk, "kind": "sql", "name": "", "file": upload, "url": "",
    })
    assert response.status_code == 302
    artifact = Artifact.objects.get()
    assert artifact.name == "evil name.sql"
    assert artifact.file.name.startswith("artifacts/") and "evil" not in artifact.file.name


def test_artifact_upload_over_the_limit_is_refused_in_the_admin(client_admin, mission, settings):
    upload = SimpleUploadedFile("big.bin", b"x" * (settings.GENESIS_MAX_UPLOAD_BYTES + 1))
    response = client_admin.post(_url(Artifact, "add"), {
        "mission": mission.pk, "kind": "data", "name": "", "file": upload, "url": "",
    })
    assert response.status_code == 200
    assert "the limit is" in response.content.decode()
    assert not Artifact.objects.exists()


def test_history_is_read_only_in_the_admin(client_admin, mission):
    entry = HistoryEntry.objects.filter(mission=mission).first()
    page = client_admin.get(_url(HistoryEntry, "change", entry.pk)).content.decode()
    assert 'name="_save"' not in page
    response = client_admin.post(_url(HistoryEntry, "change", entry.pk), {"message": "x"})
    assert response.status_code == 403
    assert client_admin.post(_url(HistoryEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403


def test_agents_are_registered_for_autocomplete():
    assert admin.site._registry[AgentFactory._meta.model].search_fields


def test_the_build_now_action_requests_a_build_per_environment_and_names_each_refusal(
        client_admin, mission, monkeypatch, enqueued, django_capture_on_commit_callbacks):
    from genesis.exceptions import DomainError
    from pipeline.dbt import services as dbt_services
    from pipeline.models import Environment
    from tests.factories import ConnectionFactory

    dev, stage, prod = (dbt_services.environment_set(mission=mission, name=name, target=ConnectionFactory(), actor=None)
                        for name in ("dev", "stage", "prod"))
    url = _url(Environment, "changelist")
    assert "Build the dbt project in this environment now" in client_admin.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_admin.post(url, {"action": "action_build_now", "_selected_action": [dev.pk, stage.pk]},
                                     follow=True)
    assert "Requested a build in 2 environment(s)." in response.content.decode()
    assert sorted(args for _, args, _ in enqueued) == sorted([(dev.pk, response.wsgi_request.user.pk),
                                                              (stage.pk, response.wsgi_request.user.pk)])
    assert sorted(HistoryEntry.objects.filter(mission=mission, event="environment.build_requested")
                  .values_list("data__environment", "actor_user__username")) == [("dev", "root"), ("stage", "root")]

    def refuse_prod(*, mission, actor, roles, action):
        if action == "build in prod":
            raise DomainError("Production is frozen until the audit is over.", code="permission_denied")

    monkeypatch.setattr(dbt_services, "_require_role", refuse_prod)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_admin.post(url, {"action": "action_build_now", "_selected_action": [dev.pk, prod.pk]},
                                     follow=True)
    content = response.content.decode()
    assert "Requested a build in 1 environment(s)." in content
    assert "Production is frozen until the audit is over." in content
    assert [args[0] for _, args, _ in enqueued] == [dev.pk]


# --- what an admin form reads: JSON with the nesting limit, uploads within the size limit ---------------------------

def test_json_nested_too_deep_in_an_admin_field_is_a_form_error_not_a_500(client_admin, populated):
    task = Task.objects.get(key="profile")
    page = client_admin.get(_url(Task, "change", task.pk))
    data = {name: value for name, value in page.context["adminform"].form.initial.items() if value is not None}
    data.update({"mission": task.mission_id, "owner_agent": task.owner_agent_id, "phase": task.phase_id,
                 "acceptance_criteria": "[]", "config": "[" * 5_000 + "]" * 5_000, "depends_on": []})
    response = client_admin.post(_url(Task, "change", task.pk), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["config"] == ["Enter a valid JSON."]
    task.refresh_from_db()
    assert task.config == {}


def test_every_json_field_of_an_admin_form_reads_with_the_nesting_limit(rf, admin_user):
    request = rf.get("/")
    request.user = admin_user
    unlimited = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in {"missions", "tasks", "agents", "blueprints"}:
            continue
        form_classes = [model_admin.get_form(request)] + [
            inline.get_formset(request).form for inline in model_admin.get_inline_instances(request)]
        unlimited += [f"{model._meta.label}: {form.__name__}.{name}" for form in form_classes
                      for name, field in form.base_fields.items()
                      if isinstance(field, forms.JSONField) and field.decoder is not LimitedJSONDecoder]
    assert unlimited == []


def test_a_spec_file_upload_claiming_two_gigabytes_is_refused_before_its_body_is_read(admin_user, settings, caplog):
    # As in production: the CSRF check reads the form before the admin does, so the limit acts before that read.
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    client.get(_url(Mission, "add"))
    response = client.generic("POST", _url(Mission, "add"), b"--x--\r\n", content_type=MULTIPART,
                              **claiming(2 * GIB), HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 400
    assert [record.getMessage() for record in caplog.records if record.name.startswith("django.security")] == [
        f"The upload is 2,147,483,648 bytes; the limit is {settings.GENESIS_MAX_UPLOAD_BYTES:,} bytes."]
    assert not Mission.objects.exists()
