"""What every REST endpoint shares: the one error shape, throttles, pagination and the schema class.

Every error leaves the API as {"error": {"code", "message", "fields"}} with its HTTP status, whether it
came from the domain (config.core.errors.DomainError), from DRF (validation, authentication, throttling),
or from Django's own 404/500 handlers for paths under /api/.
"""

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date, parse_http_date_safe
from django.views import defaults
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.utils.encoders import JSONEncoder

from config.core.cache import UNREACHABLE, cache_unreachable
from config.core.client_address import client_address
from config.core.encodings import GZIP, accepts_gzip, etag_base, gzip_etag
from config.core.errors import DomainError
from config.core.ratelimit import Limit, gcra_consume

if TYPE_CHECKING:
    # Only for annotations: importing DRF's views here would be circular (they load these throttles).
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def error_body(code: str, message: str, fields: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": dict(fields or {})}}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF validation details (nested dicts and lists) as {"field" or "parent.field": [messages]}."""
    if isinstance(detail, Mapping):
        fields: dict[str, list[str]] = {}
        for name, value in detail.items():
            key = f"{prefix}.{name}" if prefix else str(name)
            fields.update(_flatten(value, key))
        return fields
    if isinstance(detail, list | tuple):
        if all(not isinstance(item, Mapping | list | tuple) for item in detail):
            return {prefix or api_settings.NON_FIELD_ERRORS_KEY: [str(item) for item in detail]}
        fields = {}
        for index, item in enumerate(detail):
            fields.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return fields
    return {prefix or api_settings.NON_FIELD_ERRORS_KEY: [str(detail)]}


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """REST_FRAMEWORK EXCEPTION_HANDLER: every exception an API view raises becomes the one error shape."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        # A body without a Content-Length that grew past the limit (config.core.middleware refuses the rest).
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is too large: at most {limit:,} bytes are accepted."
        return Response(error_body("payload_too_large", message), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        # A bug, not an input: log it with its traceback and still answer in the API's shape.
        logger.exception("Unhandled error in API view %s", context.get("view"), exc_info=exc)
        return Response(
            error_body("server_error", "Something went wrong on our side."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    headers: dict[str, str] = {}
    if auth_header := getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = auth_header
    if (wait := getattr(exc, "wait", None)) is not None:
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.values()), ["Invalid input."])[0]
        body = error_body("invalid", first if len(fields) == 1 else "Check the fields listed.", fields)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        body = error_body(str(code), str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
    return defaults.server_error(request)


class ErrorDetailSerializer(serializers.Serializer):
    # Declared in get_fields: a class attribute named `fields` would hide Serializer.fields.
    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "code": serializers.CharField(help_text="Stable machine-readable code, e.g. insufficient_funds."),
            "message": serializers.CharField(help_text="A sentence for people."),
            "fields": serializers.DictField(
                child=serializers.ListField(child=serializers.CharField()),
                help_text="Messages per input field (empty when the error is not about one field).",
            ),
        }


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# API key scopes (accounts.models.Scope): each API class declares the one its operations need in
# `required_scope` (a scope, or a mapping from HTTP method to scope), and accounts.permissions.HasKeyScope
# checks it. Read here so the OpenAPI schema can show it without importing accounts.
READ_SCOPE = "read"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Declared "no scope needed": whoever calls proves themselves another way (auth/token/'s password).
NO_SCOPE = None


class Undeclared:
    """An unsafe method whose API class names no scope for it: closed to every key."""


UNDECLARED = Undeclared()


def required_scope(view: Any, method: str) -> str | Undeclared | None:
    """The scope an API class (or instance) declares for `method`: a scope, NO_SCOPE or UNDECLARED. A safe
    method that declares nothing needs READ_SCOPE."""
    declared = getattr(view, "required_scope", UNDECLARED)
    if isinstance(declared, Mapping):
        declared = declared.get(method.upper(), UNDECLARED)
    if isinstance(declared, Undeclared):
        return READ_SCOPE if method.upper() in SAFE_METHODS else UNDECLARED
    return None if declared is None else str(getattr(declared, "value", declared))


class FailOpenThrottle(SimpleRateThrottle):
    """A rate limit kept in Redis, at a constant cost: one round trip and one small value per identity,
    whatever the rate (config.core.ratelimit.gcra_consume). "N/period" lets a burst of N through, then one
    request every period/N; a refused request is not counted. Rates are read from REST_FRAMEWORK at each
    request, so settings overrides apply. If Redis cannot be reached the request is let through: losing
    the limit for a while is better than refusing every request.

    A request meets exactly one limit of each view (anonymous or signed-in reads; trades): a throttle whose
    limit does not apply to the request returns before Redis, so every request is limited in one round trip.
    """

    scope: str
    retry_after: float | None = None

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate else None

    def get_ident(self, request: Request) -> str:
        """The client address by the one rule of every per-address limit (config.core.client_address)."""
        return client_address(request._request) or "unknown"

    def limit(self, request: Request, view: "APIView") -> Limit | None:
        """The limit this request meets under this throttle, or None when the throttle does not apply to it."""
        count, seconds = self.parse_rate(self.rate)
        if count is None or seconds is None:
            return None
        key = self.get_cache_key(request, view)
        if key is None:
            return None
        return Limit(key=key, count=count, seconds=seconds)

    def allow_request(self, request: Request, view: "APIView") -> bool:
        limit = self.limit(request, view)
        if limit is None:
            return True
        try:
            self.retry_after = gcra_consume(key=limit.key, count=limit.count, seconds=limit.seconds)
        except UNREACHABLE:
            cache_unreachable(f"throttle {self.scope}")
            return True
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after


class AnonReadThrottle(FailOpenThrottle):
    """Anonymous requests, per client IP."""

    scope = "anon_read"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self._address_key(self.get_ident(request))

    def _address_key(self, ident: str) -> str:
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def address_limit(self, address: str | None) -> Limit | None:
        """The limit an anonymous request from `address` (config.core.client_address) meets, for a caller that
        has no DRF request (config.core.fast_reads); None when no rate is set."""
        count, seconds = self.parse_rate(self.rate)
        if count is None or seconds is None:
            return None
        return Limit(key=self._address_key(address or "unknown"), count=count, seconds=seconds)


class UserReadThrottle(FailOpenThrottle):
    """Authenticated requests, per user."""

    scope = "user_read"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AccountThrottle(FailOpenThrottle):
    """A limit per account, counted for signed-in requests only."""

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return self.account_key(request.user.pk)

    def account_key(self, user_id: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": f"user{user_id}"}

    def account_limit(self, user_id: object) -> Limit | None:
        """The limit a request by the account `user_id` meets, known before the request is authenticated (for
        accounts.key_requests); None when no rate is set."""
        count, seconds = self.parse_rate(self.rate)
        if count is None or seconds is None:
            return None
        return Limit(key=self.account_key(user_id), count=count, seconds=seconds)


class TradeThrottle(AccountThrottle):
    """Trades, per account: all of an account's API keys and its website session share one allowance, so
    more keys do not buy a higher rate."""

    scope = "trade"


class OrderThrottle(AccountThrottle):
    """Limit orders placed, per account (website and API together): each one may rest and be filled on every
    later trade, so placing is limited apart from trading."""

    scope = "order"


class CommentThrottle(AccountThrottle):
    """Comments and replies posted, per account: the website's form and the API share one allowance
    (`account_wait` is the website's way in)."""

    scope = "comment"

    def account_wait(self, user_id: object) -> float | None:
        """Counts one post by the account; None when it is within the rate, else the seconds to wait.
        Fails open, like every throttle, when Redis cannot be reached."""
        count, seconds = self.parse_rate(self.rate)
        if count is None or seconds is None:
            return None
        try:
            return gcra_consume(key=self.account_key(user_id), count=count, seconds=seconds)
        except UNREACHABLE:
            cache_unreachable(f"throttle {self.scope}")
            return None


class StandingForecastThrottle(CommentThrottle):
    """Standing forecasts stated, per account, the website's form and the API together (`account_wait` is the
    website's way in): each arms a pair of orders that re-arm on every fill, so stating them is limited apart
    from placing orders."""

    scope = "standing_forecast"


class ChallengeThrottle(AccountThrottle):
    """Challenges of resolution proposals, per account (each also posts a bond)."""

    scope = "challenge"


class TokenThrottle(FailOpenThrottle):
    """Key creation from a password, per client IP: slows down password guessing."""

    scope = "auth_token"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ExportThrottle(FailOpenThrottle):
    """Bulk exports, per account when signed in and per client address otherwise, across every export endpoint."""

    scope = "export"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        signed_in = request.user and request.user.is_authenticated
        ident = f"user{request.user.pk}" if signed_in else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ApiCursorPagination(CursorPagination):
    """Stable pages under concurrent inserts. The view sets `ordering` (a unique tail such as -id last)."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering: Any = ("-id",)


def paginated_response(
    *,
    queryset: Any,
    serializer_class: type[serializers.Serializer],
    request: Request,
    view: "APIView",
    ordering: Sequence[str],
    transform: Callable[[Any], Any] | None = None,
    transform_page: Callable[[list[Any]], list[Any]] | None = None,
) -> dict[str, Any]:
    """One page of `queryset` rendered with `serializer_class`: {"next", "previous", "results"}.
    `transform` turns each row into what the serializer reads (e.g. a selector's plain dict); `transform_page`
    does that for the whole page at once (a selector that reads every row's data in a few queries)."""
    paginator = ApiCursorPagination()
    paginator.ordering = tuple(ordering)
    page = paginator.paginate_queryset(queryset, request, view=view) or []
    rows = [transform(row) for row in page] if transform else page
    rows = transform_page(list(rows)) if transform_page else rows
    results = serializer_class(rows, many=True).data
    return {"next": paginator.get_next_link(), "previous": paginator.get_previous_link(), "results": results}


def paginated_schema(name: str, item: serializers.Serializer) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null on the first."),
            "results": item,
        },
    )


PAGINATION_PARAMETERS_HELP = "Pages are cursors: follow `next` and `previous`; `page_size` is 1 to 100 (default 20)."


def body_etag(data: Any) -> str:
    """A strong ETag for a response body: a hash of its JSON."""
    return '"' + hashlib.sha256(json.dumps(data, cls=JSONEncoder, sort_keys=True).encode()).hexdigest()[:32] + '"'


def bytes_etag(body: bytes) -> str:
    """A strong ETag for a body rendered beforehand: a hash of its bytes."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def conditional_headers(
    *, etag: str, last_modified: datetime | None, if_none_match: str | None, if_modified_since: str | None
) -> tuple[dict[str, str], bool]:
    """The ETag, Cache-Control and Last-Modified headers, and whether the client's If-None-Match (or, without
    it, If-Modified-Since), as the request sent them, shows it already has this representation."""
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(math.floor(last_modified.timestamp()))
    if if_none_match is not None:
        # A tag of either coding of the body (config.core.encodings) names the same content.
        tags = {etag_base(tag.strip().removeprefix("W/")) for tag in if_none_match.split(",")}
        return headers, etag_base(etag) in tags or "*" in tags
    if last_modified is not None:
        since = parse_http_date_safe(if_modified_since) if if_modified_since else None
        return headers, since is not None and math.floor(last_modified.timestamp()) <= since
    return headers, False


def _validators(request: HttpRequest, *, etag: str, last_modified: datetime | None) -> tuple[dict[str, str], bool]:
    return conditional_headers(
        etag=etag,
        last_modified=last_modified,
        if_none_match=request.headers.get("If-None-Match"),
        if_modified_since=request.headers.get("If-Modified-Since"),
    )


def conditional_response(
    request: Request, data: Any, *, last_modified: datetime | None = None, etag: str | None = None
) -> Response:
    """A 200 with ETag (a hash of the body, unless given) and Last-Modified, or a bodiless 304 when the
    client's If-None-Match (or, without it, If-Modified-Since) shows it already has this representation."""
    headers, not_modified = _validators(request, etag=etag or body_etag(data), last_modified=last_modified)
    if not_modified:
        return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(data, headers=headers)


def rendered_response(
    request: HttpRequest,
    body: bytes,
    *,
    etag: str,
    last_modified: datetime | None = None,
    encoding: str | None = None,
) -> HttpResponse:
    """conditional_response for JSON rendered beforehand (a cached read): the bytes are sent as they are, with
    no serializer or renderer run for the request; `encoding` is their content coding (None: identity), chosen
    by the caller from the request's Accept-Encoding (config.core.encodings), so the answer varies with it."""
    headers, not_modified = _validators(request, etag=etag, last_modified=last_modified)
    if not_modified:
        response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
    else:
        response = HttpResponse(body, content_type="application/json", headers=headers)
        if encoding is not None:
            response["Content-Encoding"] = encoding
    patch_vary_headers(response, ("Accept-Encoding",))
    return response


@dataclass(frozen=True)
class CachedBody:
    """A response body rendered beforehand, as a cached read finds it: its bytes, ETag and Last-Modified, and its
    content coding (None: identity)."""

    body: bytes
    etag: str
    last_modified: datetime | None
    encoding: str | None = None

    def response(self, request: HttpRequest) -> HttpResponse:
        return rendered_response(
            request, self.body, etag=self.etag, last_modified=self.last_modified, encoding=self.encoding
        )


def body_for(request: HttpRequest, body: bytes, etag: str, gzip_body: bytes | None) -> tuple[bytes, str, str | None]:
    """The representation of a body rendered beforehand to send to this request: its gzip bytes (`gzip_body`, made
    when it was rendered; None where it did not pay) if the request's Accept-Encoding admits gzip, else the identity
    bytes; with its ETag and content coding."""
    if gzip_body is not None and accepts_gzip(request.META.get("HTTP_ACCEPT_ENCODING")):
        return gzip_body, gzip_etag(etag), GZIP
    return body, etag, None


CONDITIONAL_PARAMETERS = [
    OpenApiParameter(
        "If-None-Match",
        str,
        OpenApiParameter.HEADER,
        required=False,
        description="An ETag from an earlier response: 304 Not Modified if it still matches.",
    ),
    OpenApiParameter(
        "ETag",
        str,
        OpenApiParameter.HEADER,
        response=[200, 304],
        description="Version of this representation; send it back in If-None-Match to revalidate.",
    ),
    OpenApiParameter(
        "Last-Modified",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description="When the prices shown last changed (HTTP date).",
    ),
]
NOT_MODIFIED = OpenApiResponse(description="Not modified: your copy (If-None-Match) is current.")
