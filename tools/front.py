"""The front of `make run`: one address (WEB_ADDRESS) for the whole service, gunicorn and the stream process.

A connection whose request is `GET /api/v1/stream/...` goes to the stream process (uvicorn); every other
connection goes to gunicorn. The front decides once per request head it sees and then only moves bytes:
it never parses a response, never buffers a body, and adds nothing to a request but where it came from:

- to gunicorn, a PROXY protocol v1 line before the first request (gunicorn runs with `--proxy-protocol v1`),
  so REMOTE_ADDR stays the client's and every per-address limit works as without the front;
- to the stream process, an `X-Forwarded-For` header appended to its one request (a stream ends its
  connection when it ends; its errors close it), counted as one more proxy of our own (stack.py starts the
  stream process with API_NUM_PROXIES one higher).

A browser reuses a kept-alive connection for its next request, so a connection that went to gunicorn may
carry a stream request later: when a request on it starts with the stream's request line, the front closes
its gunicorn side (HTTP/1.1 without pipelining: the previous answer is complete once the next request is
sent) and sends the request to the stream process instead.

Production uses its own proxy (nginx, a load balancer) with the same rule: README, "Deployment and scaling".

    python -m tools.front --listen 127.0.0.1:8000 --web unix:var/run/web.sock --stream unix:var/run/stream.sock
"""

import argparse
import asyncio
import ipaddress
import signal
from typing import cast

STREAM_REQUEST_LINES = (b"GET /api/v1/stream/ ", b"GET /api/v1/stream/?")
# The longest request head accepted before the first request is routed (gunicorn's own limit is 8 KB a line).
MAX_HEAD = 65536


class Upstream(asyncio.Protocol):
    """The front's connection to gunicorn or the stream process, on behalf of one client connection."""

    def __init__(self, client: "ClientConnection") -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        self.client.send(self, data)

    def eof_received(self) -> bool:
        return False  # close; connection_lost tells the client

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream_lost(self)

    def pause_writing(self) -> None:
        self.client.transport_pause_reading()

    def resume_writing(self) -> None:
        self.client.transport_resume_reading()


class ClientConnection(asyncio.Protocol):
    def __init__(self, front: "Front") -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.routed = False
        self.upstream: Upstream | None = None
        self.to_stream = False
        # What arrives while the upstream connection is being made.
        self.pending: list[bytes] = []
        self.client_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.routed and not self.to_stream and data.startswith(STREAM_REQUEST_LINES):
            self._detach()
        if not self.routed:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                if len(self.head) > MAX_HEAD and self.transport is not None:
                    self.transport.close()
                return
            self._route(bytes(self.head))
            self.head = bytearray()
            return
        self._forward(data)

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.upstream is not None and self.upstream.transport is not None and not self.pending:
            if self.upstream.transport.can_write_eof():
                self.upstream.transport.write_eof()
            return True
        return self.routed  # routed: the upstream gets the EOF once connected; not routed: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()
        self.upstream = None

    # The upstream's callbacks.
    def send(self, upstream: Upstream, data: bytes) -> None:
        if upstream is self.upstream and self.transport is not None:
            self.transport.write(data)

    def upstream_lost(self, upstream: Upstream) -> None:
        if upstream is self.upstream and self.transport is not None:
            self.transport.close()  # after what is buffered is written

    def transport_pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def transport_resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def _detach(self) -> None:
        """Leaves gunicorn for the stream process: the connection's next request is a stream."""
        upstream, self.upstream = self.upstream, None
        if upstream is not None and upstream.transport is not None:
            upstream.transport.close()
        self.routed = False
        self.pending = []

    def _route(self, first: bytes) -> None:
        if self.transport is None:
            return
        self.routed = True
        peer = self.transport.get_extra_info("peername")
        local = self.transport.get_extra_info("sockname")
        self.to_stream = first.startswith(STREAM_REQUEST_LINES)
        if self.to_stream:
            end = first.index(b"\r\n\r\n")
            address = peer[0] if isinstance(peer, tuple) else "unknown"
            first = first[: end + 2] + f"X-Forwarded-For: {address}\r\n\r\n".encode() + first[end + 4 :]
            target = self.front.stream
        else:
            if self.front.proxy_protocol:
                first = proxy_line(peer, local) + first
            target = self.front.web
        self.pending = [first]
        upstream = Upstream(self)
        self.upstream = upstream
        asyncio.get_running_loop().create_task(self._connect(upstream, target))

    async def _connect(self, upstream: Upstream, target: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            if target.startswith("unix:"):
                await loop.create_unix_connection(lambda: upstream, target.removeprefix("unix:"))
            else:
                host, port = listen_address(target)
                await loop.create_connection(lambda: upstream, host, port)
        except OSError:
            if upstream is self.upstream and self.transport is not None:
                self.transport.write(UNAVAILABLE)
                self.transport.close()
            return
        if upstream is not self.upstream or upstream.transport is None:
            if upstream.transport is not None:
                upstream.transport.close()
            return
        for chunk in self.pending:
            upstream.transport.write(chunk)
        self.pending = []
        if self.client_eof and upstream.transport.can_write_eof():
            upstream.transport.write_eof()

    def _forward(self, data: bytes) -> None:
        if self.upstream is not None and self.upstream.transport is not None and not self.pending:
            self.upstream.transport.write(data)
        else:
            self.pending.append(data)


_UNAVAILABLE_BODY = (
    b'{"error": {"code": "unavailable", "message": "The service is starting or stopping.", "fields": {}}}'
)
UNAVAILABLE = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_UNAVAILABLE_BODY)}\r\n\r\n".encode()
    + _UNAVAILABLE_BODY
)


def proxy_line(peer: object, local: object) -> bytes:
    """The PROXY protocol v1 header naming the client (nothing for a client without an IP address)."""
    if not (isinstance(peer, tuple) and isinstance(local, tuple)):
        return b""
    try:
        source, destination = ipaddress.ip_address(peer[0]), ipaddress.ip_address(local[0])
    except ValueError:
        return b""
    if source.version != destination.version:
        return b""
    family = "TCP4" if source.version == 4 else "TCP6"
    return f"PROXY {family} {source} {destination} {peer[1]} {local[1]}\r\n".encode()


class Front:
    """`web` and `stream` are `unix:PATH` or `HOST:PORT`; `proxy_protocol`: send gunicorn the PROXY line."""

    def __init__(self, *, web: str, stream: str, proxy_protocol: bool = True) -> None:
        self.web = web
        self.stream = stream
        self.proxy_protocol = proxy_protocol

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: ClientConnection(self), host, port, reuse_address=True, backlog=2048)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with server:
            await stop.wait()


def listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description="make run's front: the stream to uvicorn, the rest to gunicorn")
    parser.add_argument("--listen", required=True, help="host:port, e.g. 127.0.0.1:8000")
    parser.add_argument("--web", required=True, help="gunicorn: unix:PATH or HOST:PORT")
    parser.add_argument("--stream", required=True, help="the stream process: unix:PATH or HOST:PORT")
    parser.add_argument(
        "--no-proxy-protocol", action="store_true", help="send the web server no PROXY line (it must not expect one)"
    )
    arguments = parser.parse_args()
    host, port = listen_address(arguments.listen)
    front = Front(web=arguments.web, stream=arguments.stream, proxy_protocol=not arguments.no_proxy_protocol)
    try:
        import uvloop
    except ImportError:
        asyncio.run(front.serve(host, port))
    else:
        uvloop.run(front.serve(host, port))


if __name__ == "__main__":
    main()
