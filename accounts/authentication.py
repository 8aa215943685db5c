"""API key authentication for DRF: `Authorization: Token <key>`.

Keys are stored hashed (accounts.services.api_key_authenticate); a revoked or expired key or an
inactive user is refused with 401, like an unknown key. request.auth is the key (an AuthenticatedKey:
its prefix and scopes), which accounts.permissions.HasKeyScope checks against the operation.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import User
from accounts.services import AuthenticatedKey, api_key_authenticate

KEYWORD = "Token"
# The attribute of an HttpRequest holding its key's cache entry (accounts.services.ApiKeyLookup) when it was read
# before authentication.
KEY_LOOKED_UP = "forecastle_api_key_looked_up"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, AuthenticatedKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the header as 'Authorization: Token <key>'.")
        try:
            raw_key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The API key is not valid.") from None
        # The key's cache entry, if the view read it with the request's limits (accounts.key_requests).
        looked_up = getattr(request._request, KEY_LOOKED_UP, None)
        api_key = api_key_authenticate(raw_key=raw_key, looked_up=looked_up)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown, expired or revoked.")
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of ApiKeyAuthentication (drf-spectacular finds it by its target)."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`; get a key from POST /api/v1/auth/token/.",
        }
