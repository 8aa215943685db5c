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
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from config.core.cache import UNREACHABLE, cache_add, cache_delete, cache_get, cache_unreachable
from config.core.cache import cache_set as cache_store
from config.core.cache import cache_set_many as cache_store_many
from config.core.encodings import GZIP, accepts_gzip, gzip_etag, gzipped
from config.core.redis_scripts import ScriptCall, redis_commands_run, script_sha

# The price cache's own functions, and the shared reads and deletes it re-exports for the price readers.
__all__ = [
    "as_of_key",
    "cache_delete",
    "cache_get",
    "cache_set",
    "cache_set_encoded",
    "digest",
    "encoded_key",
    "list_generation",
    "list_generation_bump",
    "snapshot_body",
    "snapshot_key",
    "snapshot_store",
]

if TYPE_CHECKING:
    # The shape only (plain TypedDicts): this module imports nothing of the app at run time.
    from markets.snapshot import MarketSnapshot

LIST_GENERATION_KEY = "prices:list-generation"
# Longer than any cached list lives, so a generation cannot expire under the lists it names.
GENERATION_SECONDS = 86400


def ttl() -> int:
    return int(getattr(settings, "FORECASTLE_PRICE_CACHE_SECONDS", 30))


def rendered_ttl() -> int:
    """How long a rendered history is kept: readers check it against the market's version, so it is never served
    once the market changed, and it may outlive the snapshot it was built from."""
    return max(ttl(), int(getattr(settings, "FORECASTLE_RENDERED_CACHE_SECONDS", 300)))


# Part of every key: bump it when the shape of a cached value changes, so processes running the
# new code never read values written by the old (during a rolling deploy, for example).
FORMAT = 5

# Beside a rendered body, its gzip representation: under the renderer's name plus this in a snapshot's "rendered",
# and under the entry's key plus this in Redis (encoded_entries).
GZIP_SUFFIX = ":gzip"

# A renderer turns a market snapshot into a response body and its ETag (markets/api_urls.py registers the
# market detail API's). Each snapshot is stored with what every renderer made of it, so a cached read
# sends those bytes without running a serializer; the bodies can never disagree with their snapshot.
SnapshotRenderer = Callable[["MarketSnapshot"], tuple[bytes, str]]
_snapshot_renderers: dict[str, SnapshotRenderer] = {}


def snapshot_renderer_register(name: str, renderer: SnapshotRenderer) -> None:
    _snapshot_renderers[name] = renderer


def snapshot_rendered(snapshot: "MarketSnapshot") -> "MarketSnapshot":
    """The snapshot with the bodies of every registered renderer under "rendered" (made once per snapshot), each
    body large enough to pay also compressed, under its name and GZIP_SUFFIX with its own ETag."""
    if "rendered" not in snapshot:
        rendered: dict[str, tuple[bytes, str]] = {}
        for name, render in _snapshot_renderers.items():
            body, etag = rendered[name] = render(snapshot)
            compressed = gzipped(body)
            if compressed is not None:
                rendered[name + GZIP_SUFFIX] = (compressed, gzip_etag(etag))
        snapshot["rendered"] = rendered
    return snapshot


def snapshot_body(snapshot: "MarketSnapshot", name: str, accept_encoding: str | None) -> tuple[bytes, str, str | None]:
    """What renderer `name` made of the snapshot (rendering it now if it is not there), in the representation to
    send to a request with this Accept-Encoding: its bytes, ETag and content coding (None: identity)."""
    rendered = snapshot_rendered(snapshot)["rendered"]
    if accepts_gzip(accept_encoding) and (compressed := rendered.get(name + GZIP_SUFFIX)) is not None:
        return compressed[0], compressed[1], GZIP
    if name not in rendered:
        rendered[name] = _snapshot_renderers[name](snapshot)
    body, etag = rendered[name]
    return body, etag, None


def encoded_key(key: str, accept_encoding: str | None) -> str:
    """The key of the entry a request with this Accept-Encoding is answered from (encoded_entries)."""
    return key + GZIP_SUFFIX if accepts_gzip(accept_encoding) else key


def encoded_entries(key: str, entry: Any) -> dict[str, Any]:
    """A rendered entry ("body", "etag" and what tells whether it is current) by the keys it is read from: `key`,
    for clients that take identity only, and `key` + GZIP_SUFFIX for those that take gzip, where its body is
    compressed (with its own ETag and "encoding": "gzip") if that pays, else the same. Each request reads the one it
    is answered from: a gzip reader does not fetch the identity bytes from Redis too."""
    compressed = gzipped(entry["body"])
    if compressed is None:
        return {key: entry, key + GZIP_SUFFIX: entry}
    return {
        key: entry,
        key + GZIP_SUFFIX: {**entry, "body": compressed, "etag": gzip_etag(entry["etag"]), "encoding": GZIP},
    }


def cache_set_encoded(key: str, entry: Any, *, timeout: int | None = None) -> dict[str, Any]:
    """Stores an entry's encoded_entries in one Redis round trip, for `timeout` (default ttl()) seconds; returns
    them by key."""
    entries = encoded_entries(key, entry)
    cache_store_many(entries, timeout=ttl() if timeout is None else timeout)
    return entries


