"""``files_ingest``: load CSV, Parquet and JSON files into tables of a connection (see ``pipeline.ingest``)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from agents.access import require_use
from agents.models import Connection
from pipeline.ingest.errors import IngestCancelled, IngestError
from pipeline.ingest.files import files_resolve
from pipeline.ingest.reading import IngestOptions, LoadedFile, Reader
from pipeline.ingest.writing import TARGETS


@dataclass
class TableReport:
    """What one file became: its table, rows, columns (DuckDB's inferred type and the declared one), and timings."""

    file: str
    format: str
    table: str
    rows: int
    columns: list[dict[str, str]]
    bytes: int
    sha256: str
    read_ms: float
    write_ms: float
    elapsed_ms: float

    @classmethod
    def of(cls, loaded: LoadedFile) -> TableReport:
        return cls(
            file=loaded.file.shown, format=loaded.file.format, table=loaded.file.table, rows=loaded.rows,
            columns=[{"name": c.name, "type": c.type, "declared": declared}
                     for c, declared in zip(loaded.columns, loaded.declared, strict=True)],
            bytes=loaded.file.size, sha256=loaded.sha256, read_ms=round(loaded.read_seconds * 1000, 1),
            write_ms=round(loaded.write_seconds * 1000, 1),
            elapsed_ms=round((loaded.read_seconds + loaded.write_seconds) * 1000, 1),
        )


@dataclass
class IngestReport:
    """The outcome of one ingest: where the tables landed and what each file became."""

    connection: str
    engine: str
    where: str
    created: bool
    tables: list[TableReport]
    skipped: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": self.rows}

    def summary(self) -> str:
        tables = ", ".join(f"{t.table} ({t.rows:,} rows)" for t in self.tables)
        return (f"Loaded {len(self.tables)} file(s) into {self.connection}: {tables}"
                + (f"; {len(self.skipped)} skipped" if self.skipped else "") + ".")


def files_ingest(
    *,
    connection: Connection,
    paths: Iterable[str | os.PathLike[str]],
    mission: Any,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> IngestReport:
    """Load each file (or each file of a folder) into the table of ``connection`` named after it, replacing that
    table's content; all the files or none.

    ``mission``: whom the load is for. A mission (its ingest agent) must have ``connection`` granted
    (``agents.access.require_use``) and reads files only under ``GENESIS_INGEST_ROOT``; ``None`` is the system (the
    ``ingest`` command), which may use any connection and any path.

    Every file is read whole by DuckDB first; then every table is written in one transaction of the target. Refuses
    with ``IngestError`` (naming the file, the line and the problem, or the option or connection at fault) and
    leaves the target as it was. Not ``transaction.atomic``: it writes nothing to the platform's database.
    """
    if mission is not None:
        require_use(connection, mission)
    target_class = TARGETS.get(connection.engine)
    if target_class is None:
        raise IngestError(f"Connection {connection.name}: ingest loads into {' or '.join(TARGETS)}, not "
                          f"{connection.engine}.", field="connection")
    parsed = IngestOptions.parse(options)
    root = Path(settings.GENESIS_INGEST_ROOT) if mission is not None else None
    files, skipped = files_resolve(paths, root=root, max_files=settings.GENESIS_INGEST_MAX_FILES,
                                   max_bytes=settings.GENESIS_INGEST_MAX_FILE_BYTES)
    say = progress or (lambda _message: None)
    stop = cancelled or (lambda: False)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="genesis-ingest-") as scratch, \
            Reader(files, scratch=Path(scratch), options=parsed,
                   max_columns=settings.GENESIS_INGEST_MAX_COLUMNS) as reader:
        loaded = []
        for index, file in enumerate(files, 1):
            if stop():
                raise IngestCancelled()
            item = reader.load(file, index=index)
            loaded.append(item)
            say(f"read {file.shown}: {item.rows:,} rows, {len(item.columns)} columns")
        with target_class(connection) as target:
            target.replace(loaded, reader, cancelled=stop,
                           on_table=lambda item: say(f"loaded {item.file.shown} into {item.file.table}"))
            where, created = target.where(), target.created
    return IngestReport(connection=connection.name, engine=connection.engine, where=where, created=created,
                        tables=[TableReport.of(item) for item in loaded], skipped=skipped,
                        options=parsed.as_dict(), elapsed_ms=round((time.monotonic() - started) * 1000, 1))
