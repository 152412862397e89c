"""Logging helpers for ``LOGGING`` in the settings."""

from __future__ import annotations

import logging


class RoutineClientErrors(logging.Filter):
    """A refused or missing page (a 4xx answer) is routine: one line that says what and why, without the
    traceback Django attaches to a PermissionDenied or Http404. Server errors (5xx) keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is None or status >= 500 or not record.exc_info:
            return True
        error = record.exc_info[1]
        message = record.getMessage()
        reason = str(error) if error is not None else ""
        record.msg = f"{message} ({reason})" if reason and reason not in message else message
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True
