"""The pages a person sees when a request goes wrong: 400, 403, 404 and 500 in the site's own layout, with the
navigation and a next step. Under ``/api/`` the same errors answer in the API's error format instead, and a
refused htmx fragment request gets the reason as text.

The 500 page is rendered from a plain context (no request, no context processors, no session or database
read): whatever broke the request must not break its error page too."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import (
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotFound,
    HttpResponseServerError,
    JsonResponse,
)
from django.template import loader
from django.views.decorators.csrf import requires_csrf_token

from genesis.uploads import UploadTooLarge

logger = logging.getLogger("genesis.errors")


def _api(request) -> bool:
    return request.path_info.startswith("/api/")


def _reason(exception) -> str:
    """The sentence a view gave its PermissionDenied (written for people), or nothing."""
    message = exception.args[0] if exception is not None and getattr(exception, "args", None) else ""
    return message if isinstance(message, str) else ""


def unreadable_reason(exception) -> tuple[str, str] | None:
    """``(code, sentence)`` for a request body Django refuses to read (too big, too many fields or files), naming the
    limit; None for any other refusal. The pages and the API say the same."""
    if isinstance(exception, UploadTooLarge):
        return "file_too_large", exception.message
    if isinstance(exception, RequestDataTooBig):
        return "too_large", (f"The request body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes this "
                             "server reads (files excepted): send large content as a file upload.")
    if isinstance(exception, TooManyFieldsSent):
        return "too_many_fields", (f"The request has more than the {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields "
                                   "or parameters this server reads.")
    if isinstance(exception, TooManyFilesSent):
        return "too_many_files", (f"The request has more than the {settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files "
                                  "this server reads.")
    return None


def bad_request_page(request, reason: str = "") -> HttpResponseBadRequest:
    """The site's 400 page saying what was wrong (or the sentence alone to an htmx fragment request). Rendered with
    the request when it can be (the navigation of the person signed in); a request too broken for that (a host
    the site does not serve) gets the page without it."""
    # Read from the headers: a middleware may refuse the request before django-htmx's middleware has run.
    if request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true":
        return HttpResponseBadRequest(reason or "The request could not be read.",
                                      content_type="text/plain; charset=utf-8")
    context = {"reason": reason}
    try:
        page = loader.render_to_string("400.html", context, request=request)
    except Exception:  # noqa: BLE001 - the page must not fail; it is drawn without the request instead
        logger.warning("400 page drawn without its request", exc_info=True)
        page = loader.render_to_string("400.html", context)
    return HttpResponseBadRequest(page)


@requires_csrf_token
def bad_request(request, exception=None):
    """Django's 400: a request it refuses to read or trust (a body over the limits, a bad host, a broken cookie)."""
    refusal = unreadable_reason(exception)
    code, reason = refusal if refusal else ("bad_request", "")
    if _api(request):
        return JsonResponse({"code": code, "detail": reason or "The request could not be read."}, status=400)
    return bad_request_page(request, reason)


@requires_csrf_token
def forbidden(request, exception=None):
    reason = _reason(exception)
    if _api(request):
        return JsonResponse({"code": "permission_denied",
                             "detail": reason or "You do not have permission to perform this action."}, status=403)
    htmx = getattr(request, "htmx", None)
    if htmx and not htmx.boosted:  # a fragment request: the reason only, never a whole page inside the page
        return HttpResponseForbidden(reason or "Your role on this mission does not allow this action.",
                                     content_type="text/plain; charset=utf-8")
    return HttpResponseForbidden(loader.render_to_string("403.html", {"reason": reason}, request=request))


@requires_csrf_token
def not_found(request, exception=None):
    if _api(request):
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    return HttpResponseNotFound(loader.render_to_string("404.html", {"path": request.path}, request=request))


def server_error(request):
    if _api(request):
        return JsonResponse({"code": "error", "detail": "A server error occurred; it has been logged."}, status=500)
    return HttpResponseServerError(loader.get_template("500.html").render({}))
