"""Page-number pagination that refuses a malformed ``page`` or ``page_size`` instead of guessing."""

from __future__ import annotations

import re

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

_WHOLE = re.compile(r"[0-9]{1,19}")


class StrictPageNumberPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200

    def _positive_int(self, request, name: str, maximum: int | None = None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        # int() would also take " 2", "1_0" and digits of other scripts; the schema says an integer.
        if not _WHOLE.fullmatch(raw):
            raise ValidationError({name: [f"Must be a whole number, not {raw[:40]!r}."]})
        value = int(raw)
        if value < 1 or (maximum is not None and value > maximum):
            bound = f"between 1 and {maximum}" if maximum else "1 or more"
            raise ValidationError({name: [f"Must be {bound}."]})
        return value

    def get_page_size(self, request):
        return self._positive_int(request, self.page_size_query_param, self.max_page_size) or self.page_size

    def paginate_queryset(self, queryset, request, view=None):
        self._positive_int(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters
