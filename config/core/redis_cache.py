"""Django's Redis cache backend, keeping its redis.Redis clients.

Django builds a new redis.Redis (over the same connection pool) for every cache call, and building one copies
about 170 response callbacks into a new dict: profiled at a fifth of a cached API read's CPU. A redis.Redis is
safe to share between threads (each command takes a connection from the pool and gives it back), so this backend
keeps one per connection pool. Everything else is Django's.
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class ClientKeepingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Pools live as long as this object (Django keeps them by index), so their ids are stable keys.
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ClientKeepingRedisCacheClient
