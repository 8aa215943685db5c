"""What an API key may do: each API operation declares the scope it needs, once, and one permission class
checks it.

An API class declares `required_scope`: a scope (accounts.models.Scope) for every method, or a mapping from
HTTP method to scope; None there means the operation takes no scope (its caller proves itself another way,
as auth/token/ does with a password). A safe method (GET, HEAD, OPTIONS) that declares nothing needs `read`;
an unsafe one that declares nothing is refused to every key, so a new write endpoint is closed to keys until it
says which scope opens it. Requests without a key (the website's session, anonymous reads) are not limited
by scopes; the view's other permission classes (IsAuthenticated, IsAdminUser) still apply to them and to keys.
tests/accounts/test_key_scopes.py walks every API route and fails on a view that does not use HasKeyScope.
"""

from typing import Any

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.services import AuthenticatedKey
from config.core.api import NO_SCOPE, Undeclared, required_scope


class InsufficientScope(PermissionDenied):
    default_code = "insufficient_scope"


class HasKeyScope(BasePermission):
    """A request made with an API key needs the scope its operation declares (403 insufficient_scope)."""

    # It limits what keys may do and lets any request without a key through (the OpenAPI schema reads this).
    anonymous_allowed = True

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, AuthenticatedKey):
            return True
        scope = required_scope(view, request.method or "GET")
        if scope is NO_SCOPE:
            return True
        if isinstance(scope, Undeclared):
            raise InsufficientScope(f"API keys cannot be used for {request.method} on this endpoint.")
        if not api_key.allows(scope):
            raise InsufficientScope(
                f"This API key lacks the '{scope}' scope: make a key with it on the API keys page "
                "or with POST /api/v1/auth/token/."
            )
        return True
