"""OpenAPI schema pieces: the common error responses of every operation and the name of each component.

Kept apart from config.core.api because DRF's views import config.core.api (throttles) while
drf-spectacular's schema module imports DRF's views. The API key scheme is declared beside the
authentication class it describes (accounts.authentication).
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny

from config.core.api import ErrorSerializer, Undeclared, required_scope

# Errors every operation can answer with; the views declare their success responses and specific errors.
COMMON_ERRORS = {
    "400": "The input is invalid (see fields).",
    "401": "The API key is missing, unknown, expired or revoked.",
    "403": (
        "Not allowed: the API key lacks the operation's scope (insufficient_scope), the account is not staff, "
        "or a session request lacks its CSRF token."
    ),
    "404": "Not found.",
    "405": "Method not allowed.",
    "406": "Only application/json is served.",
    "429": "Too many requests: retry after Retry-After seconds.",
}
WRITE_ERRORS = {
    "409": "Conflict: the price moved past your bound, or the Idempotency-Key was used for another request.",
    "415": "Send application/json.",
    "422": "A business rule refused it (insufficient funds or shares, market closed).",
}


class ForecastleAutoSchema(AutoSchema):
    """Adds the common error responses (in the one error shape) to every operation; public operations
    carry no security requirement."""

    def get_serializer_name(self, serializer: Any, direction: Any) -> str:
        # One API class per operation nests InputSerializer/OutputSerializer: name components after the API.
        return _nested_name(type(serializer)) or super().get_serializer_name(serializer, direction)

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """The operation, its description ending with the API key scope it needs (also as x-required-scope)."""
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        scope = required_scope(self.view, self.method)
        if isinstance(scope, Undeclared):
            note = "API keys cannot call this operation."
        elif scope is None:
            note = "Needs no API key scope."
        else:
            note = f"With an API key, the key needs the `{scope}` scope."
            operation["x-required-scope"] = scope
        operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        return operation

    def get_auth(self) -> list[dict[str, Any]]:
        auths = super().get_auth()
        # drf-spectacular lists the schemes plus an empty one ("optional") for a public operation; a public
        # operation needs no key, so it lists none and Swagger UI shows no lock on it. An operation is public
        # when every permission it checks lets an anonymous request through (AllowAny, or one that says so,
        # as the API key scope check does: it limits keys, not anonymous readers).
        permissions = self.view.get_permissions()
        if all(
            isinstance(permission, AllowAny) or getattr(permission, "anonymous_allowed", False)
            for permission in permissions
        ):
            return []
        return [] if {} in auths else auths

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = dict(COMMON_ERRORS)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            errors.update(WRITE_ERRORS)
        for code, description in errors.items():
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = description
                if code == "429":
                    response["headers"] = {
                        "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
                    }
                responses[code] = response
        return responses


def _nested_name(serializer_class: type) -> str | None:
    """MarketDetailApi.OutputSerializer -> MarketDetail; MarketTradesApi.InputSerializer -> MarketTradesInput."""
    owner, _, name = serializer_class.__qualname__.rpartition(".")
    if not owner.endswith("Api"):
        return None
    base = owner.removesuffix("Api")
    return base if name == "OutputSerializer" else base + name.removesuffix("Serializer")
