"""The one cache-failure policy. The cache (Redis) makes reads fast and counts rate limits; it is never
needed for an answer to be right. So when it cannot be reached (`UNREACHABLE`: a RedisError, or an OSError
from its socket):

- a read is a miss (the caller computes the value from PostgreSQL),
- a write, an add or a delete is dropped (the entry expires or is rebuilt later),
- a rate limit or throttle lets the request through (losing a limit for a while beats refusing everyone),

and each skipped call is logged once as a warning saying what was skipped (`cache_unreachable`). Nothing
else is caught: any other exception from a cache call is a bug and propagates.

Every cache call in the project goes through the functions here, or catches `UNREACHABLE` and calls
`cache_unreachable` where it drives the cache itself or needs another fallback than a miss (the DRF
throttles, the website's rate limits, the market list generation, the read-replica router's primary pins,
which count as pinned when unknown).
"""

import logging
from typing import Any

from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

UNREACHABLE: tuple[type[Exception], ...] = (RedisError, OSError)


def cache_unreachable(skipped: str) -> None:
    logger.warning("Cache unreachable: %s skipped, carrying on without it", skipped)


def cache_get(key: str) -> Any:
    """The cached value, or None (a miss) when there is none or the cache is unreachable."""
    try:
        return cache.get(key)
    except UNREACHABLE:
        cache_unreachable(f"read of {key}")
        return None


def cache_set(key: str, value: Any, *, timeout: int) -> None:
    try:
        cache.set(key, value, timeout=timeout)
    except UNREACHABLE:
        cache_unreachable(f"write of {key}")


def cache_set_many(values: dict[str, Any], *, timeout: int) -> None:
    """Stores every value in one round trip."""
    try:
        cache.set_many(values, timeout=timeout)
    except UNREACHABLE:
        cache_unreachable(f"write of {', '.join(values)}")


def cache_add(key: str, value: Any, *, timeout: int) -> bool | None:
    """Stores the value only if the key is absent: True if stored, False if it was there, None if unknown
    (the cache is unreachable)."""
    try:
        return bool(cache.add(key, value, timeout=timeout))
    except UNREACHABLE:
        cache_unreachable(f"add of {key}")
        return None


def cache_delete(key: str) -> None:
    try:
        cache.delete(key)
    except UNREACHABLE:
        cache_unreachable(f"delete of {key}")
