"""Previews of artifacts for the pages: SQL highlighted, CSV and JSON records as tables, Markdown rendered,
anything else as escaped text. Only the first ``PREVIEW_BYTES`` of a file are read.

A preview never fails the page: a file that is binary, not valid CSV or JSON, or JSON too large to read whole is
shown as "cannot preview" with the reason (the page offers the download instead)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import PurePath

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import JsonLexer, SqlLexer, YamlLexer

from genesis.documents import JSONTooDeep, loads_json

PREVIEW_BYTES = 512 * 1024
MAX_ROWS = 200
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")  # raw HTML is escaped, never passed on


@dataclass
class Preview:
    """What the preview shows: ``mode`` is sql, table, markdown, code, text, link or none."""

    mode: str
    html: SafeString | str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False
    note: str = ""

    @property
    def cannot(self) -> bool:
        """No preview is shown: the page says why and offers the download."""
        return self.mode == "none"


def cannot_preview(reason: str) -> Preview:
    return Preview("none", note=f"Cannot preview this file: {reason}. Download it to open it.")


def _kind_of(name: str, content_type: str, kind: str) -> str:
    suffix = PurePath(name).suffix.lower()
    if kind == "sql" or suffix == ".sql":
        return "sql"
    if suffix == ".csv" or content_type == "text/csv":
        return "csv"
    if suffix == ".json" or content_type == "application/json":
        return "json"
    if suffix in {".md", ".markdown"} or content_type == "text/markdown":
        return "markdown"
    if suffix in {".yml", ".yaml"}:
        return "yaml"
    if content_type.startswith("text/") or suffix in {".txt", ".log"} or kind == "log":
        return "text"
    return "binary"


def _code(text: str, lexer) -> SafeString:
    return mark_safe(highlight(text, lexer, HtmlFormatter(cssclass="highlight")))  # noqa: S308 (pygments escapes)


def _records_table(records: list) -> tuple[list[str], list[list[str]]] | None:
    if not records or not all(isinstance(r, dict) for r in records):
        return None
    header: list[str] = []
    for record in records[:MAX_ROWS]:
        for key in record:
            if key not in header:
                header.append(str(key))
    rows = [[_cell(record.get(key)) for key in header] for record in records[:MAX_ROWS]]
    return header, rows


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_text(*, name: str, text: str, content_type: str = "", kind: str = "", truncated: bool = False) -> Preview:
    mode = _kind_of(name, content_type, kind)
    if mode == "sql":
        return Preview("sql", html=_code(text, SqlLexer()), truncated=truncated)
    if mode == "csv":
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error as error:
            return cannot_preview(f"it is not valid CSV ({error})")
        if not rows:
            return Preview("text", html=escape(text), truncated=truncated)
        return Preview("table", header=rows[0], rows=rows[1 : MAX_ROWS + 1],
                       truncated=truncated or len(rows) > MAX_ROWS + 1)
    if mode == "json":
        try:
            data = loads_json(text)
        except JSONTooDeep as error:
            return Preview("text", html=escape(text), truncated=truncated, note=f"Not shown as JSON: {error.msg}.")
        except ValueError as error:
            if truncated:
                return cannot_preview(f"it is larger than {PREVIEW_BYTES // 1024:,} KB, too large to read as JSON here")
            return cannot_preview(f"it is not valid JSON ({error})")
        for candidate in (data, data.get("rows") if isinstance(data, dict) else None):
            table = _records_table(candidate) if isinstance(candidate, list) else None
            if table:
                return Preview("table", header=table[0], rows=table[1],
                               truncated=truncated or len(candidate) > MAX_ROWS)
        pretty = json.dumps(data, indent=2, ensure_ascii=False)
        return Preview("code", html=_code(pretty, JsonLexer()), truncated=truncated)
    if mode == "markdown":
        return Preview("markdown", html=mark_safe(_markdown.render(text)), truncated=truncated)  # noqa: S308
    if mode == "yaml":
        return Preview("code", html=_code(text, YamlLexer()), truncated=truncated)
    return Preview("text", html=escape(text), truncated=truncated)


def artifact_preview(artifact) -> Preview:
    """Read the start of an artifact's file and render it for its kind."""
    if artifact.url:
        return Preview("link")
    if not artifact.file:
        return Preview("none", note="No file is attached.")
    mode = _kind_of(artifact.name, artifact.content_type or "", artifact.kind)
    if mode == "binary":
        return cannot_preview("it is not a text file")
    try:
        with artifact.file.open("rb") as handle:
            raw = handle.read(PREVIEW_BYTES + 1)
    except OSError:
        return Preview("none", note="The file could not be read from storage.")
    truncated = len(raw) > PREVIEW_BYTES
    raw = raw[:PREVIEW_BYTES]
    if b"\x00" in raw:
        return cannot_preview("it holds binary data, not text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        if not truncated or error.start < len(raw) - 3:  # a character cut at the preview's end is no fault
            return cannot_preview("it is not UTF-8 text")
        text = raw[: error.start].decode("utf-8", errors="replace")
    return render_text(name=artifact.name, text=text, content_type=artifact.content_type or "",
                       kind=artifact.kind, truncated=truncated)


def pygments_css() -> str:
    return HtmlFormatter(cssclass="highlight").get_style_defs(".highlight")
