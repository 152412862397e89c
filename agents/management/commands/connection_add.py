"""``manage.py connection_add NAME --engine sqlite|duckdb|postgresql --location PATH_OR_DSN
--purpose source|target|validation [--description ...] [--group GROUP ...]``: register a connection (or update the
one of that name), validated as the admin and the API validate it: a password in the DSN goes to the write-only
secret, and the platform's own database is refused. A SQLite file need not exist yet: ``manage.py ingest`` creates
it on its first load. A DuckDB location is a local file (no ``:memory:``, MotherDuck or URL: those would need
extensions downloaded at run time)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agents.choices import Purpose
from agents.connectors import ADAPTERS
from agents.models import Connection
from agents.services import connection_register
from genesis.exceptions import DomainError


class Command(BaseCommand):
    help = ("Register a named data connection (or update the one of that name): a DSN password is kept as the "
            "write-only secret, the platform's own database is refused.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="The connection's name, e.g. CLAIMS_SOURCE.")
        parser.add_argument("--engine", required=True, choices=sorted(ADAPTERS))
        parser.add_argument("--location", required=True,
                            help="A SQLite or DuckDB file path, or a PostgreSQL DSN (postgres://user@host:5432/db).")
        parser.add_argument("--purpose", required=True, choices=Purpose.values)
        parser.add_argument("--description", default="")
        parser.add_argument("--group", action="append", dest="groups", metavar="GROUP",
                            help="A group whose members may give the connection to the missions they launch; repeat "
                                 "for several (replaces the list; staff always may).")

    def handle(self, *args, **options):
        name = options["name"].strip()
        if not name:
            raise CommandError("NAME: give the connection a name.")
        existed = Connection.objects.filter(name=name).exists()
        try:
            connection = connection_register(
                name=name, engine=options["engine"], location=options["location"], purpose=options["purpose"],
                description=options["description"], groups=options["groups"],
            )
        except DomainError as error:
            raise CommandError(error.message) from None  # names the field: "location: ...", "groups: ..."
        groups = ", ".join(connection.groups.order_by("name").values_list("name", flat=True)) or "staff only"
        self.stdout.write(self.style.SUCCESS(
            f"Connection {connection.name} {'updated' if existed else 'added'}: {connection.engine} at "
            f"{connection.location}, purpose {connection.purpose}; may be given to missions by: {groups}."))
        if connection.location != options["location"]:
            self.stdout.write("The password in the DSN is kept as the connection's write-only secret, not in its "
                              "location.")
