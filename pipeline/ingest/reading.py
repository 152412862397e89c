"""Reading the files with DuckDB: its CSV sniffer and its Parquet and JSON readers infer the columns and types; each
file is read whole into a table of a private DuckDB database before any target is touched, so a malformed file is
refused (file, line, problem) while the target is still as it was.

The DuckDB database lives in memory and spills to a scratch folder. It is sandboxed: it may read exactly the files
of this ingest and write only to its scratch folder (``enable_external_access`` off, ``allowed_paths``), it never
installs or loads an extension (the wheel's own json and parquet are built in), and its configuration is locked.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipeline.ingest.errors import IngestError
from pipeline.ingest.files import SourceFile
from pipeline.ingest.landing import landing_for

BATCH_ROWS = 10_000
DUCKDB_SAMPLE_ROWS = 20_480  # DuckDB's default sample for type inference (CSV and JSON)
ENCODINGS = ("utf-8", "utf-16", "latin-1")
# A JSON array's malformed record is located (its line) by re-reading the file with Python's parser up to this size.
LOCATE_JSON_BYTES = 32 * 1024 * 1024
MAX_SAMPLE_SIZE = 100_000_000
# The malformed CSV lines DuckDB keeps aside for the refusal (the first is named, the rest counted).
REJECTS_KEPT = 1000


@dataclass(frozen=True)
class IngestOptions:
    """How to read the files: ``delimiter``, ``header`` and ``encoding`` for CSV (sniffed when not given), ``skip``
    (CSV: lines above the header to leave out, such as a title); ``sample_size``: how many rows (CSV) or records
    (JSON) types are inferred from, -1 for the whole file."""

    delimiter: str | None = None
    header: bool | None = None
    encoding: str | None = None
    skip: int | None = None
    sample_size: int | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> IngestOptions:
        """Options from a task config or the command line; refuses an unknown or malformed one, naming it."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"delimiter", "header", "encoding", "skip", "sample_size"})
        if unknown:
            raise IngestError(f"Unknown option {unknown[0]!r}; the options are delimiter, header, encoding, skip and "
                              "sample_size.", field=f"options.{unknown[0]}")
        delimiter, header, skip = raw.get("delimiter"), raw.get("header"), raw.get("skip")
        encoding, sample_size = raw.get("encoding"), raw.get("sample_size")
        if delimiter is not None and (not isinstance(delimiter, str) or not 1 <= len(delimiter.encode()) <= 4
                                      or set(delimiter) & set("\r\n\"")):
            raise IngestError("The CSV delimiter is one to four bytes, not a quote or a line break "
                              f"(got {delimiter!r}).", field="options.delimiter")
        if header is not None and not isinstance(header, bool):
            raise IngestError(f"header is true or false (got {header!r}).", field="options.header")
        if encoding is not None and encoding not in ENCODINGS:
            raise IngestError(f"encoding is one of {', '.join(ENCODINGS)} (got {encoding!r}).",
                              field="options.encoding")
        if sample_size is not None and (isinstance(sample_size, bool) or not isinstance(sample_size, int)
                                        or not (sample_size == -1 or 1 <= sample_size <= MAX_SAMPLE_SIZE)):
            raise IngestError(f"sample_size is a number of rows from 1 to {MAX_SAMPLE_SIZE:,}, or -1 for the whole "
                              f"file (got {sample_size!r}).", field="options.sample_size")
        if skip is not None and (isinstance(skip, bool) or not isinstance(skip, int) or not 0 <= skip <= 1000):
            raise IngestError(f"skip is a number of lines from 0 to 1,000 (got {skip!r}).", field="options.skip")
        return cls(delimiter=delimiter, header=header, encoding=encoding, skip=skip, sample_size=sample_size)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class Column:
    """A column as DuckDB inferred it."""

    name: str
    type: str


