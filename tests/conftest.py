"""Named actors shared by every test: ``lead`` (Mission Owner, in the ``Platform leads`` group that may launch
missions, import blueprints and give the test connections made with ``leads_connection`` to missions), ``analyst``
(Task Owner), ``viewer`` (Stakeholder), ``outsider`` (signed in, no role, no permission), ``admin_user`` (staff
superuser) and ``agent`` (a data agent). Every cache (throttles, sign-in limits) starts empty. ``llm_stub`` turns the
language model on against a local stub of the chat API."""

import shutil
from pathlib import Path

import pytest
from django.core.cache import caches
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from missions import services as mission_services
from missions.choices import MissionStatus, Role
from tests.agents.llm_stub import KEY, StubLLM
from tests.browser import browser_context  # noqa: F401  (the Playwright fixture of the page tests)
from tests.factories import AgentFactory, MissionFactory, UserFactory, build_mission_graph


@pytest.fixture(scope="session", autouse=True)
def _remove_scratch_directories():
    """The test settings' throw-away directories (uploaded files, dbt templates) go when the session ends."""
    yield
    from django.conf import settings

    for path in (settings.MEDIA_ROOT, settings.GENESIS_DBT_TEMPLATE_DIR):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def dbt_templates():
    """Each dbt adapter's template, parsed once per session as a worker does at its start
    (``GENESIS_DBT_TEMPLATE_DIR`` of the test settings): the parses of the tests that build start from it, as a
    mission's do. tests/pipeline/build/test_templates.py compares such a parse with a full one."""
    from django.conf import settings

    from pipeline.dbt import runner

    runner.warm_up()
    return Path(settings.GENESIS_DBT_TEMPLATE_DIR)


@pytest.fixture(autouse=True)
def _clean_caches():
    for cache in caches.all():
        cache.clear()
    yield
    for cache in caches.all():
        cache.clear()


LEADS = "Platform leads"


def leads_group():
    """The group of data platform leads: they may launch missions and import blueprints."""
    from django.contrib.auth.models import Group, Permission

    group, created = Group.objects.get_or_create(name=LEADS)
    if created:
        group.permissions.add(*Permission.objects.filter(
            content_type__app_label__in=["missions", "blueprints"],
            codename__in=["add_mission", "add_blueprintversion"]))
    return group


def leads_connection(**fields):
    """A connection the platform leads may give to the missions they launch."""
    from agents.models import Connection

    connection = Connection.objects.create(**fields)
    connection.groups.add(leads_group())
    return connection


@pytest.fixture
def lead(db):
    user = UserFactory(username="lead", first_name="Lena", last_name="Lead")
    user.groups.add(leads_group())
    return user


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider", first_name="Otto", last_name="Outsider")


@pytest.fixture
def analyst(db):
    return UserFactory(username="analyst", first_name="Ari", last_name="Analyst")


@pytest.fixture
def viewer(db):
    return UserFactory(username="viewer", first_name="Vic", last_name="Viewer")


@pytest.fixture
def admin_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-1")


@pytest.fixture
def agent(db):
    return AgentFactory(name="NoopAgent", kind="noop")


@pytest.fixture
def mission(lead, analyst, viewer):
    """A draft mission created through the service, with the three roles held."""
    m = mission_services.mission_create(
        name="Healthcare Data Pipeline",
        objective="CLAIM_SUMMARY, PROVIDER_SUMMARY and PATIENT_SUMMARY are built daily from bronze tables.",
        owner=lead,
        success_criteria=["Mapping specs approved", "dbt models materialize"],
    )
    mission_services.membership_set(mission=m, user=analyst, role=Role.TASK_OWNER, actor=lead)
    mission_services.membership_set(mission=m, user=viewer, role=Role.STAKEHOLDER, actor=lead)
    return m


@pytest.fixture
def completed(mission):
    """``mission``, launched and completed (moved there directly): what stakeholders sign off and the owner closes."""
    for status in (MissionStatus.ACTIVE, MissionStatus.COMPLETED):
        mission_services.mission_transition(mission=mission, to=status)
    return mission


@pytest.fixture
def enqueued(monkeypatch):
    """Records the django-q2 jobs ``async_task`` is asked for, as ``(func, args, kwargs)``, without running them.
    Jobs are enqueued on commit: run the code under ``django_capture_on_commit_callbacks(execute=True)``."""
    import django_q.tasks

    calls = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda func, *args, **kwargs: calls.append((func, args, kwargs)))
    return calls


class FakeClock:
    """A clock that moves only when told: ``advance(seconds)``."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now

    def advance(self, seconds: float):
        self.now += seconds


@pytest.fixture
def sign_in_clock(monkeypatch):
    """The sign-in limits' clock (genesis.login_limits.clock), faked: waits pass without sleeping."""
    from genesis import login_limits

    fake = FakeClock()
    monkeypatch.setattr(login_limits, "clock", fake)
    return fake


@pytest.fixture
def small_sign_in_limits(settings):
    """Three failures per username and five per address come free (forgiven at that rate per hour); then 2 s,
    doubled per failure, at most 60 s."""
    settings.GENESIS_LOGIN_FAILURE_RATES = {"username": "3/hour", "address": "5/hour"}
    settings.GENESIS_LOGIN_DELAY_SECONDS = 2
    settings.GENESIS_LOGIN_DELAY_MAX_SECONDS = 60


# --- pages and API: signed-in clients and a large mission --------------------------------------------------------


@pytest.fixture
def client_for(client):
    """``client_for(user)``: the test client signed in as that user."""

    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture
def big_mission(lead, agent):
    mission = MissionFactory(owner=lead, name="Large mission")
    build_mission_graph(mission, tasks=500, phases=5, agent=agent)
    return mission


@pytest.fixture
def as_user():
    """``as_user(user)``: an APIClient sending that user's token (``as_user(None)``: anonymous)."""

    def make(user):
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def actors(lead, analyst, viewer, outsider, admin_user):
    return {"lead": lead, "analyst": analyst, "viewer": viewer, "outsider": outsider, "staff": admin_user,
            "anonymous": None}


# --- the language model: a local stub of the chat API ------------------------------------------------------------


@pytest.fixture
def llm_stub(settings):
    """A local server that speaks the OpenAI-compatible chat API and replays what the test queues
    (``tests/agents/llm_stub.py``, no network), with the language-model settings pointed at it: the model is on for
    the test, its key (``KEY``) one that must never show."""
    with StubLLM() as server:
        settings.GENESIS_LLM_BASE_URL = server.base_url
        settings.GENESIS_LLM_MODEL = "stub-model"
        settings.GENESIS_LLM_API_KEY = KEY
        settings.GENESIS_LLM_TIMEOUT_SECONDS = 2.0
        settings.GENESIS_LLM_ATTEMPTS = 3
        settings.GENESIS_LLM_MAX_RETRY_WAIT_SECONDS = 2
        yield server
