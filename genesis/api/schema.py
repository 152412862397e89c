"""The OpenAPI schema: every operation documents the error responses it can give, in the one error format."""

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


class GenesisAutoSchema(AutoSchema):
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
