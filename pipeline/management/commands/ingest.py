"""``manage.py ingest --connection NAME PATH...``: load CSV, Parquet and JSON files (or folders of them) into tables
of a connection, one table per file, as the system (any connection, any path). See ``pipeline.ingest``."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from agents.models import Connection
from genesis.exceptions import DomainError
from pipeline.ingest.services import files_ingest


def _header(value: str) -> bool:
    return value.lower() in {"1", "true", "yes"}


class Command(BaseCommand):
    help = ("Load CSV, Parquet and JSON/NDJSON files (or folders of them) into tables of a connection: one table per "
            "file, named after it; loading a file again replaces its table's content. All the files or none.")

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="A file or a folder of files.")
        parser.add_argument("--connection", required=True,
                            help="The connection to load into (SQLite, DuckDB or PostgreSQL).")
        parser.add_argument("--delimiter", help="CSV: the delimiter (default: sniffed).")
        parser.add_argument("--header", choices=["true", "false"], help="CSV: whether the first line names the "
                                                                        "columns (default: sniffed).")
        parser.add_argument("--encoding", help="CSV: utf-8 (default), utf-16 or latin-1.")
        parser.add_argument("--skip", type=int, help="CSV: lines above the header to leave out (a title, notes).")
        parser.add_argument("--sample-size", type=int, help="Rows (CSV) or records (JSON) types are inferred from; "
                                                            "-1: the whole file (default: 20,480).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **options):
        connection = Connection.objects.filter(name=options["connection"]).first()
        if connection is None:
            raise CommandError(f"--connection: no connection is named {options['connection']!r} "
                               "(add one with manage.py connection_add).")
        given = {"delimiter": options["delimiter"], "encoding": options["encoding"], "skip": options["skip"],
                 "sample_size": options["sample_size"],
                 "header": None if options["header"] is None else _header(options["header"])}

        def progress(message: str) -> None:
            if options["verbosity"] > 1:
                self.stderr.write(message)

        try:
            report = files_ingest(connection=connection, paths=options["paths"], mission=None,
                                  options={k: v for k, v in given.items() if v is not None}, progress=progress)
        except DomainError as error:
            raise CommandError(error.message) from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        if report.created:
            kind = "DuckDB" if report.engine == "duckdb" else "SQLite"
            self.stdout.write(f"Created the {kind} file {report.where}.")
        for table in report.tables:
            columns = ", ".join(f"{c['name']} {c['type']}" for c in table.columns)
            self.stdout.write(f"{table.file} -> {table.table}: {table.rows:,} rows, {len(table.columns)} columns "
                              f"({columns}) in {table.elapsed_ms / 1000:.2f} s")
        for skipped in report.skipped:
            self.stdout.write(f"skipped {skipped}")
        self.stdout.write(self.style.SUCCESS(
            f"Loaded {len(report.tables)} file(s), {report.rows:,} rows, into {report.connection} "
            f"({report.engine}, {report.where}) in {report.elapsed_ms / 1000:.2f} s."))
