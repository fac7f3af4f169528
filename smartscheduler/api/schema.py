"""The OpenAPI schema documents every answer an operation can give, errors included.

drf-spectacular documents only the success responses a view declares; the error answers of
`smartscheduler.api.errors` (docs/api.md, "Errors") are the same for every view, so they are
added here, once, from what the view is:
- 400 (per-field messages, or `detail` and `code` for a domain rule) when it takes input: a body
  or query parameters;
- 401 and 403 when its permissions require a signed-in user with a role;
- 404 when its path names a row;
- 429 with `Retry-After` when it is throttled.
409 stays declared per view (`responses={409: OpenApiResponse(description=...)}`): only some
operations can conflict; an error a view declares without a body gets the `Error` body here.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ERROR = inline_serializer(
    "Error",
    {
        "detail": serializers.CharField(),
        "code": serializers.CharField(required=False, help_text="Set for domain errors."),
    },
)
# `{"field": ["message", ...]}` (nested for objects), or `{"detail", "code"}` for a domain rule.
INVALID = inline_serializer(
    "ValidationError",
    {"non_field_errors": serializers.ListField(child=serializers.CharField(), required=False)},
)

STANDARD_ERRORS = {
    "400": OpenApiResponse(INVALID, description="Invalid input: messages per field."),
    "401": OpenApiResponse(ERROR, description="Not signed in (`WWW-Authenticate: Token`)."),
    "403": OpenApiResponse(ERROR, description="Signed in, but the role may not do this."),
    "404": OpenApiResponse(ERROR, description="No such row (or not visible to the caller)."),
    "429": OpenApiResponse(ERROR, description="Too many requests; retry after `Retry-After`."),
}
RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds until the next request is allowed.",
        "required": True,
    }
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(STANDARD_ERRORS[code], code)
        for code, response in responses.items():
            if code.startswith("4") and "content" not in response:
                response["content"] = self._get_response_for_code(ERROR, code)["content"]
        if "429" in responses:
            responses["429"].setdefault("headers", {}).update(RETRY_AFTER)
        return responses

    def _error_codes(self) -> list[str]:
        codes = []
        has_query = any(p.get("in") == "query" for p in self._get_parameters())
        if self.method in ("POST", "PUT", "PATCH") or has_query:
            codes.append("400")
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.view.get_throttles():
            codes.append("429")
        return codes
