"""``manage.py export_blueprint SLUG [--version N]``: print a stored blueprint version as YAML."""

from django.core.management.base import BaseCommand, CommandError

from blueprints.models import BlueprintVersion
from blueprints.selectors import blueprint_version_get
from blueprints.services import blueprint_export


class Command(BaseCommand):
    help = "Print a blueprint version (the latest unless --version) as YAML; loading it gives the same version."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # ``--version`` means the blueprint's version here, not Django's.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--version", dest="number", type=int, help="Version number (default: the latest).")

    def handle(self, *args, slug, number, **options):
        try:
            version = blueprint_version_get(slug=slug, number=number)
        except BlueprintVersion.DoesNotExist:
            wanted = f"version {number} of blueprint {slug!r}" if number else f"blueprint {slug!r}"
            raise CommandError(f"No {wanted} is loaded.") from None
        self.stdout.write(blueprint_export(blueprint_version=version), ending="")
