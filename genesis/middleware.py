"""Request checks every page and the API share.

A NUL character in a query parameter cannot be stored, compared or looked up by PostgreSQL (it refuses the query
with an error, a 500 to the caller) and means nothing in a filter: any request whose query string holds one, in a
parameter's name or value, is a 400 that names the parameter, before any view runs. The API answers in its own
error format; a page answers with the site's 400 page (an htmx fragment request, with the sentence alone)."""

from __future__ import annotations

from django.core.exceptions import TooManyFieldsSent
from django.http import JsonResponse

from genesis.errors import bad_request_page

NUL = "\x00"


def _shown(name: str) -> str:
    return name.replace(NUL, "\\x00")


def nul_parameters(request) -> list[str]:
    """The query parameters (as sent, NUL written as ``\\x00``) whose name or a value holds a NUL character."""
    try:
        lists = request.GET.lists()
    except TooManyFieldsSent:  # the view answers that one (the API in its own format)
        return []
    return [_shown(name) for name, values in lists if NUL in name or any(NUL in value for value in values)]


class RefuseNulQueryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        wrong = nul_parameters(request)
        if not wrong:
            return self.get_response(request)
        message = "NUL characters are not allowed in a query parameter."
        if request.path_info.startswith("/api/"):
            return JsonResponse({"code": "invalid", "detail": f"Invalid input in: {', '.join(wrong)}.",
                                 "errors": {name: [message] for name in wrong}}, status=400)
        return bad_request_page(request, f"The query parameter {', '.join(wrong)} holds a NUL character, which is not "
                                         "allowed.")
