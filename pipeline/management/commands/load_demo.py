"""``manage.py load_demo [--claims N] [--seed S] [--launch]``: the healthcare demo, ready to run.

Builds the bronze SQLite database (deterministic for a seed), registers it as the source connection
``HCLS_DEMO_1_SOURCES`` with a target and a validation connection for the models, validates the demo spec file
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
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files import File
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

from agents.services import connection_register
from genesis.exceptions import DomainError
from pipeline.demo.generator import generate, write_sqlite
from pipeline.specfile import SpecFileError, load_spec_text

SOURCE = "HCLS_DEMO_1_SOURCES"
TARGET = "HCLS_DEMO_1_TARGET"
VALIDATION = "HCLS_DEMO_1_VALIDATION"
SPEC_FILE = Path(__file__).resolve().parents[2] / "demo" / "project.yml"
OWNER, STAKEHOLDER = "demo_owner", "demo_stakeholder"
BLUEPRINT = "build-marts"
DEMO_GROUP = "Healthcare demo owners"


class Command(BaseCommand):
    help = "Load the healthcare demo: bronze data, connections, spec file, blueprints and demo users."

    def add_arguments(self, parser):
        parser.add_argument("--claims", type=int, default=20_000, help="Number of claims (default 20,000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed; the same seed gives the same data.")
        parser.add_argument("--dir", default=None, help="Where the demo databases go (default: var/demo).")
        parser.add_argument("--launch", action="store_true",
                            help="Also create the Healthcare Data Pipeline mission from its blueprint.")
        parser.add_argument("--mode", choices=["step", "continuous"], default="continuous")

    def handle(self, *args, claims, seed, dir, launch, mode, **options):
        if claims < 1:
            raise CommandError("--claims must be at least 1.")
        folder = Path(dir) if dir else Path(settings.VAR_DIR) / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            spec_text = SPEC_FILE.read_text()
            load_spec_text(spec_text, source=str(SPEC_FILE))
        except SpecFileError as error:
            raise CommandError(error.message) from None

        started = time.monotonic()
        data = generate(claims=claims, seed=seed)
        source_path = write_sqlite(folder / "hcls_demo_1_sources.sqlite3", data)
        counts = ", ".join(f"{table} {n:,}" for table, n in data.counts().items())
        self.stdout.write(f"bronze data ({counts}) written to {source_path} in {time.monotonic() - started:.2f} s")
        target_path = folder / "hcls_demo_1_target.sqlite3"
        sqlite3.connect(target_path).close()  # an empty database the dbt models are built in
        spec_copy = folder / "project.yml"
        shutil.copyfile(SPEC_FILE, spec_copy)

        try:
            registered = [
                connection_register(name=SOURCE, engine="sqlite", location=str(source_path), purpose="source",
                                    description=f"Healthcare demo bronze tables ({claims:,} claims, seed {seed})."),
                connection_register(name=TARGET, engine="sqlite", location=str(target_path), purpose="target",
                                    description="Healthcare demo: where the summary models are built."),
                connection_register(name=VALIDATION, engine="sqlite", location=str(target_path), purpose="validation",
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
        from blueprints.models import BlueprintVersion
        from blueprints.selectors import blueprint_version_get
        from missions.choices import Role
        from missions.services import membership_set
        from workflows.missions import mission_create_from_blueprint

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
