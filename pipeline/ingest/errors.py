"""The one error an ingest refuses with: what is wrong, in which input, and where in the file when known."""

from __future__ import annotations

from genesis.exceptions import DomainError


class IngestError(DomainError):
    """A refused ingest. ``file`` is the file at fault as the person named it, ``line`` its line when known;
    ``field`` names the input (``paths``, ``options.delimiter``, ``connection``)."""

    def __init__(self, message: str, *, field: str | None = "paths", code: str = "ingest_refused",
                 file: str | None = None, line: int | None = None):
        super().__init__(message, field=field, code=code)
        self.file = file
        self.line = line


class IngestCancelled(IngestError):
    def __init__(self) -> None:
        super().__init__("Cancelled: nothing was loaded.", field=None, code="cancelled")