def snapshot_key(slug: str) -> str:
    return f"prices:v{FORMAT}:market:{slug}"


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in (FORMAT, *parts)).encode()).hexdigest()[:32]


def cache_set(key: str, value: Any, *, only_if_absent: bool = False, timeout: int | None = None) -> None:
    """Stores a value for `timeout` (default ttl()) seconds. `only_if_absent` is for read-through fills, so a
    reader that loaded the database before a trade committed cannot overwrite the refresh of that trade."""
    seconds = ttl() if timeout is None else timeout
    if only_if_absent:
        cache_add(key, value, timeout=seconds)
    else:
        cache_store(key, value, timeout=seconds)


def as_of_key(*parts: object) -> str:
    """The key of a point-in-time read (markets.apis.as_of), by what it answers."""
    return f"prices:v{FORMAT}:as-of:" + digest(*parts)


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


# A market's new snapshot and a new generation of cached lists, in one round trip: the SET of the snapshot (and of
# its version, beside it), then the INCR of the generation, or a new generation from the clock when it was evicted
# (list_generation_bump). With ARGV[6] = 'newer', nothing is stored unless the snapshot's version is newer than the
# stored one: the callbacks of a hot market's trades run in any order after their commits, and one that comes late
# must not put an older state back. Returns 1 when stored, 0 when not.
_STORE_SCRIPT = """
if ARGV[6] == 'newer' and tonumber(redis.call('GET', KEYS[3]) or '-1') >= tonumber(ARGV[5]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('INCR', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
end
return 1
"""
STORE_SCRIPT_SHA = script_sha(_STORE_SCRIPT)


def snapshot_version_key(key: str) -> str:
    return key + ":version"


def redis_cache() -> tuple[RedisCache, Any] | None:
    """The cache's Redis backend and its client for writes (so the cache's location, key prefix and timeouts
    apply), or None when the cache is not Redis (the DummyCache of some tests)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    return backend, backend._cache.get_client(write=True)  # type: ignore[attr-defined]


def snapshot_store_call(
    backend: RedisCache, key: str, snapshot: "MarketSnapshot", *, newer_only: bool = False
) -> ScriptCall:
    """The script run that snapshot_store sends, for a caller that sends it with other commands in one round trip
    (markets.services.announce)."""
    return ScriptCall(
        text=_STORE_SCRIPT,
        sha=STORE_SCRIPT_SHA,
        keys=[
            backend.make_key(key),
            backend.make_key(LIST_GENERATION_KEY),
            backend.make_key(snapshot_version_key(key)),
        ],
        # The cache's own serializer, so `cache.get` reads the snapshot as if `cache.set` stored it.
        args=[
            backend._cache._serializer.dumps(snapshot),  # type: ignore[attr-defined]
            ttl(),
            time.time_ns(),
            GENERATION_SECONDS,
            snapshot["version"],
            "newer" if newer_only else "always",
        ],
    )


def snapshot_store(key: str, snapshot: "MarketSnapshot", *, newer_only: bool = False) -> None:
    """cache_set of a market's snapshot then list_generation_bump, in one Redis round trip (after every change).
    With `newer_only` (a snapshot built from a trade's own rows, not read from the database), only if no snapshot
    of its version or a newer one is stored: a late callback must not undo a later trade, nor a close or a proposal
    stored at the same version. A snapshot read from the database is the truth when read, so it is always stored
    (a later trade's callback that finds it older than the trade it followed rebuilds from the database)."""
    redis = redis_cache()
    if redis is None:
        cache_set(key, snapshot)
        list_generation_bump()
        return
    backend, client = redis
    try:
        (reply,) = redis_commands_run(client, [snapshot_store_call(backend, key, snapshot, newer_only=newer_only)])
        if isinstance(reply, Exception):
            raise reply
    except UNREACHABLE:
        cache_unreachable("write of a market snapshot and invalidation of the cached market lists")


def snapshots_store(snapshots: dict[str, "MarketSnapshot"]) -> None:
    """snapshot_store for many markets (by key) of snapshots read from the database (stored always, each with its
    version beside it, as snapshot_store does): every SET in one pipelined round trip, then one new list generation
    (a batch of markets changed together)."""
    if not snapshots:
        return
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        for key, snapshot in snapshots.items():
            cache_set(key, snapshot)
        list_generation_bump()
        return
    try:
        client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
        serializer = backend._cache._serializer  # type: ignore[attr-defined]
        seconds = ttl()
        pipeline = client.pipeline(transaction=False)
        for key, snapshot in snapshots.items():
            pipeline.set(backend.make_key(key), serializer.dumps(snapshot), ex=seconds)
            pipeline.set(backend.make_key(snapshot_version_key(key)), snapshot["version"], ex=seconds)
        pipeline.execute()
    except UNREACHABLE:
        cache_unreachable("write of market snapshots")
    list_generation_bump()
