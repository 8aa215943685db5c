"""The WSGI application: requests to the API that carry no session take a shorter middleware stack.

A program calling the API with `Authorization: Token ...`, or reading public prices without a cookie, needs
none of the website's session, authentication, message, CSRF, htmx, static-file or login-lockout middleware:
with no cookie there is no session to load and no ambient credential for CSRF to guard. Such requests go to
a second Django handler built from API_MIDDLEWARE (settings: MIDDLEWARE without API_SKIPPED_MIDDLEWARE),
which keeps every header and guard the API answers with (request id and metrics, security headers, CSP,
NUL and host checks). Everything else, including any API request with a cookie and the token endpoint
(whose login lockout is django-axes middleware), goes through the full MIDDLEWARE as before.
"""

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from config.core.fast_reads import fast_read

API_PREFIX = "/api/"
AUTHORIZATION_SCHEME = "token "  # accounts.authentication.KEYWORD, lowercased, and its space

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def uses_api_stack(environ: dict[str, Any]) -> bool:
    """Whether this request may skip the website's middleware (see the module's docstring)."""
    path = environ.get("PATH_INFO", "")
    if not path.startswith(API_PREFIX) or path.startswith(settings.API_FULL_STACK_PATHS):
        return False
    if "HTTP_COOKIE" not in environ:
        return True
    return str(environ.get("HTTP_AUTHORIZATION", "")).lower().startswith(AUTHORIZATION_SCHEME)


def _api_handler() -> WSGIHandler:
    """A Django handler whose middleware chain is API_MIDDLEWARE. Django builds a handler's chain from
    settings.MIDDLEWARE, so the setting is swapped while this one is built (once, at start-up)."""
    site_middleware = settings.MIDDLEWARE
    settings.MIDDLEWARE = settings.API_MIDDLEWARE
    try:
        return WSGIHandler()
    finally:
        settings.MIDDLEWARE = site_middleware


def forecastle_wsgi_application() -> WSGIApplication:
    """Django's WSGI application for the website, and a shorter one for API requests without a session."""
    site = WSGIHandler()
    api = _api_handler()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not uses_api_stack(environ):
            return site(environ, start_response)
        # A cached read found in the cache is answered without Django's request handling (config.core.fast_reads).
        answer = fast_read(environ, start_response)
        return api(environ, start_response) if answer is None else answer

    return application
