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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def connect(self, path: str = "/api/v1/stream/", *, last_event_id: str | None = None) -> "SseClient":
        return SseClient(self.port, path, last_event_id=last_event_id)


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

    def next_event(self) -> Event:
        """The next event; raises TimeoutError (socket timeout) if none comes."""
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
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
