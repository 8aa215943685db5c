"""API views that read the cache once per request, with the request's throttles counted in the same round trip.

A cached price read is a Redis read and little else, so the throttle's own round trip (config.core.api's GCRA
throttles) was half of its Redis time. A `CachedReadApiView` collects the limits its throttles would count
instead of counting them; its handler reads the cache with `cache_read`, which counts those limits and reads the
keys in one Redis round trip (config.core.ratelimit.gcra_consume_and_get) and answers 429 as the throttles do when
a limit refuses. A response made without that read (invalid input, a cache miss answered from the database, an
error) counts the limits as it leaves, and becomes the 429 if one refuses: every request is counted once, as
before. Redis out of reach: the limits let the request through and the read is a miss (config.core.cache).

A view that can say which keys hold its answer from the request alone (`cached_read_keys`) and recognise the
answer in their values (`cached_read_hit`) answers its hits with them, and so can config.core.fast_reads,
before Django handles the request; a request whose limit that counted reaches the view with READ_COUNTED.
"""

from typing import Any

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.core.api import CachedBody, FailOpenThrottle
from config.core.cache import UNREACHABLE, cache_unreachable
from config.core.ratelimit import Limit, gcra_consume_and_get

# Set in the environ of a request whose limit config.core.fast_reads counted before finding no answer cached.
READ_COUNTED = "forecastle.read_counted"


class CachedReadApiView(APIView):
    # The limits this request has yet to count (None once counted, or before the throttles ran).
    pending_limits: list[Limit] | None = None

    @classmethod
    def cached_read_keys(cls, request: HttpRequest, **kwargs: Any) -> list[str] | None:
        """The cache keys whose values hold this request's answer, from its path, query and host alone (`kwargs`
        are the URL's); None when the view must parse the request to know them."""
        return None

    @classmethod
    def cached_read_hit(cls, request: HttpRequest, values: list[Any], **kwargs: Any) -> CachedBody | None:
        """The answer those keys' values hold (None where missing), or None when they hold none; it may raise the
        view's error (a domain error, an API exception), which the view then answers."""
        return None

    def check_throttles(self, request: Request) -> None:
        if request.META.get(READ_COUNTED):
            # config.core.fast_reads counted this request's one limit, then found no answer in the cache.
            self.pending_limits = []
            return
        limits: list[Limit] = []
        for throttle in self.get_throttles():
            if isinstance(throttle, FailOpenThrottle):
                limit = throttle.limit(request, self)
                if limit is not None:
                    limits.append(limit)
            elif not throttle.allow_request(request, self):
                raise exceptions.Throttled(throttle.wait())
        self.pending_limits = limits

    def _count(self, keys: list[str]) -> tuple[float | None, list[Any]]:
        limits, self.pending_limits = self.pending_limits or [], None
        try:
            return gcra_consume_and_get(limits=limits, keys=keys)
        except UNREACHABLE:
            cache_unreachable("throttles and cache read of an API request")
            return None, [None] * len(keys)

    def cache_read(self, request: Request, keys: list[str]) -> list[Any]:
        """The cached values of `keys` (None where missing), read as the request's limits are counted."""
        wait, values = self._count(keys)
        if wait is not None:
            self.throttled(request, wait)
        return values

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Response:
        if self.pending_limits:
            wait, _values = self._count([])
            if wait is not None:
                response = self.handle_exception(exceptions.Throttled(wait))
        return super().finalize_response(request, response, *args, **kwargs)
