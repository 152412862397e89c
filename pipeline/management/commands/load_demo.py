"""``manage.py load_demo [--claims N] [--seed S] [--engine E] [--launch]``: the healthcare demo, ready to run.

Builds the bronze database (deterministic for a seed) on the chosen engine: a SQLite file (the default), a DuckDB
file (``--engine duckdb``), or a schema ``hcls_demo_1_sources`` of a PostgreSQL database (``--engine postgresql
--location postgres://...``: that schema is replaced, the models go to schema ``hcls_demo_1_target``). It registers
it as the source connection ``HCLS_DEMO_1_SOURCES`` with a target and a validation connection for the models on the
same engine, validates the demo spec file
(project.yml), loads the shipped blueprints, and creates the demo Mission Owner and stakeholder. With
``--launch`` it also creates the Healthcare Data Pipeline mission: the generic ``build-marts`` blueprint with the
demo's spec file attached (its three targets become the three mapping tasks), through the same launch verb as
``launch_mission --spec-file``, the launch page and the API; the demo stakeholder is named a required signer, so the
owner closes it only after the stakeholder has approved the delivered outputs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import duckdb
import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files import File
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

from agents.connectors.platform import refusal_for
from agents.services import connection_register
from blueprints.models import BlueprintVersion
from blueprints.selectors import blueprint_version_get
from genesis.exceptions import DomainError
from missions.choices import Role
from missions.services import membership_set
from pipeline.demo.generator import SCHEMA, Chunk, stream, write_duckdb, write_postgresql, write_sqlite
from pipeline.specfile import SpecFileError, load_spec_text
from workflows.missions import mission_create_from_blueprint

SOURCE = "HCLS_DEMO_1_SOURCES"
TARGET = "HCLS_DEMO_1_TARGET"
VALIDATION = "HCLS_DEMO_1_VALIDATION"
SPEC_FILE = Path(__file__).resolve().parents[2] / "demo" / "project.yml"
OWNER, STAKEHOLDER = "demo_owner", "demo_stakeholder"
BLUEPRINT = "build-marts"
DEMO_GROUP = "Healthcare demo owners"
ENGINES = ("sqlite", "duckdb", "postgresql")
PG_SOURCE_SCHEMA, PG_TARGET_SCHEMA = "hcls_demo_1_sources", "hcls_demo_1_target"


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` (a postgres:// URL) whose sessions use ``schema`` first (``options=-c search_path=...``)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"] + [("options", f"-c search_path={schema}")]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _counted(chunks: Iterator[Chunk], counts: dict[str, int]) -> Iterator[Chunk]:
    """``chunks`` as they are, counting each table's rows into ``counts`` on the way."""
    for table, rows in chunks:
        counts[table] += len(rows)
        yield table, rows


