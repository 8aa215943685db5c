"""Counting limits. On website actions that have no DRF throttle (sign-ups and password-reset requests per
client address): a fixed window in the Django cache (Redis), counted with an atomic increment. For the API's
DRF throttles (config.core.api): `gcra_consume`, one Redis round trip and one number per identity.

Like the API throttles, a limit is let through when Redis cannot be reached: losing it for a while is
better than refusing every sign-up.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import NoScriptError, ResponseError

from config.core.cache import UNREACHABLE, cache_unreachable
from config.core.redis_cache import redis_round_trip
from config.core.redis_scripts import script_sha

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


def rate_parse(rate: str) -> Rate:
    """'5/hour', '10/min', '100/day' (DRF's notation: the period's first letter counts)."""
    count, _, period = rate.partition("/")
    return Rate(count=int(count), seconds=PERIODS[period.strip()[:1].lower()])


def rate_limit_consume(*, scope: str, ident: str, rate: str) -> int | None:
    """Counts one use of `scope` by `ident`. None when it is within the rate; otherwise the seconds until
    the window ends (the use is still counted, so hammering does not help)."""
    limit = rate_parse(rate)
    now = time.time()
    window = int(now // limit.seconds)
    key = f"ratelimit:{scope}:{ident}:{window}"
    try:
        cache.add(key, 0, timeout=limit.seconds + 1)
        used = cache.incr(key)
    except ValueError:  # the window's key expired between the add and the increment: count from scratch
        return None
    except UNREACHABLE:
        cache_unreachable(f"rate limit {scope}")
        return None
    if used <= limit.count:
        return None
    return max(1, int((window + 1) * limit.seconds - now))


# The generic cell rate algorithm in one round trip: the key holds the theoretical arrival time (TAT, in ms)
# of the next request. A request is let through when, with it, the TAT stays within one period of now; it
# then moves the TAT on by one emission interval (period / count). So `count` requests pass at once, then
# one per interval, and the key is one number that expires when the limit has fully recovered.
# Returns 0 when allowed, else the milliseconds until a request would be (the refused one is not counted).
GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then tat = math.max(tonumber(stored), now) end
local next_tat = tat + interval
local wait = next_tat - now - period
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now))
return 0
"""
_gcra: list[Any] = []  # the registered script (redis.commands.core.Script), made on first use


def gcra_consume(*, key: str, count: int, seconds: float) -> float | None:
    """Counts one request against "count per seconds" under `key` (a cache key, prefixed as the cache
    prefixes its own) in one Redis round trip. None when it is allowed; otherwise the seconds until one
    would be. Raises one of config.core.cache.UNREACHABLE when Redis cannot be reached: the caller decides
    what that means (the API throttles let the request through)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        # A cache without Redis (the DummyCache of some tests) keeps no counters, as with DRF's throttles.
        return None
    # The cache's own client, so the cache's location, key prefix and timeouts apply.
    client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
    if not _gcra:
        _gcra.append(client.register_script(GCRA_SCRIPT))
    period_ms = seconds * 1000
    # EVALSHA, loading the script first if this server does not know it yet.
    wait_ms = _gcra[0](
        keys=[backend.make_key(key)],
        args=[f"{time.time() * 1000:.3f}", repr(period_ms / count), repr(period_ms)],
        client=client,
    )
    return None if not wait_ms else max(0.001, int(wait_ms) / 1000)


@dataclass(frozen=True)
class Limit:
    """One rate limit a request meets: `count` per `seconds` under the cache key `key`."""

    key: str
    count: int
    seconds: float


def gcra_limits_script(first: int = 1) -> str:
    """GCRA_SCRIPT for every limit of a request, as the Lua body of a script whose limits' keys are KEYS[first] on
    (the keys before them are the caller's). ARGV: now (ms), then each limit's emission interval and period (ms).
    Returns 0 when every limit lets the request through (each then counted), else the ms to wait (nothing counted)."""
    return f"""
local now = tonumber(ARGV[1])
local next_tats = {{}}
for i = {first}, #KEYS do
  local limit = i - {first - 1}
  local interval = tonumber(ARGV[2 * limit])
  local period = tonumber(ARGV[1 + 2 * limit])
  local tat = now
  local stored = redis.call('GET', KEYS[i])
  if stored then tat = math.max(tonumber(stored), now) end
  local next_tat = tat + interval
  local wait = next_tat - now - period
  if wait > 0 then return math.ceil(wait) end
  next_tats[i] = next_tat
end
for i = {first}, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.3f', next_tats[i]), 'PX', math.ceil(next_tats[i] - now))
end
return 0
"""


# Every limit of a request in one round trip. KEYS: the limits' keys; ARGV as gcra_limits_script says.
GCRA_MANY_SCRIPT = gcra_limits_script()
# Redis names a script by the SHA-1 of its text (EVALSHA).
GCRA_MANY_SHA = script_sha(GCRA_MANY_SCRIPT)


def gcra_consume_and_get(*, limits: Sequence[Limit], keys: Sequence[str]) -> tuple[float | None, list[Any]]:
    """Counts one request against every limit (as gcra_consume) and reads the cache `keys`, in one Redis round
    trip. (None, the values, None for a missing key) when the limits let it through; (seconds to wait, []) when
    one refuses it (then nothing is counted, and what was read is dropped). Raises one of
    config.core.cache.UNREACHABLE when Redis cannot be reached.

    The limits' script and an MGET of the keys go in one write (config.core.redis_cache.redis_round_trip). The
    values are not returned by the script: Redis copies a value into the script and out again, which cost a cached
    history read (58 kB) about four times the Redis CPU of a plain GET of those bytes."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        # A cache without Redis keeps no counters (as gcra_consume); it still reads.
        return None, [backend.get(key) for key in keys]
    client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
    commands: list[list[Any]] = []
    if limits:
        count = ["EVALSHA", GCRA_MANY_SHA, len(limits), *(backend.make_key(limit.key) for limit in limits)]
        count.append(f"{time.time() * 1000:.3f}")
        for limit in limits:
            period_ms = limit.seconds * 1000
            count += [repr(period_ms / limit.count), repr(period_ms)]
        commands.append(count)
    if keys:
        commands.append(["MGET", *(backend.make_key(key) for key in keys)])
    if not commands:
        return None, []
    replies = redis_round_trip(client, commands)
    if limits and isinstance(replies[0], NoScriptError):
        # This server does not know the script yet (first use, or after a restart or SCRIPT FLUSH).
        client.script_load(GCRA_MANY_SCRIPT)
        replies = redis_round_trip(client, commands)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    if limits and int(replies[0]):
        return max(0.001, int(replies[0]) / 1000), []
    if not keys:
        return None, []
    # The cache's own serializer: the values read as `cache.get` would read them.
    loads = backend._cache._serializer.loads  # type: ignore[attr-defined]
    return None, [None if raw is None else loads(raw) for raw in replies[-1]]
