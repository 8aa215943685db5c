"""A real stream server for tests: uvicorn serving config.stream_asgi against the test database and Redis,
on a free port, with a Redis stream key of its own (so parallel tests never see each other's events), and
a small Server-Sent Events client that reads it.

Use it only in `transaction=True` tests: the server is another process and sees committed rows only.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from django.conf import settings

from tests.celery_worker import test_database_url

ROOT = Path(__file__).resolve().parent.parent


def stream_key() -> str:
    """A stream key of the test's own, inside the test run's Redis namespace."""
    return f"{settings.TEST_REDIS_NAMESPACE}:stream-test-{uuid.uuid4().hex}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class StreamServer:
    key: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    clients: list["SseClient"] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def connect(self, path: str = "/api/v1/stream/", *, last_event_id: str | None = None) -> "SseClient":
        client = SseClient(self.port, path, last_event_id=last_event_id)
        self.clients.append(client)
        return client

    def disconnect_all(self, *, timeout: float = 20) -> None:
        """Closes every stream opened through this server and waits until the server has given back their
        slots (FORECASTLE_STREAM_CONNECTIONS_PER_ADDRESS): it frees a slot only once it sees the disconnect, so
        streams a test left open, or closed just before it ended, would still count against the next test."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        leases = redis.Redis.from_url(settings.REDIS_URL)
        try:
            deadline = time.monotonic() + timeout
            while held := [key for key in leases.scan_iter(match=f"{self.key}:connections:*") if leases.zcard(key)]:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the stream server still holds {held} {timeout:g}s after its clients left")
                time.sleep(0.05)
        finally:
            leases.close()


@contextmanager
def stream_server(*, key: str, env: dict[str, str] | None = None) -> Iterator[StreamServer]:
    """Starts `uvicorn config.stream_asgi:application` reading the stream `key` and waits until it accepts
    connections. Set settings.FORECASTLE_STREAM_KEY to the same key (stream_key()) so the services the
    test calls publish where the server reads."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="stream-server-", suffix=".log")[1])
    server_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "STREAM_REDIS_KEY": key,
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "config.stream_asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-proxy-headers",
        "--timeout-graceful-shutdown",
        "2",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=server_env, stdout=sink, stderr=subprocess.STDOUT)
    server = StreamServer(key, port, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stream server did not start:\n{server.output()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        for client in server.clients:
            client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


@dataclass
class Event:
    id: str | None
    event: str
    data: Any


class SseClient:
    """Opens the stream and reads its events (comments are kept apart, as `comments`)."""

    def __init__(self, port: int, path: str, *, last_event_id: str | None = None, timeout: float = 20) -> None:
        self.timeout = timeout
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", path, headers=headers)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.comments: list[str] = []
        self.retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.response.read())

    def next_event(self, *, timeout: float | None = None) -> Event:
        """The next event; raises TimeoutError if none has come within `timeout` seconds (the client's own timeout
        unless told otherwise). The socket's timeout alone would never fire on a stream that stays open: its
        heartbeat comments keep arriving, so a missing event would hang the test instead of failing it."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no event within {wait:g}s (only {len(self.comments)} comments so far, the last "
                    f"{self.comments[-3:]}; a partial event: {fields} {data})"
                )
            raw = self.response.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if data or "event" in fields:
                    return Event(fields.get("id"), fields.get("event", "message"), json.loads("\n".join(data)))
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "retry":
                self.retry = int(value)
            else:
                fields[name] = value

    def events_until(self, predicate: Any, *, limit: int = 50) -> list[Event]:
        """Events up to and including the first for which predicate(event) is true."""
        events = []
        for _ in range(limit):
            event = self.next_event()
            events.append(event)
            if predicate(event):
                return events
        raise AssertionError(f"no matching event among {limit}: {events}")

    def close(self) -> None:
        self.connection.close()


@dataclass
class FrontStack:
    """`make run`'s web side as tools/stack.py starts it: the front on a TCP port, gunicorn and uvicorn behind
    it on Unix sockets."""

    port: int
    logs: list[Path]

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-2000:] for log in self.logs)

    def connect(self, path: str, *, last_event_id: str | None = None) -> SseClient:
        return SseClient(self.port, path, last_event_id=last_event_id)


@contextmanager
def front_stack(*, key: str, directory: Path, env: dict[str, str] | None = None) -> Iterator[FrontStack]:
    web_socket, stream_socket = directory / "web.sock", directory / "stream.sock"
    port = free_port()
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "STREAM_REDIS_KEY": key,
        **(env or {}),
    }
    proxies = int(base_env.get("API_NUM_PROXIES", "0") or 0)
    commands = {
        "web": (
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"unix:{web_socket}",
                "--proxy-protocol",
                "v1",
                "--workers",
                "1",
                "--threads",
                "4",
                "--control-socket",
                str(directory / "gunicorn.ctl"),
            ],
            base_env,
        ),
        "stream": (
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.stream_asgi:application",
                "--uds",
                str(stream_socket),
                "--no-proxy-headers",
                "--timeout-graceful-shutdown",
                "2",
                "--log-level",
                "warning",
            ],
            {**base_env, "API_NUM_PROXIES": str(proxies + 1)},
        ),
        "front": (
            [
                sys.executable,
                "-m",
                "tools.front",
                "--listen",
                f"127.0.0.1:{port}",
                "--web",
                f"unix:{web_socket}",
                "--stream",
                f"unix:{stream_socket}",
            ],
            base_env,
        ),
    }
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    stack = FrontStack(port, logs)
    try:
        for name, (command, command_env) in commands.items():
            log = Path(tempfile.mkstemp(prefix=f"front-stack-{name}-", suffix=".log")[1])
            logs.append(log)
            with log.open("wb") as sink:
                processes.append(
                    subprocess.Popen(command, cwd=ROOT, env=command_env, stdout=sink, stderr=subprocess.STDOUT)
                )
        deadline = time.monotonic() + 60
        while not (web_socket.exists() and stream_socket.exists() and _answers(port)):
            if any(process.poll() is not None for process in processes) or time.monotonic() > deadline:
                raise RuntimeError(f"the front stack did not start:\n{stack.output()}")
            time.sleep(0.2)
        yield stack
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.unlink(missing_ok=True)


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
        connection.close()
    except OSError:
        return False
    return status == 200


@contextmanager
def front_process(*, web: str, stream: str, proxy_protocol: bool = True) -> Iterator[int]:
    """tools.front alone on a free port, in front of `web` and `stream` (HOST:PORT or unix:PATH); yields the port."""
    port = free_port()
    command = [sys.executable, "-m", "tools.front", "--listen", f"127.0.0.1:{port}", "--web", web, "--stream", stream]
    if not proxy_protocol:
        command.append("--no-proxy-protocol")
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the front did not start")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)
