"""Connections (secrets write-only) and agents: everyone signed in reads them, staff change them."""

import pytest

from agents.models import Connection
from tests.factories import ConnectionFactory, MissionFactory

pytestmark = pytest.mark.django_db


def test_a_secret_is_stored_but_never_shown_back(as_user, admin_user, lead):
    response = as_user(admin_user).post("/api/v1/connections/", {
        "name": "HCLS_SOURCE", "engine": "postgresql", "location": "postgres://etl@db.example.com/bronze",
        "secret": "s3cret", "purpose": "source",
    })
    assert response.status_code == 201, response.json()
    assert "secret" not in response.json() and response.json()["has_secret"] is True
    assert Connection.objects.get(name="HCLS_SOURCE").secret == "s3cret"
    listed = as_user(lead).get("/api/v1/connections/").json()["results"]
    assert listed[0]["name"] == "HCLS_SOURCE" and "secret" not in listed[0]
    assert "s3cret" not in as_user(lead).get(f"/api/v1/connections/{listed[0]['id']}/").content.decode()


def test_a_password_in_a_dsn_moves_to_the_secret(as_user, admin_user):
    response = as_user(admin_user).post("/api/v1/connections/", {
        "name": "WAREHOUSE", "engine": "postgresql", "location": "postgres://etl:hunter2@db.example.com/gold",
    })
    assert response.status_code == 201
    assert response.json()["location"] == "postgres://etl@db.example.com/gold"
    assert Connection.objects.get(name="WAREHOUSE").secret == "hunter2"


def test_model_validation_errors_are_keyed_by_field(as_user, admin_user):
    response = as_user(admin_user).post("/api/v1/connections/", {
        "name": "BAD", "engine": "postgresql", "location": "/not/a/dsn",
    })
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "location": ["A PostgreSQL connection needs a DSN like postgres://user@host/db."],
    }


def test_non_staff_cannot_change_connections_or_agents(as_user, lead, agent):
    connection = ConnectionFactory()
    client = as_user(lead)
    created = client.post("/api/v1/connections/", {"name": "X", "engine": "sqlite", "location": "/tmp/x"})
    assert created.status_code == 403
    assert client.patch(f"/api/v1/connections/{connection.pk}/", {"name": "Y"}).status_code == 403
    assert client.delete(f"/api/v1/agents/{agent.pk}/").status_code == 403
    connection.refresh_from_db()
    assert connection.name.startswith("CONN_")


def test_a_connection_in_use_cannot_be_deleted(as_user, admin_user):
    connection = ConnectionFactory()
    MissionFactory(source_connection=connection)
    response = as_user(admin_user).delete(f"/api/v1/connections/{connection.pk}/")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert Connection.objects.filter(pk=connection.pk).exists()


def test_agents_are_listed_and_filtered(as_user, viewer, agent):
    rows = as_user(viewer).get("/api/v1/agents/", {"kind": "noop"}).json()["results"]
    assert [(a["name"], a["kind"], a["enabled"]) for a in rows] == [("NoopAgent", "noop", True)]


def test_a_duckdb_connection_is_created_and_an_in_memory_one_refused(as_user, admin_user, tmp_path):
    response = as_user(admin_user).post("/api/v1/connections/", {
        "name": "DUCK_TARGET", "engine": "duckdb", "location": str(tmp_path / "warehouse.duckdb"), "purpose": "target",
    })
    assert response.status_code == 201, response.json()
    assert Connection.objects.get(name="DUCK_TARGET").engine == "duckdb"
    response = as_user(admin_user).post("/api/v1/connections/", {
        "name": "DUCK_MEM", "engine": "duckdb", "location": ":memory:", "purpose": "source",
    })
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["location"]
    assert "in-memory" in response.json()["errors"]["location"][0]
