"""The Redis cache in front of price reads (market list, market detail, quotes, history).

Reads go through `cache_get`/`cache_set`, which follow the one cache-failure policy (config/core/cache.py):
when Redis is unreachable a read is a miss and a write is dropped, so the API falls back to the database and
still answers correctly.
Freshness: `prices_refresh` (markets/services/price_cache.py, registered in MarketsConfig.ready) runs
after every market change commits (trade, close, edit, resolve, settle), rebuilds the market's snapshot
and starts a new generation of cached lists; entries also expire after FORECASTLE_PRICE_CACHE_SECONDS.
This module only stores and fetches: it imports nothing of the app, so the selectors can read through it.
"""

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache

from config.core.cache import UNREACHABLE, cache_add, cache_delete, cache_get, cache_unreachable
from config.core.cache import cache_set as cache_store

# The price cache's own functions, and the shared reads and deletes it re-exports for the price readers.
__all__ = [
    "cache_delete",
    "cache_get",
    "cache_set",
    "digest",
    "list_generation",
    "list_generation_bump",
    "snapshot_key",
]

if TYPE_CHECKING:
    # The shape only (plain TypedDicts): this module imports nothing of the app at run time.
    from markets.snapshot import MarketSnapshot

LIST_GENERATION_KEY = "prices:list-generation"
# Longer than any cached list lives, so a generation cannot expire under the lists it names.
GENERATION_SECONDS = 86400


def ttl() -> int:
    return int(getattr(settings, "FORECASTLE_PRICE_CACHE_SECONDS", 30))


# Part of every key: bump it when the shape of a cached value changes, so processes running the
# new code never read values written by the old (during a rolling deploy, for example).
FORMAT = 4

# A renderer turns a market snapshot into a response body and its ETag (markets/api_urls.py registers the
# market detail API's). Each snapshot is stored with what every renderer made of it, so a cached read
# sends those bytes without running a serializer; the bodies can never disagree with their snapshot.
SnapshotRenderer = Callable[["MarketSnapshot"], tuple[bytes, str]]
_snapshot_renderers: dict[str, SnapshotRenderer] = {}


def snapshot_renderer_register(name: str, renderer: SnapshotRenderer) -> None:
    _snapshot_renderers[name] = renderer


def snapshot_rendered(snapshot: "MarketSnapshot") -> "MarketSnapshot":
    """The snapshot with the bodies of every registered renderer under "rendered" (made once per snapshot)."""
    if "rendered" not in snapshot:
        snapshot["rendered"] = {name: render(snapshot) for name, render in _snapshot_renderers.items()}
    return snapshot


def snapshot_key(slug: str) -> str:
    return f"prices:v{FORMAT}:market:{slug}"


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in (FORMAT, *parts)).encode()).hexdigest()[:32]


def cache_set(key: str, value: Any, *, only_if_absent: bool = False) -> None:
    """Stores a value for ttl() seconds. `only_if_absent` is for read-through fills, so a reader
    that loaded the database before a trade committed cannot overwrite the refresh of that trade."""
    if only_if_absent:
        cache_add(key, value, timeout=ttl())
    else:
        cache_store(key, value, timeout=ttl())


def list_generation() -> str:
    """The current generation of cached market lists; a new one starts on every trade."""
    try:
        generation = cache.get(LIST_GENERATION_KEY)
        if generation is None:
            # Never reuse an old number after eviction: start from the clock.
            cache.add(LIST_GENERATION_KEY, time.time_ns(), timeout=GENERATION_SECONDS)
            generation = cache.get(LIST_GENERATION_KEY)
    except UNREACHABLE:
        cache_unreachable("read of the market list generation")
        return "offline"
    return str(generation)


def list_generation_bump() -> None:
    try:
        cache.incr(LIST_GENERATION_KEY)
    except ValueError:  # evicted or expired: start a new one from the clock
        cache_store(LIST_GENERATION_KEY, time.time_ns(), timeout=GENERATION_SECONDS)
    except UNREACHABLE:
        cache_unreachable("invalidation of the cached market lists")
