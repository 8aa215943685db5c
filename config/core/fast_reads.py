"""Cached API reads answered by the WSGI application itself: one Redis round trip and the stored bytes.

A cached price read is one Redis read; Django's handling around it (its middleware, URL resolution, DRF's
dispatch, the response object) cost about twice that read in the profile, where the one-GET floor of the HTTP
benchmark pays for little more than the read. So `fast_read` answers a read before Django handles it when the
read is:
- a GET to the API with no cookie, no Authorization header and no body: anonymous, so its one limit is
  AnonReadThrottle's, per client address;
- to a view that says which cache keys hold its answer (CachedReadApiView.cached_read_keys) and finds it there
  (cached_read_hit): the views answer their own hits with the same two methods;
- on a scheme and host that the API middleware answers without a redirect or a refusal.

The answer is the one the full handling gives: the same bytes in the same content coding (gzip where the request's
Accept-Encoding admits it and a compressed copy was stored, config.core.encodings), ETag and Last-Modified, a 304 on
a matching If-None-Match or If-Modified-Since (config.core.api.conditional_headers), every header the API
middleware adds (taken by running that middleware once per scheme, host and view on an empty answer:
`_middleware_headers`),
DRF's Allow, the request id, the request metrics and the access log line (config.core.request_context). The
limit is counted in the round trip that reads the keys (config.core.ratelimit.gcra_consume_and_get).

Everything else goes to Django as before, counted once: a refused request is not counted here (the throttle
refuses it there); a miss is counted here, and the view then reads the cache without counting it again
(READ_COUNTED); with Redis out of reach nothing is counted here.
"""

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string
from rest_framework.exceptions import APIException

from config.core.api import AnonReadThrottle, CachedBody, conditional_headers
from config.core.cache import UNREACHABLE
from config.core.cached_reads import READ_COUNTED, CachedReadApiView
from config.core.client_address import client_address_of
from config.core.errors import DomainError
from config.core.ratelimit import Limit, gcra_consume_and_get
from config.core.request_context import REQUEST_ID_HEADER, request_id_for, request_id_var, request_recorded

REQUEST_CONTEXT_MIDDLEWARE = "config.core.request_context.RequestContextMiddleware"
# Distinct (scheme, host, view) whose middleware headers are remembered; past it, they are not remembered.
HEADER_MEMO_SIZE = 256
STATUS_LINES = {200: "200 OK", 304: "304 Not Modified"}

_header_memo: dict[tuple[bool, str, type, int], dict[str, str] | None] = {}


