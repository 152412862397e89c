"""One error format for the whole API.

Every error body is ``{"code": ..., "detail": ..., "errors": {field: [messages]}}``. Field errors are keyed by
the field at fault (``non_field_errors`` when none is); a refused transition adds ``transition`` (entity,
from, to, allowed) and answers 409; a dependency cycle adds ``path``. A body Django will not read (over the size
limit, too many fields) is a 400 in this format too, never Django's HTML "Bad Request" page.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from genesis.errors import unreadable_reason
from genesis.exceptions import DependencyCycle, DomainError, InvalidTransition
from genesis.uploads import UploadTooLarge

logger = logging.getLogger("genesis.api")

# Domain error codes that mean "the state changed or does not allow this", not "your input is wrong".
CONFLICT_CODES = frozenset({"invalid_transition", "stale", "stale_lease", "run_active", "duplicate", "conflict",
                            "mission_finished", "signoff_missing"})
# A service that checks the actor's role itself refuses with this code: the API answers 403.
FORBIDDEN_CODES = frozenset({"forbidden", "permission_denied"})


class DomainAPIError(exceptions.APIException):
    """A service's refusal, carried through DRF so the transaction is rolled back like any API error."""

    def __init__(self, error: DomainError):
        self.error = error
        if error.code in FORBIDDEN_CODES:
            self.status_code = status.HTTP_403_FORBIDDEN
        elif isinstance(error, InvalidTransition) or error.code in CONFLICT_CODES:
            self.status_code = status.HTTP_409_CONFLICT
        else:
            self.status_code = status.HTTP_400_BAD_REQUEST
        super().__init__(detail=error.message, code=error.code)


def _field_errors(data) -> dict:
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        return {"non_field_errors": data}
    return {"non_field_errors": [data]}


def _unreadable_request(exc: SuspiciousOperation) -> exceptions.APIException:
    """Django refuses a request body it will not read (too big, too many fields) with an exception that would
    otherwise become its HTML "Bad Request" page: the API answers the same 400 in its own format."""
    logging.getLogger(f"django.security.{exc.__class__.__name__}").warning("API request refused: %s", exc)
    refusal = unreadable_reason(exc)
    if refusal is None:
        return exceptions.ParseError("The request could not be read.", code="parse_error")
    code, reason = refusal
    if isinstance(exc, UploadTooLarge):
        return DomainAPIError(DomainError(reason, field="file", code=code))
    return exceptions.ParseError(reason, code=code)


def exception_handler(exc, context):
    if isinstance(exc, SuspiciousOperation):
        exc = _unreadable_request(exc)
    elif isinstance(exc, DomainError):
        exc = DomainAPIError(exc)
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, ProtectedError | RestrictedError):
        exc = DomainAPIError(DomainError(
            "This object is still used (by missions, tasks or history) and cannot be deleted.", code="conflict"
        ))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, DomainAPIError):
        error = exc.error
        body = {
            "code": error.code,
            "detail": error.message,
            # An error that lists several problems (a refused blueprint file) gives each its own line.
            "errors": {error.field or "non_field_errors": error.lines() if hasattr(error, "lines")
                       else [error.message]},
        }
        if isinstance(error, InvalidTransition):
            body["transition"] = {
                "entity": error.entity, "from": error.from_status, "to": error.to_status, "allowed": error.allowed,
            }
        if isinstance(error, DependencyCycle):
            body["path"] = error.path
    elif isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(response.data)
        # A refusal with its own code and wording (unknown query parameters) says so; the rest is "invalid".
        body = {"code": getattr(exc, "body_code", "invalid"),
                "detail": getattr(exc, "body_detail", None) or _summary(errors), "errors": errors,
                **getattr(exc, "body_extra", {})}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        codes = exc.get_codes()
        code = codes.get("detail", exc.default_code) if isinstance(codes, dict) else codes
        body = {"code": code if isinstance(code, str) else exc.default_code, "detail": str(detail), "errors": {}}
    if response.status_code >= 500:
        logger.error("API error %s: %s", response.status_code, body["detail"])
    response.data = body
    return response


def _summary(errors: dict) -> str:
    fields = [name for name in errors if name != "non_field_errors"]
    if not fields:
        first = errors.get("non_field_errors") or ["Invalid input."]
        return str(first[0]) if isinstance(first, list) and first else "Invalid input."
    return "Invalid input in: " + ", ".join(fields) + "."


class ErrorSerializer(serializers.Serializer):
    """The body of every error response (documentation only)."""

    code = serializers.CharField(
        help_text="Machine-readable reason, e.g. invalid, not_found, invalid_transition, cycle."
    )
    detail = serializers.CharField(help_text="What went wrong, in words a person can act on.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages keyed by the field at fault (non_field_errors when none is).",
    )
    transition = serializers.DictField(
        required=False, help_text="For a refused status change: entity, from, to, allowed."
    )
    path = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="For a dependency cycle: the task keys of the loop."
    )
