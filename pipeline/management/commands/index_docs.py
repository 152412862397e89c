"""``manage.py index_docs --index NAME FILE...``: add documents (text, Markdown, CSV) to a docs index that
missions name in their docs_index field; the mapping agent searches and cites them."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from genesis.exceptions import DomainError
from pipeline.services import docs_index_add_document


class Command(BaseCommand):
    help = "Add documents to a docs index (created if new). All or nothing."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+")
        parser.add_argument("--index", required=True, help="The docs index's name.")

    def handle(self, *args, files, index, **options):
        try:
            with transaction.atomic():
                for name in files:
                    path = Path(name)
                    if not path.is_file():
                        raise CommandError(f"{path}: no such file.")
                    document = docs_index_add_document(index_name=index, title=path.name,
                                                       content=path.read_bytes(), filename=path.name)
                    self.stdout.write(f"{path.name}: {document.passages.count()} passages indexed in {index}")
        except DomainError as error:
            raise CommandError(error.message) from None