class Command(BaseCommand):
    help = "Load the healthcare demo: bronze data, connections, spec file, blueprints and demo users."

    def add_arguments(self, parser):
        parser.add_argument("--claims", type=int, default=20_000, help="Number of claims (default 20,000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed; the same seed gives the same data.")
        parser.add_argument("--dir", default=None, help="Where the demo databases go (default: var/demo).")
        parser.add_argument("--launch", action="store_true",
                            help="Also create the Healthcare Data Pipeline mission from its blueprint.")
        parser.add_argument("--mode", choices=["step", "continuous"], default="continuous")
        parser.add_argument("--engine", choices=ENGINES, default="sqlite",
                            help="Where the bronze tables and the models live (default sqlite).")
        parser.add_argument("--location", default=None,
                            help="With --engine postgresql: the database, as postgres://user@host:port/dbname.")

    def handle(self, *args, claims, seed, dir, launch, mode, engine="sqlite", location=None, **options):
        if claims < 1:
            raise CommandError("--claims must be at least 1.")
        if engine == "postgresql" and not location:
            raise CommandError("--location: --engine postgresql needs the database, as "
                               "postgres://user@host:port/dbname.")
        if location and engine != "postgresql":
            raise CommandError(f"--location: only --engine postgresql takes one; {engine} files go to --dir.")
        folder = Path(dir) if dir else Path(settings.VAR_DIR) / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            spec_text = SPEC_FILE.read_text()
            load_spec_text(spec_text, source=str(SPEC_FILE))
        except SpecFileError as error:
            raise CommandError(error.message) from None

        started = time.monotonic()
        # The rows are generated and written chunk by chunk: memory does not grow with the number of claims.
        written = dict.fromkeys(SCHEMA, 0)
        source_location, target_location = self._write(engine, _counted(stream(claims=claims, seed=seed), written),
                                                        folder=folder, location=location)
        counts = ", ".join(f"{table} {n:,}" for table, n in written.items())
        shown = source_location if engine != "postgresql" else f"schema {PG_SOURCE_SCHEMA}"
        self.stdout.write(f"bronze data ({counts}) written to {shown} in {time.monotonic() - started:.2f} s")
        spec_copy = folder / "project.yml"
        shutil.copyfile(SPEC_FILE, spec_copy)

        try:
            registered = [
                connection_register(name=SOURCE, engine=engine, location=source_location, purpose="source",
                                    description=f"Healthcare demo bronze tables ({claims:,} claims, seed {seed})."),
                connection_register(name=TARGET, engine=engine, location=target_location, purpose="target",
                                    description="Healthcare demo: where the summary models are built."),
                connection_register(name=VALIDATION, engine=engine, location=target_location, purpose="validation",
                                    description="Healthcare demo: validation reads of the models."),
            ]
        except DomainError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"connections {SOURCE}, {TARGET} and {VALIDATION} registered")

        owner = self._user(OWNER, "Demo", "Owner")
        stakeholder = self._user(STAKEHOLDER, "Demo", "Stakeholder")
        # The demo's Mission Owner may launch missions and give them the demo connections, nothing more.
        group, _ = Group.objects.get_or_create(name=DEMO_GROUP)
        group.permissions.add(Permission.objects.get(content_type__app_label="missions", codename="add_mission"))
        for connection in registered:
            connection.groups.add(group)
        owner.groups.add(group)
        self.stdout.write(f"group “{DEMO_GROUP}”: {OWNER} may launch missions on the demo connections")

        if "load_blueprint" in get_commands():
            call_command("load_blueprint", shipped=True, stdout=self.stdout, stderr=self.stderr)
        else:
            self.stdout.write("the blueprints app offers no load_blueprint command yet; blueprints not loaded")
        self.stdout.write(f"spec file validated: {spec_copy}")

        if launch:
            mission = self._launch(owner, stakeholder, mode)
            self.stdout.write(f"mission {mission.pk} “{mission.name}” created ({mode}); spec file attached; "
                              f"{STAKEHOLDER}'s sign-off is required before it closes")

    def _write(self, engine: str, data: Iterator[Chunk], *, folder: Path, location: str | None) -> tuple[str, str]:
        """Write the bronze tables on ``engine`` and make the (empty) place the models are built in; the source and
        target connections' locations."""
        if engine == "sqlite":
            source_path = write_sqlite(folder / "hcls_demo_1_sources.sqlite3", data)
            target_path = folder / "hcls_demo_1_target.sqlite3"
            sqlite3.connect(target_path).close()  # an empty database the dbt models are built in
            return str(source_path), str(target_path)
        if engine == "duckdb":
            source_path = write_duckdb(folder / "hcls_demo_1_sources.duckdb", data)
            target_path = folder / "hcls_demo_1_target.duckdb"
            # An empty database the models are built in (dbt-duckdb would create it, the validation reads need it).
            duckdb.connect(str(target_path), config={"autoinstall_known_extensions": False,
                                                     "autoload_known_extensions": False}).close()
            return str(source_path), str(target_path)

        if refusal_for("postgresql", location or ""):
            raise CommandError("--location: it is the platform's own database, which is never a data connection.")
        try:
            with psycopg.connect(location or "", connect_timeout=10, autocommit=True) as admin:
                admin.execute(f'DROP SCHEMA IF EXISTS "{PG_SOURCE_SCHEMA}" CASCADE')
                admin.execute(f'CREATE SCHEMA "{PG_SOURCE_SCHEMA}"')
                admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{PG_TARGET_SCHEMA}"')
            with psycopg.connect(location or "", connect_timeout=10,
                                 options=f"-c search_path={PG_SOURCE_SCHEMA}") as conn:
                write_postgresql(conn, data)
        except psycopg.Error as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CommandError(f"--location: cannot write the demo into PostgreSQL: {first}") from None
        return (with_search_path(location or "", PG_SOURCE_SCHEMA), with_search_path(location or "",
                                                                                     PG_TARGET_SCHEMA))

    def _user(self, username: str, first: str, last: str):
        users = get_user_model()
        user, created = users.objects.get_or_create(
            username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com"})
        if created:
            password = os.environ.get("GENESIS_DEMO_PASSWORD") or secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
            shown = "from GENESIS_DEMO_PASSWORD" if os.environ.get("GENESIS_DEMO_PASSWORD") else password
            self.stdout.write(f"user {username} created (password: {shown})")
        return user

    def _launch(self, owner, stakeholder, mode: str):
        try:
            version = blueprint_version_get(slug=BLUEPRINT, number=None)
        except BlueprintVersion.DoesNotExist:
            raise CommandError(f"The blueprint {BLUEPRINT} is not loaded.") from None
        # The spec file names the source and target connections and the tables; the rest are the blueprint's.
        params = {"validation_connection": VALIDATION, "dbt_project": "healthcare"}
        try:
            with SPEC_FILE.open("rb") as handle:
                mission = mission_create_from_blueprint(
                    version=version, name="Healthcare Data Pipeline (demo)", objective="", owner=owner, mode=mode,
                    params=params, actor=owner, spec_file=File(handle, name="project.yml"))
            # The stakeholder's approval of the delivered outputs is required before the owner can close.
            membership_set(mission=mission, user=stakeholder, role=Role.STAKEHOLDER, actor=owner,
                           signoff_required=True)
        except DomainError as error:
            raise CommandError(error.message) from None
        return mission
