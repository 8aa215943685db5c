"""Django's Redis cache backend, keeping its redis.Redis clients; and commands sent together in one round trip.

Django builds a new redis.Redis (over the same connection pool) for every cache call, and building one copies
about 170 response callbacks into a new dict: profiled at a fifth of a cached API read's CPU. A redis.Redis is
safe to share between threads (each command takes a connection from the pool and gives it back), so this backend
keeps one per connection pool. Everything else is Django's.
"""

from collections.abc import Sequence
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.exceptions import ResponseError


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


def redis_round_trip(client: Any, commands: Sequence[Sequence[str | bytes | int]]) -> list[Any]:
    """Each command's raw reply, or the ResponseError it got (as a value): the commands written in one send on one
    pooled connection and their replies read in order, so one round trip, as a pipeline of redis.Redis makes it.
    A cached read sends a few commands per request, where the pipeline's own work took about a third of the read's
    client CPU, and it sends a SCRIPT EXISTS round trip before any registered script it runs: this is that
    pipeline without either. A lost connection is retried as the client's own commands are (its Retry), each time
    from a new write, so replies never mix."""
    packed = commands_packed(commands)
    pool = client.connection_pool
    connection = pool.get_connection()

    def send_and_read() -> list[Any]:
        connection.send_packed_command([packed])
        replies: list[Any] = []
        for _command in commands:
            try:
                replies.append(connection.read_response())
            except ResponseError as error:
                replies.append(error)
        return replies

    try:
        replies: list[Any] = connection.retry.call_with_retry(send_and_read, lambda _error: connection.disconnect())
        return replies
    except BaseException:
        # A reply may be left unread on the socket: never hand the connection back as it is.
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def commands_packed(commands: Sequence[Sequence[str | bytes | int]]) -> bytes:
    """The commands in Redis's protocol (RESP arrays of bulk strings), text in UTF-8 as redis-py encodes it.
    redis-py's general encoder took a fifth of a cached read's client CPU for its two short commands."""
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for argument in command:
            if isinstance(argument, bytes):
                data = argument
            elif isinstance(argument, str):
                data = argument.encode()
            elif isinstance(argument, int):
                data = b"%d" % argument
            else:
                raise TypeError(f"a Redis command argument is str, bytes or int, not {type(argument).__name__}")
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)
