"""The tests' namespace in a Redis they may share with a running `make run` (config/settings/test.py)."""

import re

import redis

from config.core.redis_cache import RedisCache

GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def namespace_delete(url: str, prefix: str) -> int:
    """Deletes every key that starts with `prefix` in the Redis database at `url`; returns how many."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch = []
        for key in client.scan_iter(match=GLOB_SPECIAL.sub(r"\\\1", prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


class NamespacedRedisCache(RedisCache):
    """The project's Redis cache (config.core.redis_cache), except that clear() deletes this cache's keys (its
    KEY_PREFIX) instead of flushing the whole database, which would empty a `make run` sharing the server."""

    def clear(self) -> None:
        for url in self._servers:  # type: ignore[attr-defined]
            namespace_delete(url, f"{self.key_prefix}:")
