"""The live stream's ASGI application: `GET /api/v1/stream/?markets=slug1,slug2` as Server-Sent Events.

It runs under uvicorn (config/stream_asgi.py), never under gunicorn: an open stream costs this process a
coroutine and a queue, not a web worker's thread. Each process reads the one Redis stream with a single
blocking XREAD (the `Hub`) and hands every entry to the queues of its connections that asked for the
entry's market; the SSE bytes of an entry are built once, whatever the number of connections.

A connection that sends `Last-Event-ID` first gets every kept event after that id (XRANGE), then the live
ones; it subscribes before it reads the backlog and skips live entries the backlog already sent, so
nothing falls between the two. If events after that id were trimmed, a `reset` event says so first.

Limits: FORECASTLE_STREAM_CONNECTIONS_PER_ADDRESS streams per client address (config.core.client_address),
counted across processes in a Redis sorted set of leases that each connection renews with its heartbeat:
a process that dies leaves leases that expire, never a slot taken for good. A connection whose queue falls
too far behind (a client that does not read) is ended; it reconnects with Last-Event-ID and loses nothing.
"""

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from config.core.cache import UNREACHABLE
from config.core.client_address import client_address_of
from markets.selectors.markets import market_slugs_public
from markets.stream.events import RESET, EventId, connections_key, stream_key, trimmed_key

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

STREAM_PATH = "/api/v1/stream/"
# What a Django slug field accepts; anything else in `markets` is refused before the database is asked.
SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,120}$")
# What the browser waits before reconnecting (SSE `retry`), in milliseconds.
RETRY_MILLISECONDS = 2000
# Entries a connection may have waiting before it is ended as too slow.
QUEUE_LIMIT = 2000
UNREACHABLE_OR_TIMEOUT: tuple[type[Exception], ...] = (*UNREACHABLE, TimeoutError)
# Redis connections of a stream process's commands (the hub's XREAD has one of its own).
REDIS_CONNECTIONS = 32
# Entries read per XREAD / XRANGE call.
BATCH = 500

# Takes a slot for `member` if the address holds fewer than the limit, after dropping expired leases.
# KEYS: the address's lease set. ARGV: limit, lease ms, member. Returns 1 if taken, 0 if refused.
ACQUIRE_SCRIPT = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
# Renews a slot's lease (KEYS: the lease set; ARGV: lease ms, member).
RENEW_SCRIPT = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', ms + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


