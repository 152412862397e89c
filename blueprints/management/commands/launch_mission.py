"""``manage.py launch_mission --blueprint SLUG --name ... --owner USER [--param k=v ...] [--spec-file FILE]
[--from-mission MISSION]``: create a mission from a blueprint and print its id."""

from contextlib import nullcontext
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from blueprints.models import BlueprintVersion
from blueprints.selectors import blueprint_version_get
from genesis.exceptions import DomainError
from missions.choices import MissionMode
from workflows.missions import mission_create_from_blueprint


class Command(BaseCommand):
    help = "Create a draft mission from a blueprint (its tasks, owners, criteria and dependencies) and print its " \
           "id. Parameters not given are pre-filled from the blueprint's defaults and the connections."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # ``--version`` means the blueprint's version here, not Django's.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--blueprint", required=True, help="Blueprint slug.")
        parser.add_argument("--version", dest="number", type=int, help="Version number (default: the latest).")
        parser.add_argument("--name", required=True, help="The mission's name.")
        parser.add_argument("--owner", required=True, help="Username of the Mission Owner.")
        parser.add_argument("--objective", default="", help="Default: the blueprint's objective, filled in.")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                            help="A parameter value; lists as a,b,c. Repeat for several.")
        parser.add_argument("--mode", choices=MissionMode.values, default=MissionMode.STEP)
        parser.add_argument("--task-owner", help="Username who owns the actions a blueprint gives to task_owner.")
        parser.add_argument("--spec-file", help="The mission's spec file (YAML), validated and attached; required by "
                                                "blueprints that say requires: [spec_file], e.g. build-marts.")
        parser.add_argument("--from-mission", help="Reuse the approved mapping specs of this mission (id or exact "
                                                   "name): its mapping tasks verify them instead of mapping again.")

    def handle(self, *args, **options):
        users = get_user_model()
        try:
            version = blueprint_version_get(slug=options["blueprint"], number=options["number"])
        except BlueprintVersion.DoesNotExist:
            raise CommandError(f"No blueprint {options['blueprint']!r} (version {options['number'] or 'latest'}) "
                               "is loaded; load it with load_blueprint.") from None
        params = {}
        for item in options["param"]:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise CommandError(f"--param {item!r}: write it as key=value.")
            params[key.strip()] = value
        try:
            owner = users.objects.get(**{users.USERNAME_FIELD: options["owner"]})
            task_owner = (users.objects.get(**{users.USERNAME_FIELD: options["task_owner"]})
                          if options["task_owner"] else None)
        except users.DoesNotExist as error:
            raise CommandError(f"No such user: {error}") from None
        spec_path = Path(options["spec_file"]) if options["spec_file"] else None
        if spec_path is not None and not spec_path.is_file():
            raise CommandError(f"--spec-file {spec_path}: no such file.")
        try:
            with spec_path.open("rb") if spec_path else nullcontext() as handle:
                mission = mission_create_from_blueprint(
                    version=version, name=options["name"], objective=options["objective"], owner=owner,
                    # No actor: the command runs as the system (whoever has the server's shell), which may grant any
                    # connection; history names the owner as the one who launched.
                    mode=options["mode"], params=params, actor=None, task_owner=task_owner,
                    spec_file=File(handle, name=spec_path.name) if handle else None,
                    from_mission=options["from_mission"],
                )
        except DomainError as error:
            raise CommandError(f"--spec-file {spec_path}: {error.message}" if spec_path and error.field == "spec_file"
                               else error.message) from None
        self.stdout.write(str(mission.pk))

