"""The OpenAPI schema: one tag per resource, descriptions written for API users, and every operation documents
the error responses it can give, in the one error format.

An operation's description is what its ``extend_schema(description=...)`` says, never a docstring: docstrings are
notes for the people who work on the code. The two aliases (``projects``, ``todos``) say what they are first."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema

from genesis.api.errors import ErrorSerializer

_ERRORS = {
    "400": "Invalid input: field errors keyed by field.",
    "401": "Not authenticated: send `Authorization: Bearer <key>` (or `Token <key>`), or sign in.",
    "403": "Authenticated, but your role in this mission does not allow it (stakeholders never write).",
    "404": "No such object, or it belongs to a mission you cannot see.",
    "409": "Refused by the current state: the transition is not allowed from here (which and why are named).",
    "415": "The request body's media type is not one this operation reads.",
    "429": "Too many requests or failed authentications from this address.",
}
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


API_PREFIX = "/api/v1/"

# The aliases some tools expect, and what they are another name for.
ALIASES = {
    "projects": "A project is a mission under another name: `/api/v1/projects/` is `/api/v1/missions/`, with the "
                "same objects, rules and answers.",
    "todos": "A todo is a task under another name: `/api/v1/todos/` is `/api/v1/tasks/`, with the same objects, "
             "rules and verbs; where a task says `mission` (in bodies, responses, the filter and error keys) a todo "
             "says `project`.",
}


class GenesisAutoSchema(AutoSchema):
    def get_tags(self) -> list[str]:
        """The resource the path is under (``missions``, ``todos``, ``check-results``, ...)."""
        if self.path.startswith(API_PREFIX):
            return [self.path[len(API_PREFIX):].split("/", 1)[0]]
        return super().get_tags()

    def get_description(self) -> str:
        return ""  # only what extend_schema says: a docstring is a developer's note, not API documentation

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        alias = ALIASES.get(self.get_tags()[0]) if operation is not None and path.startswith(API_PREFIX) else None
        if alias:
            operation["description"] = f"{alias}\n\n{operation.get('description', '')}".strip()
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, description in _ERRORS.items():
            if code in {"409", "415"} and self.method not in _UNSAFE:
                continue
            if code not in responses:
                body = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                body["description"] = description
                responses[code] = body
        return responses


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <key>`` in the schema, beside drf-spectacular's ``tokenAuth`` (``Token <key>``)."""

    target_class = "genesis.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "The API token (POST /api/v1/auth/token/) as `Authorization: Bearer <key>`."}


class StaffOnlyFieldScheme(OpenApiSerializerFieldExtension):
    """A staff-only field is text when sent, and text or null when read (null for everyone but staff)."""

    target_class = "genesis.api.fields.StaffOnlyCharField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "response":
            schema["nullable"] = True
        return schema
