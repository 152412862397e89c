"""Which files an ingest reads and the table each one lands in.

A path is a file or a folder; a folder gives the files directly in it whose extension names a format (sorted by
name; hidden files, subfolders and other extensions are skipped and reported). The format comes from the extension:
``.csv``/``.tsv`` (DuckDB's CSV sniffer finds the delimiter, header and types), ``.parquet``, ``.json`` (an array
of records or one record per line) and ``.ndjson``/``.jsonl`` (one record per line).

A table is named after its file (``table_name_for``): the stem folded to ASCII, lower case, every run of other
characters turned into one ``_``, at most 63 characters (PostgreSQL's limit), prefixed with ``t_`` when it would
start with a digit or with an engine's reserved prefix (``sqlite_``, ``pg_``). Two files that would land in the same
table are refused together, before anything is read.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.ingest.errors import IngestError

FORMATS: dict[str, str] = {
    ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson",
}
MAX_NAME = 63  # PostgreSQL truncates longer identifiers; SQLite has no limit but gets the same names.
RESERVED_PREFIXES = ("sqlite_", "pg_")
# DuckDB reads a path with these as a pattern of several files.
GLOB_CHARACTERS = frozenset("*?[]{}")


@dataclass(frozen=True)
class SourceFile:
    """One file to load: where it is, how the person named it, its format, its table and its size."""

    path: Path
    shown: str
    format: str
    table: str
    size: int


def table_name_for(path: Path | str) -> str:
    """The table a file lands in: ``Claims 2024.csv`` -> ``claims_2024``, ``2024-q1.parquet`` -> ``t_2024_q1``."""
    stem = Path(path).name
    suffix = Path(stem).suffix
    if suffix.lower() in FORMATS:
        stem = stem[: -len(suffix)]
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^a-z0-9]+", "_", ascii_stem.lower()).strip("_")
    if not name:
        raise IngestError(f"{path}: the file name has no letter or digit to name a table after; rename the file.",
                          field="paths", file=str(path))
    if name[0].isdigit() or name.startswith(RESERVED_PREFIXES):
        name = f"t_{name}"
    return name[:MAX_NAME].rstrip("_")


def files_resolve(paths: Iterable[str | os.PathLike], *, root: Path | None, max_files: int,
                  max_bytes: int) -> tuple[list[SourceFile], list[str]]:
    """The files ``paths`` name, each with its table, and what was skipped in the folders. ``root``: every path must
    lie under it (relative paths are taken from it); ``None`` reads any path (relative to the current folder).
    Refuses, naming the path: nothing to load, a missing path, a path outside ``root``, a file whose format is not
    known, an empty or too large file, too many files, and two files for one table."""
    given = [str(p) for p in paths if str(p).strip()]
    if not given:
        raise IngestError("No file or folder to load: name at least one.", field="paths")
    base = root.resolve() if root is not None else None
    found: dict[Path, str] = {}
    skipped: list[str] = []
    for text in given:
        try:
            _expand(text, base, found, skipped)
        except OSError as error:  # an unreadable folder: permissions, a link to nowhere, ...
            raise IngestError(f"{text}: {error.strerror or error}.", field="paths", file=text) from None
    if len(found) > max_files:
        raise IngestError(f"{len(found)} files to load; at most {max_files} are loaded at once "
                          "(GENESIS_INGEST_MAX_FILES).", field="paths")
    files = []
    for path, shown in found.items():
        try:
            files.append(_source_file(path, shown, max_bytes=max_bytes))
        except OSError as error:
            raise IngestError(f"{shown}: {error.strerror or error}.", field="paths", file=shown) from None
    by_table: dict[str, list[str]] = {}
    for file in files:
        by_table.setdefault(file.table, []).append(file.shown)
    clashes = [f"{' and '.join(shown)} would all load into table {table}"
               for table, shown in by_table.items() if len(shown) > 1]
    if clashes:
        raise IngestError(f"One table per file: {'; '.join(clashes)}. Rename or move one of them.", field="paths")
    return files, skipped


def _expand(text: str, base: Path | None, found: dict[Path, str], skipped: list[str]) -> None:
    """Add the file ``text`` names, or the loadable files of the folder it names, to ``found`` (resolved path ->
    the name as given)."""
    path = _resolved(text, base)
    if path.is_dir():
        entries = sorted(path.iterdir(), key=lambda p: p.name)
        loadable = []
        for entry in entries:
            shown = str(Path(text) / entry.name)
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                skipped.append(f"{shown}/ (a folder: name it to load its files)")
            elif not entry.is_file() or entry.suffix.lower() not in FORMATS:
                skipped.append(f"{shown} (not {_known()})")
            else:
                loadable.append((_resolved(shown, base), shown))
        if not loadable:
            raise IngestError(f"{text}: the folder holds no {_known()} file.", field="paths", file=text)
        for resolved, shown in loadable:
            found.setdefault(resolved, shown)
    elif path.is_file():
        suffix = Path(text).suffix
        if suffix.lower() not in FORMATS:
            raise IngestError(f"{text}: the format is not known from the extension {suffix or '(none)'}; "
                              f"ingest reads {_known()} files.", field="paths", file=text)
        found.setdefault(path, text)
    else:
        raise IngestError(f"{text}: no such file or folder.", field="paths", file=text)


def _known() -> str:
    return ", ".join(FORMATS)


def _resolved(text: str, base: Path | None) -> Path:
    path = Path(text).expanduser()
    if base is None:
        return path.resolve()
    resolved = (base / path).resolve()  # an absolute ``path`` stays itself
    if not resolved.is_relative_to(base):
        raise IngestError(f"{text} is outside the ingest folder ({base}, GENESIS_INGEST_ROOT): a mission's ingest "
                          "reads files only under it.", field="paths", file=text)
    return resolved


def _source_file(path: Path, shown: str, *, max_bytes: int) -> SourceFile:
    """``path`` (resolved) is what is read; the format and the table come from the name as given (a link's own)."""
    if GLOB_CHARACTERS & set(str(path)):
        raise IngestError(f"{shown}: a path with any of {' '.join(sorted(GLOB_CHARACTERS))} in it is not read (DuckDB "
                          "would take it for a pattern of several files); rename the file or its folder.",
                          field="paths", file=shown)
    size = path.stat().st_size
    if size == 0:
        raise IngestError(f"{shown}: the file is empty.", field="paths", file=shown)
    if size > max_bytes:
        raise IngestError(f"{shown}: the file is {size:,} bytes; at most {max_bytes:,} are loaded "
                          "(GENESIS_INGEST_MAX_FILE_BYTES).", field="paths", file=shown)
    given = Path(shown)
    return SourceFile(path=path, shown=shown, format=FORMATS[given.suffix.lower()], table=table_name_for(given),
                      size=size)
