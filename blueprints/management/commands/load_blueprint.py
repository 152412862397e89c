"""``manage.py load_blueprint FILE... [--shipped]``: validate and store blueprint files as versions."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from blueprints.services import blueprint_import
from blueprints.validation import BlueprintInvalid

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "files"


class Command(BaseCommand):
    help = "Load blueprint YAML files. All or nothing: if any file is refused, every problem is printed, " \
           "nothing is stored and the command exits non-zero."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="*", help="Blueprint YAML files.")
        parser.add_argument("--shipped", action="store_true", help="Also load the blueprints shipped with Genesis.")

    def handle(self, *args, files, shipped, **options):
        paths = [Path(f) for f in files]
        if shipped:
            paths += sorted(SHIPPED_DIR.glob("*.yaml"))
        if not paths:
            raise CommandError("Name at least one blueprint file, or use --shipped.")
        problems: list[str] = []
        loaded = []
        with transaction.atomic():
            for path in paths:
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as error:
                    problems.append(f"{path}: cannot be read: {error}")
                    continue
                try:
                    with transaction.atomic():
                        loaded.append(blueprint_import(text=text, filename=str(path)))
                except BlueprintInvalid as error:
                    problems.extend(error.lines())
            if problems:
                transaction.set_rollback(True)
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError(f"{len(problems)} problem(s); nothing was loaded.")
        for version in loaded:
            state = "loaded as" if version.created else "unchanged:"
            self.stdout.write(f"{state} {version.blueprint.slug} version {version.number}")
