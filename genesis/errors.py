"""The pages a person sees when a request goes wrong: 403, 404 and 500 in the site's own layout, with the
navigation and a next step. Under ``/api/`` the same errors answer in the API's error format instead, and a
refused htmx fragment request gets the reason as text.

The 500 page is rendered from a plain context (no request, no context processors, no session or database
read): whatever broke the request must not break its error page too."""

from __future__ import annotations

from django.http import HttpResponseForbidden, HttpResponseNotFound, HttpResponseServerError, JsonResponse
from django.template import loader
from django.views.decorators.csrf import requires_csrf_token


def _api(request) -> bool:
    return request.path_info.startswith("/api/")


def _reason(exception) -> str:
    """The sentence a view gave its PermissionDenied (written for people), or nothing."""
    message = exception.args[0] if exception is not None and getattr(exception, "args", None) else ""
    return message if isinstance(message, str) else ""


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