class StreamRefused(Exception):
    """A request the stream answers with an error in the API's shape instead of a stream."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


@dataclass(frozen=True)
class Entry:
    """One stored event, with its SSE frame built once for every connection."""

    id: EventId
    market: str
    frame: bytes

    @classmethod
    def from_redis(cls, entry_id: bytes, fields: dict[bytes, bytes]) -> "Entry":
        text_id = entry_id.decode()
        event = fields[b"event"].decode()
        data = fields[b"data"].decode()
        parsed = EventId.parse(text_id)
        if parsed is None:
            raise ValueError(f"not a stream entry id: {text_id!r}")
        return cls(parsed, fields[b"market"].decode(), sse_frame(text_id, event, data))


def sse_frame(event_id: str | None, event: str, data: str) -> bytes:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {event}", *(f"data: {line}" for line in data.splitlines() or [""])]
    return ("\n".join(lines) + "\n\n").encode()


class Subscription:
    def __init__(self, markets: frozenset[str] | None) -> None:
        self.markets = markets
        self.queue: asyncio.Queue[Entry | None] = asyncio.Queue()
        self.overflowed = False

    def offer(self, entry: Entry) -> None:
        if self.overflowed or (self.markets is not None and entry.market not in self.markets):
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(entry)


class Hub:
    """One XREAD loop per process, fanning entries out to the subscriptions."""

    def __init__(self, url: str) -> None:
        # Its own connection: XREAD BLOCK holds it for up to `block` ms.
        self.redis: Any = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=30)
        self.subscriptions: set[Subscription] = set()
        self.position: bytes | None = None
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        for subscription in self.subscriptions:
            subscription.queue.put_nowait(None)
        await self.redis.aclose()

    async def run(self) -> None:
        key = stream_key()
        while True:
            try:
                if self.position is None:
                    latest = await self.redis.xrevrange(key, count=1)
                    self.position = latest[0][0] if latest else b"0-0"
                    self.ready.set()
                response = await self.redis.xread({key: self.position}, count=BATCH, block=5000)
                for _key, entries in response or []:
                    for entry_id, fields in entries:
                        self.position = entry_id
                        entry = Entry.from_redis(entry_id, fields)
                        for subscription in self.subscriptions:
                            subscription.offer(entry)
            except asyncio.CancelledError:
                raise
            except UNREACHABLE:
                logger.warning("Stream: Redis unreachable; reading again in 1 s")
                await asyncio.sleep(1)
            except Exception:
                logger.exception("Stream: could not read the event stream; reading again in 1 s")
                await asyncio.sleep(1)


@dataclass(frozen=True)
class StreamRequest:
    markets: frozenset[str] | None
    last_event_id: EventId | None
    address: str | None


def _header(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name]


def stream_request_parse(scope: Scope) -> StreamRequest:
    """The request's markets, Last-Event-ID and client address; StreamRefused (400) for anything malformed."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    unknown = sorted(set(query) - {"markets"})
    if unknown:
        raise StreamRefused(
            400, "invalid", f"Unknown parameter {unknown[0]!r}.", {unknown[0]: ["This parameter is not accepted."]}
        )
    markets: frozenset[str] | None = None
    if "markets" in query:
        names = [name.strip() for value in query["markets"] for name in value.split(",")]
        if not names or any(not SLUG.match(name) for name in names):
            raise StreamRefused(
                400,
                "invalid",
                "Name markets by their slugs, separated by commas.",
                {"markets": ["Each market is a slug: letters, digits, '-' or '_', at most 120."]},
            )
        limit = settings.FORECASTLE_STREAM_MAX_MARKETS
        if len(set(names)) > limit:
            raise StreamRefused(
                400, "invalid", f"At most {limit} markets per stream.", {"markets": [f"Name at most {limit} markets."]}
            )
        markets = frozenset(names)
    last_event_id = None
    values = _header(scope, b"last-event-id")
    if values and values[-1].strip():
        last_event_id = EventId.parse(values[-1])
        if last_event_id is None:
            raise StreamRefused(
                400,
                "invalid",
                "Last-Event-ID is the id of an event this stream sent.",
                {"Last-Event-ID": ["An event id looks like 1733000000000-0."]},
            )
    client = scope.get("client")
    address = client_address_of(
        remote=client[0] if client else None, forwarded_for=",".join(_header(scope, b"x-forwarded-for"))
    )
    return StreamRequest(markets=markets, last_event_id=last_event_id, address=address)


def _slugs_public(slugs: frozenset[str]) -> set[str]:
    close_old_connections()
    try:
        return market_slugs_public(slugs=slugs)
    finally:
        close_old_connections()