def fast_read(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
    """The answer to a cached read (see the module's docstring), or None: Django handles the request."""
    started = time.perf_counter()
    if (
        environ.get("REQUEST_METHOD") != "GET"
        or "HTTP_COOKIE" in environ
        or "HTTP_AUTHORIZATION" in environ
        or environ.get("CONTENT_LENGTH") not in (None, "", "0")
        or settings.DISALLOWED_USER_AGENTS
    ):
        return None
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    # A NUL is refused by the middleware (config.core.middleware): leave it that answer.
    if "\x00" in path or "%00" in query:
        return None
    resolved = _resolved(path)
    if resolved is None:
        return None
    view_class, kwargs, route = resolved
    request = WSGIRequest(environ)
    keys = view_class.cached_read_keys(request, **kwargs)
    if keys is None:
        return None
    headers = _middleware_headers(request, view_class, 200)
    if headers is None:
        return None
    limit = _anonymous_limit(environ)
    try:
        wait, values = gcra_consume_and_get(limits=[limit] if limit else [], keys=keys)
    except UNREACHABLE:
        return None
    if wait is not None:
        return None
    environ[READ_COUNTED] = True
    try:
        hit: CachedBody | None = view_class.cached_read_hit(request, values, **kwargs)
    except (DomainError, APIException):
        # An error answer (a quote of a closed market): Django gives it, in the API's error shape.
        return None
    if hit is None:
        return None
    validators, not_modified = conditional_headers(
        etag=hit.etag,
        last_modified=hit.last_modified,
        if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
        if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
    )
    status = 304 if not_modified else 200
    if not_modified and (headers := _middleware_headers(request, view_class, 304)) is None:
        return None
    body = b"" if not_modified else hit.body
    request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID"))
    response_headers = {
        **validators,
        **headers,
        "Content-Length": str(len(body)),
        REQUEST_ID_HEADER: request_id,
    }
    if hit.encoding is not None and not not_modified:
        response_headers["Content-Encoding"] = hit.encoding
    start_response(STATUS_LINES[status], list(response_headers.items()))
    token = request_id_var.set(request_id)
    try:
        request_recorded(
            method="GET",
            path=request.path,
            route=route,
            status=status,
            seconds=time.perf_counter() - started,
        )
    finally:
        request_id_var.reset(token)
    return [body]


@functools.lru_cache(maxsize=4096)
def _resolved(path: str) -> tuple[Any, dict[str, Any], str] | None:
    """The cached-read view a path resolves to, its URL's arguments and its route as the metrics name it (as
    RequestContextMiddleware does); None for any other path. Remembered per path: resolving took a sixth of a
    read."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    view_class = getattr(match.func, "view_class", None)
    if view_class is None or not issubclass(view_class, CachedReadApiView):
        return None
    return view_class, match.kwargs, f"/{match.route}"


@receiver(setting_changed)
def _forget(**_: object) -> None:
    """What is remembered here follows from the settings (URLs, middleware, security headers): tests change them."""
    _resolved.cache_clear()
    _middleware.cache_clear()
    _header_memo.clear()


def _anonymous_limit(environ: dict[str, Any]) -> Limit | None:
    address = client_address_of(
        remote=environ.get("REMOTE_ADDR"), forwarded_for=environ.get("HTTP_X_FORWARDED_FOR", "")
    )
    return AnonReadThrottle().address_limit(address)


def _middleware_headers(request: HttpRequest, view_class: type, status: int) -> dict[str, str] | None:
    """The headers the API's middleware and DRF's view add to an answer of this status (and Content-Type) to
    this request, or None when the middleware would answer otherwise (a redirect to HTTPS, a host not
    allowed). They depend on the scheme, the host and the view, so they are worked out once for each."""
    try:
        memo_key = (request.is_secure(), request.get_host(), view_class, status)
    except Exception:
        return None
    if memo_key in _header_memo:
        return _header_memo[memo_key]
    try:
        answer = _middleware()(request, status)
    except Exception:
        return None
    headers = None
    if answer.status_code == status:
        headers = {name: value for name, value in answer.items() if name != "Content-Length"}
        view = view_class()
        view.setup(request)
        headers.update(view.default_response_headers)
    if len(_header_memo) < HEADER_MEMO_SIZE:
        _header_memo[memo_key] = headers
    return headers


@functools.cache
def _middleware() -> Callable[[HttpRequest, int], HttpResponse]:
    """API_MIDDLEWARE (without the request context's, which fast_read does itself) around an empty answer of
    the given status, as rendered_response makes them."""

    def empty_answer(request: HttpRequest) -> HttpResponse:
        status = request.META["forecastle.fast_read_status"]
        answer = HttpResponse(status=304) if status == 304 else HttpResponse(b"", content_type="application/json")
        # Every answer of a cached read varies with Accept-Encoding (its content coding is chosen by it).
        patch_vary_headers(answer, ("Accept-Encoding",))
        return answer

    handler: Callable[[HttpRequest], HttpResponse] = empty_answer
    for path in reversed(settings.API_MIDDLEWARE):
        if path != REQUEST_CONTEXT_MIDDLEWARE:
            handler = import_string(path)(handler)

    def run(request: HttpRequest, status: int) -> HttpResponse:
        request.META["forecastle.fast_read_status"] = status
        try:
            return handler(request)
        finally:
            del request.META["forecastle.fast_read_status"]

    return run
