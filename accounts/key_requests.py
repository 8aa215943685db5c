"""API views whose limits are per account (trades): a request by API key looks its key up in the key cache, counts
its account's limits and makes the view's cache reads in one Redis round trip.

Authenticating a key reads its entry from the key cache (accounts.services.api_key_authenticate), and a
CachedReadApiView counts the request's limits with its cache reads: two round trips. A per-account limit's key names
the account, which only the entry tells; but a key never changes hands, so the account is known beforehand from the
entry this process last authenticated the key with (the hint of api_key_lookup). The view then sends, in one write,
an MGET of the key's entry and of the view's cache keys, and a script that counts the account's limits only if the
key's entry is cached (GATED_LIMITS_SCRIPT). The request is then authenticated with the entry read, its permissions
checked, and refused 429 if the script refused it, in DRF's order; its cache reads answer from the values read.

A request is counted as before, once, and only when it would have been: revoking a key deletes its entry, so a
revoked key is not counted (the script finds no entry) and is refused 401 as before; a key the process has not
seen, an expired one or one whose hint lacks the operation's scope goes the usual way (authenticated, then
counted with the reads), and so does a key whose entry is not cached (the script counts nothing; the entry is read
from PostgreSQL) or a request when Redis is out of reach. The one difference: an entry re-cached by another process
between two requests of this one with another expiry or fewer scopes (staff edited the key in the admin) has that
request counted, then refused.
"""

import time
from dataclasses import dataclass, replace
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.request import Request

from accounts.authentication import KEY_LOOKED_UP, KEYWORD
from accounts.services import api_key_lookup
from config.core.api import AccountThrottle, Undeclared, required_scope
from config.core.cache import UNREACHABLE, cache_unreachable
from config.core.cached_reads import CachedReadApiView
from config.core.ratelimit import gcra_limits_script
from config.core.redis_scripts import ScriptCall, redis_commands_run, script_sha

# config.core.ratelimit's limits, counted only if KEYS[1] (the key's entry) exists. KEYS: the entry, then the limits'
# keys; ARGV: now (ms), then each limit's emission interval and period (ms). Returns -1 when the entry is not cached
# (nothing counted), 0 when every limit lets the request through (each then counted), else the ms to wait (nothing
# counted).
GATED_LIMITS_SCRIPT = "\nif redis.call('EXISTS', KEYS[1]) == 0 then return -1 end" + gcra_limits_script(first=2)
GATED_LIMITS_SHA = script_sha(GATED_LIMITS_SCRIPT)
NOT_CACHED = -1


@dataclass(frozen=True)
class _LookedUp:
    """What the request's round trip found: whose limits it counted (if it did), the wait if they refused it, and the
    values of the view's cache keys."""

    user_id: int
    counted: bool
    wait: float | None
    values: dict[str, Any]


def raw_key_of(request: HttpRequest) -> str | None:
    """The key of an `Authorization: Token <key>` header, as accounts.authentication reads it; None for any other."""
    header = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(header) != 2 or header[0].lower() != KEYWORD.lower():
        return None
    return header[1]


class KeyCountedApiView(CachedReadApiView):
    """A CachedReadApiView whose requests by API key, on a method whose throttles are all per account
    (config.core.api.AccountThrottle), look the key up with their limits and their cache reads (`key_read_keys`)."""

    _looked_up: _LookedUp | None = None

    def key_read_keys(self, request: Request, **kwargs: Any) -> list[str]:
        """The cache keys the handler of this request reads with cache_read (`kwargs` are the URL's)."""
        return []

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._looked_up = self._key_look_up(request, kwargs)
        super().initial(request, *args, **kwargs)

    def check_throttles(self, request: Request) -> None:
        looked_up = self._looked_up
        if looked_up is None or not looked_up.counted or request.user.pk != looked_up.user_id:
            super().check_throttles(request)
            return
        self.pending_limits = []
        if looked_up.wait is not None:
            self.throttled(request, looked_up.wait)

    def cache_read(self, request: Request, keys: list[str]) -> list[Any]:
        looked_up = self._looked_up
        if self.pending_limits == [] and looked_up is not None and all(key in looked_up.values for key in keys):
            return [looked_up.values[key] for key in keys]
        return super().cache_read(request, keys)

    def _key_look_up(self, request: Request, url_kwargs: dict[str, Any]) -> _LookedUp | None:
        raw_key = raw_key_of(request._request)
        backend = caches["default"]
        if raw_key is None or not isinstance(backend, RedisCache):
            return None
        # Only a method whose throttles are all per account (the others need the request authenticated first).
        every_throttle = self.get_throttles()
        throttles = [throttle for throttle in every_throttle if isinstance(throttle, AccountThrottle)]
        if len(throttles) != len(every_throttle):
            return None
        lookup, hint = api_key_lookup(raw_key=raw_key)
        if hint is None or (hint.expires_at is not None and hint.expires_at <= timezone.now()):
            return None
        scope = required_scope(self, request.method or "GET")
        if isinstance(scope, Undeclared) or (scope is not None and not hint.allows(scope)):
            return None
        user_id = hint.user.pk
        limits = [limit for throttle in throttles if (limit := throttle.account_limit(user_id)) is not None]
        keys = self.key_read_keys(request, **url_kwargs)
        arguments: list[str | bytes | int] = [f"{time.time() * 1000:.3f}"]
        for limit in limits:
            period_ms = limit.seconds * 1000
            arguments += [repr(period_ms / limit.count), repr(period_ms)]
        entry_key = backend.make_key(lookup.cache_key)
        count = ScriptCall(
            text=GATED_LIMITS_SCRIPT,
            sha=GATED_LIMITS_SHA,
            keys=[entry_key, *(backend.make_key(limit.key) for limit in limits)],
            args=arguments,
        )
        # The reads first: an entry deleted between them (the key revoked) is then not counted, and the request goes
        # the usual way with the entry it read, as if it had come just before the revocation.
        read = ["MGET", entry_key, *(backend.make_key(key) for key in keys)]
        try:
            client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
            replies = redis_commands_run(client, [read, count])
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        except UNREACHABLE:
            cache_unreachable("API key lookup and throttles of a request")
            return None
        loads = backend._cache._serializer.loads  # type: ignore[attr-defined]
        entry, *values = (None if raw is None else loads(raw) for raw in replies[0])
        setattr(request._request, KEY_LOOKED_UP, replace(lookup, entry=entry))
        waited = int(replies[1])
        return _LookedUp(
            user_id=user_id,
            counted=waited != NOT_CACHED,
            wait=max(0.001, waited / 1000) if waited > 0 else None,
            values=dict(zip(keys, values, strict=True)),
        )