class StreamApplication:
    def __init__(self) -> None:
        self.hub: Hub | None = None
        # Typed loosely: redis-py's result types are unions of every decoding mode. A bounded pool: a thousand
        # clients connecting at once queue for a few connections instead of opening a thousand.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=REDIS_CONNECTIONS,
            timeout=20,
            socket_connect_timeout=5,
            socket_timeout=10,
        )
        self.redis: Any = aioredis.Redis(connection_pool=pool)

    def _hub(self) -> Hub:
        if self.hub is None:
            self.hub = Hub(settings.REDIS_URL)
            self.hub.start()
        return self.hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            if scope["path"] != STREAM_PATH:
                raise StreamRefused(404, "not_found", "Not found: the stream is at /api/v1/stream/.")
            if scope["method"] != "GET":
                raise StreamRefused(405, "method_not_allowed", f"Method {scope['method']!r} is not allowed.")
            request = stream_request_parse(scope)
            if request.markets is not None:
                unknown = sorted(
                    request.markets - await sync_to_async(_slugs_public, thread_sensitive=False)(request.markets)
                )
                if unknown:
                    raise StreamRefused(
                        400,
                        "invalid",
                        f"No market {unknown[0]!r}.",
                        {"markets": [f"No market {name!r}." for name in unknown]},
                    )
            await self._serve(request, receive, send)
        except StreamRefused as refused:
            await _send_error(send, refused)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._hub()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.hub is not None:
                    await self.hub.stop()
                    self.hub = None
                await self.redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _acquire(self, address: str | None) -> tuple[str, str]:
        key = connections_key(address or "unknown")
        member = uuid.uuid4().hex
        limit = settings.FORECASTLE_STREAM_CONNECTIONS_PER_ADDRESS
        try:
            taken = await self.redis.eval(ACQUIRE_SCRIPT, 1, key, limit, self._lease_ms(), member)
        except UNREACHABLE:
            raise StreamRefused(503, "stream_unavailable", "The stream is unavailable; try again shortly.") from None
        if not taken:
            raise StreamRefused(
                429,
                "throttled",
                f"Too many open streams from this address (at most {limit}); close one and try again.",
            )
        return key, member

    @staticmethod
    def _lease_ms() -> int:
        return int(settings.FORECASTLE_STREAM_HEARTBEAT_SECONDS * 3 * 1000) + 1000

    async def _serve(self, request: StreamRequest, receive: Receive, send: Send) -> None:
        hub = self._hub()
        key, member = await self._acquire(request.address)
        subscription = Subscription(request.markets)
        hub.subscriptions.add(subscription)
        try:
            try:
                await asyncio.wait_for(hub.ready.wait(), timeout=20)
                last_event_id = request.last_event_id
                backlog = await self._backlog(request, last_event_id) if last_event_id is not None else []
            except UNREACHABLE_OR_TIMEOUT:
                raise StreamRefused(
                    503, "stream_unavailable", "The stream is unavailable; try again shortly."
                ) from None
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache, no-store"),
                        (b"x-accel-buffering", b"no"),
                        (b"x-content-type-options", b"nosniff"),
                    ],
                }
            )
            await send(
                {"type": "http.response.body", "body": f"retry: {RETRY_MILLISECONDS}\n\n".encode(), "more_body": True}
            )
            sender = asyncio.ensure_future(self._send_events(request, subscription, backlog, send, key, member))
            watcher = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sender, watcher):
                    task.cancel()
                await asyncio.gather(sender, watcher, return_exceptions=True)
            with contextlib.suppress(Exception):  # the client may be gone: nothing to finish then
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            hub.subscriptions.discard(subscription)
            with contextlib.suppress(*UNREACHABLE):  # the lease expires by itself
                await self.redis.zrem(key, member)

    async def _backlog(self, request: StreamRequest, last_event_id: EventId) -> list[bytes | Entry]:
        """What the client missed: every kept entry after its Last-Event-ID, for its markets, after a
        `reset` event if some of them were trimmed."""
        frames: list[bytes | Entry] = []
        trimmed = await self.redis.get(trimmed_key())
        trimmed_id = EventId.parse(trimmed.decode()) if trimmed else None
        if trimmed_id is not None and last_event_id < trimmed_id:
            reset = {"reason": "Events after your Last-Event-ID are no longer kept: read the current state again."}
            frames.append(sse_frame(None, RESET, json.dumps(reset)))
        start = f"({last_event_id}"
        while True:
            entries = await self.redis.xrange(stream_key(), min=start, max="+", count=BATCH)
            for entry_id, fields in entries:
                entry = Entry.from_redis(entry_id, fields)
                if request.markets is None or entry.market in request.markets:
                    frames.append(entry)
            if len(entries) < BATCH:
                return frames
            start = f"({entries[-1][0].decode()}"

    async def _send_events(
        self,
        request: StreamRequest,
        subscription: Subscription,
        backlog: list[bytes | Entry],
        send: Send,
        key: str,
        member: str,
    ) -> None:
        sent = request.last_event_id
        for item in backlog:
            if isinstance(item, Entry):
                sent = item.id
                await send({"type": "http.response.body", "body": item.frame, "more_body": True})
            else:
                await send({"type": "http.response.body", "body": item, "more_body": True})
        heartbeat = settings.FORECASTLE_STREAM_HEARTBEAT_SECONDS
        while True:
            try:
                entry = await asyncio.wait_for(subscription.queue.get(), timeout=heartbeat)
            except TimeoutError:
                await send({"type": "http.response.body", "body": b": heartbeat\n\n", "more_body": True})
                # With Redis down the lease may lapse; the stream itself waits for Redis.
                with contextlib.suppress(*UNREACHABLE):
                    await self.redis.eval(RENEW_SCRIPT, 1, key, self._lease_ms(), member)
                continue
            # Whatever else is waiting goes out in the same write: one send per burst, not per event.
            frames: list[bytes] = []
            while entry is not None:
                if sent is None or entry.id > sent:
                    sent = entry.id
                    frames.append(entry.frame)
                if len(frames) >= BATCH or subscription.queue.empty():
                    break
                entry = subscription.queue.get_nowait()
            if frames:
                await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
            if entry is None:  # too slow, or the process is stopping: the client reconnects
                return


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_error(send: Send, refused: StreamRefused) -> None:
    body = json.dumps({"error": {"code": refused.code, "message": refused.message, "fields": refused.fields}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if refused.status == 429:
        headers.append((b"retry-after", str(int(settings.FORECASTLE_STREAM_HEARTBEAT_SECONDS)).encode()))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def stream_application() -> StreamApplication:
    return StreamApplication()