@dataclass
class LoadedFile:
    """A file read whole into DuckDB: its columns, its rows and how long reading took."""

    file: SourceFile
    relation: str
    columns: list[Column]
    rows: int
    sha256: str
    read_seconds: float
    write_seconds: float = 0.0
    declared: list[str] = field(default_factory=list)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Reader:
    """The private DuckDB database of one ingest. Use as a context manager."""

    def __init__(self, files: list[SourceFile], *, scratch: Path, options: IngestOptions, max_columns: int):
        self.options = options
        self.max_columns = max_columns
        self.scratch = scratch
        self.db = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": False, "autoload_known_extensions": False,
            "allow_community_extensions": False, "temp_directory": str(scratch),
        })
        try:
            self.db.execute("SET TimeZone = 'UTC'")
            self.db.execute("SET allowed_paths = ?", [[str(f.path) for f in files]])
            self.db.execute("SET allowed_directories = ?", [[str(scratch)]])
            self.db.execute("SET enable_external_access = false")
            self.db.execute("SET lock_configuration = true")
        except BaseException:
            self.db.close()
            raise

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def _source(self, file: SourceFile, *, index: int, sniff: bool = False) -> tuple[str, list[Any]]:
        """The DuckDB table function that reads ``file`` (``sniff``: DuckDB's CSV sniffer on the same terms), with its
        parameters."""
        named: dict[str, Any] = {}
        options = self.options
        if file.format == "csv":
            # No comment character: the sniffer would otherwise guess one (say #) and drop the lines starting with it.
            named = {"delim": options.delimiter, "header": options.header, "encoding": options.encoding,
                     "skip": options.skip, "sample_size": options.sample_size, "comment": ""}
            if sniff:
                function, named["ignore_errors"] = "sniff_csv", True
            else:
                # Lines that do not fit are kept aside (with their line numbers) instead of stopping the read, so that
                # a malformed line within the sniffer's sample does not make it guess a wrong dialect.
                function = "read_csv"
                named |= {"store_rejects": True, "rejects_table": f"rejects_{index}",
                          "rejects_scan": f"reject_scans_{index}", "rejects_limit": REJECTS_KEPT}
        elif file.format == "parquet":
            function = "read_parquet"
        else:
            named = {"format": "newline_delimited" if file.format == "ndjson" else "auto",
                     "sample_size": options.sample_size}
            function = "read_json"
        named = {k: v for k, v in named.items() if v is not None}
        arguments = "".join(f", {key} = ?" for key in named)
        return f"{function}(?{arguments})", [str(file.path), *named.values()]

    def load(self, file: SourceFile, *, index: int) -> LoadedFile:
        """Read ``file`` whole into its own DuckDB table; refuses a malformed file (naming the line and the problem
        when DuckDB or the JSON locator knows them) and a file with more than ``max_columns`` columns."""
        started = time.monotonic()
        source, params = self._source(file, index=index)
        relation = f"file_{index}"
        try:
            self._refuse_skipped_lines(file, index=index)
            described = self.db.execute(f"DESCRIBE SELECT * FROM {source}", params).fetchall()  # noqa: S608
            columns = [Column(name=row[0], type=row[1]) for row in described]
            if len(columns) > self.max_columns:
                raise IngestError(f"{file.shown}: {len(columns):,} columns; at most {self.max_columns:,} are loaded "
                                  "(GENESIS_INGEST_MAX_COLUMNS).", file=file.shown)
            self.db.execute(f"CREATE TABLE {relation} AS SELECT * FROM {source}", params)  # noqa: S608
            if file.format == "csv":
                self._refuse_rejected_lines(file, index=index, columns=columns)
            rows = self.db.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]  # noqa: S608
        except duckdb.Error as error:
            raise self._refusal(file, error) from None
        with file.path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        return LoadedFile(file=file, relation=relation, columns=columns, rows=int(rows), sha256=digest,
                          read_seconds=time.monotonic() - started)

    def _refuse_skipped_lines(self, file: SourceFile, *, index: int) -> None:
        """The sniffer may leave out leading lines that do not fit the columns it found below them (a title above
        the header): ingest never drops a line unasked, only the ``skip`` option does."""
        if file.format != "csv" or self.options.skip is not None:
            return
        sniff, params = self._source(file, index=index, sniff=True)
        skipped = self.db.execute(f"SELECT SkipRows FROM {sniff}", params).fetchone()[0]  # noqa: S608
        if skipped:
            raise IngestError(
                f"{file.shown}, line 1: the first {skipped} line(s) do not have the columns DuckDB's sniffer found "
                f"from line {skipped + 1} on. If they are a title or notes above the header, give the option skip: "
                f"{skipped}; otherwise correct them.", file=file.shown, line=1)

    def _refuse_rejected_lines(self, file: SourceFile, *, index: int, columns: list[Column]) -> None:
        """Refuse a CSV file any line of which DuckDB kept aside, naming the first one and how many there are."""
        # A line may have several errors (a short line: its first value's type, then the missing columns); the
        # line's shape is named before a value's type.
        table = f"rejects_{index}"
        rejected = self.db.execute(
            f"SELECT line, error_type, error_message, csv_line, (SELECT count(DISTINCT line) FROM {table}) "  # noqa: S608
            f"FROM {table} ORDER BY line, error_type = 'CAST', column_idx LIMIT 1").fetchone()
        if rejected is None:
            return
        line, kind, message, text, count = rejected
        problem = f"{message.strip().rstrip('.')} (the line reads: {text[:200]!r})"
        if count > 1:
            more = f"{count - 1:,}" if count < REJECTS_KEPT else f"{REJECTS_KEPT - 1:,} or more"
            problem += f"; {more} other line(s) do not fit either"
        if kind == "CAST" and self.options.sample_size != -1:
            sample = self.options.sample_size or DUCKDB_SAMPLE_ROWS
            problem += (f". The column's type was inferred from the first {sample:,} rows; the option sample_size: -1 "
                        "infers types from the whole file")
        if len(columns) == 1 and kind == "TOO MANY COLUMNS":
            problem += ". If lines above the header are a title or notes, give the option skip"
        raise IngestError(f"{file.shown}, line {line}: {problem}. Nothing was loaded.", file=file.shown, line=line)

    def batches(self, loaded: LoadedFile, *, engine: str, size: int = BATCH_ROWS) -> Iterator[list[tuple]]:
        """The file's rows in order, ``size`` at a time, as values the ``engine``'s driver binds."""
        select = ", ".join(landing_for(c.type, engine).expression.format(quote(c.name)) for c in loaded.columns)
        cursor = self.db.execute(f"SELECT {select} FROM {loaded.relation}")  # noqa: S608 - quoted, inferred names
        while rows := cursor.fetchmany(size):
            yield rows

    def export(self, loaded: LoadedFile) -> Path:
        """The file's rows as a Parquet file in the scratch folder (for a DuckDB target: every type as inferred)."""
        path = self.scratch / f"{loaded.relation}.parquet"
        self.db.execute(f"COPY {loaded.relation} TO '{path}' (FORMAT parquet)")  # noqa: S608 - generated names
        return path

    def _refusal(self, file: SourceFile, error: duckdb.Error) -> IngestError:
        text = str(error).replace(str(file.path), file.shown)
        line = problem = None
        csv_error = re.search(r"CSV Error on Line: (\d+)", text)
        json_error = re.search(r"in (line|record/value) (\d+): (.*)", text)
        if csv_error:
            line = int(csv_error.group(1))
            after = text.split("Original Line:", 1)[1].splitlines()[1:] if "Original Line:" in text else []
            problem = next((part.strip() for part in after if part.strip()), "") or _first_line(text)
        elif json_error and "Malformed JSON" in text:
            # DuckDB's own position is a record number or, for one record per line, a line number one too high:
            # Python's parser finds the line and column.
            located = _locate_json_error(file.path)
            if located:
                line, problem = located
            else:
                problem = f"{json_error.group(1)} {json_error.group(2)} as DuckDB counts: {json_error.group(3).strip()}"
        elif json_error and json_error.group(1) == "line":
            line, problem = int(json_error.group(2)), json_error.group(3).strip()
        elif json_error:
            problem = f"record {json_error.group(2)}: {json_error.group(3).strip()}"
        else:
            problem = _first_line(text)
        where = f", line {line}" if line else ""
        return IngestError(f"{file.shown}{where}: {problem.rstrip('. ')}. Nothing was loaded.", file=file.shown,
                           line=line)


def _first_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "unreadable"
    return re.sub(r"^[A-Za-z ]*Error: ", "", first).strip()


def _locate_json_error(path: Path) -> tuple[int, str] | None:
    """The line and problem Python's JSON parser finds in a file DuckDB called malformed: one record per line is
    parsed line by line; an array is parsed whole, up to ``LOCATE_JSON_BYTES``."""
    with path.open("rb") as handle:
        is_array = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")
    if is_array:
        return _json_problem(path.read_bytes()) if path.stat().st_size <= LOCATE_JSON_BYTES else None
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            found = _json_problem(raw.rstrip(b"\r\n")) if raw.strip() else None
            if found:
                return number, found[1]
    return None


def _json_problem(data: bytes) -> tuple[int, str] | None:
    try:
        json.loads(data)
    except json.JSONDecodeError as error:
        return error.lineno, f"{error.msg} (column {error.colno})"
    except UnicodeDecodeError:
        return 1, "not UTF-8 text"
    except (ValueError, RecursionError):
        return None
    return None
