"""Issue 8, finding 9: `make test` run while `make run` was up used the same embedded Redis, so the live
worker took the tests' Celery messages, the tests' workers ran the live beat jobs, and the tests' flush
emptied the live Redis; `kill -INT` to the `make run` process stopped nothing.

Now the tests keep everything they put in Redis under their own namespace and empty only that (so they can
share even a database number with a live service, as CI does), `make test` without REDIS_URL starts a Redis
of its own, two `make run`s keep their Redis, control socket and beat schedule apart, and a signal to make
stops everything its `make run` started.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis
from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from tests.celery_worker import broker_flush

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def live_key(name: str) -> str:
    """A key as `make run` writes it: the live cache's prefix, no test namespace."""
    return f"forecastle:1:isolation-probe-{name}-{os.getpid()}"


def test_the_tests_never_empty_or_consume_what_a_live_service_keeps_in_the_same_redis():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    live_queue = f"celery-isolation-probe-{os.getpid()}"
    try:
        client.set(live_key("cache"), b"live")
        client.rpush(live_queue, b"a live message")
        cache.set("mine", 1)
        cache.clear()
        broker_flush()
        assert cache.get("mine") is None
        assert client.get(live_key("cache")) == b"live"
        assert client.llen(live_queue) == 1
        # What the tests publish lands under their namespace, never on a live queue's key.
        before = client.llen("celery")
        current_app.send_task("markets.tasks.candles_roll_up")
        prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
        assert client.llen(f"{prefix}celery") == 1
        assert client.llen("celery") == before
    finally:
        broker_flush()
        client.delete(live_key("cache"), live_queue)
        client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback, our own server)
            return response.status
    except OSError:
        return 0


def session_processes(session: int) -> list[int]:
    """Every live process whose session is `session` (make and all it started share it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry.name))
    return found


class MakeRun:
    """`make run` in a session of its own, on its own web port, with the given Redis port."""

    def __init__(self, *, database_url: str, redis_port: int, log: Path) -> None:
        self.port = free_port()
        self.log = log
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in {"REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST"}
        }
        environment.update(
            DATABASE_URL=database_url,
            WEB_ADDRESS=f"127.0.0.1:{self.port}",
            EMBEDDED_REDIS_PORT=str(redis_port),
            WEB_CONCURRENCY="1",
        )
        with log.open("wb") as sink:
            # -o: never reinstall the virtualenv from inside a test.
            self.process = subprocess.Popen(
                ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
                cwd=ROOT,
                env=environment,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_up(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while http_status(f"http://127.0.0.1:{self.port}/healthz") != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"make run did not come up:\n{self.output()[-4000:]}")
            time.sleep(1)

    def redis_port(self) -> int:
        line = next(line for line in self.output().splitlines() if "starting embedded Redis on 127.0.0.1:" in line)
        return int(line.rsplit(":", 1)[1])

    def control_socket(self) -> Path:
        return VAR / "run" / f"gunicorn-{self.port}.ctl"

    def stop(self, signum: int, timeout: float = 60) -> None:
        """Signals make's process alone (not its group), as `kill -INT <pid>` would, and waits."""
        os.kill(self.process.pid, signum)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"make run ignored signal {signum}:\n{self.output()[-3000:]}") from None
        deadline = time.monotonic() + 30
        while session_processes(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.5)

    def kill_all(self) -> None:
        if session_processes(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def scratch_database():
    """A database of its own for the `make run`s, on the server the tests use, dropped afterwards."""
    params = connection.get_connection_params()
    name = f"forecastle_run{os.environ.get('FORECASTLE_TEST_DB', '')}_{os.getpid()}"
    admin = {key: params[key] for key in ("host", "port", "user", "password") if params.get(key)}
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    host = admin.get("host", "127.0.0.1")
    location = host if not host.startswith("/") else ""
    port = admin.get("port", 5432)
    password = f":{admin['password']}" if admin.get("password") else ""
    url = f"postgres://{admin['user']}{password}@{location}:{port}/{name}"
    if host.startswith("/"):
        url += f"?host={host}"
    yield url
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
@pytest.mark.django_db
def test_two_make_runs_stay_apart_and_a_signal_to_make_stops_all_it_started(scratch_database, tmp_path):
    shared_redis_port = free_port()
    first = MakeRun(database_url=scratch_database, redis_port=shared_redis_port, log=tmp_path / "first.log")
    second = None
    try:
        first.wait_up()
        first_redis = first.redis_port()
        assert first_redis == shared_redis_port
        assert first.control_socket().is_socket()

        # The same EMBEDDED_REDIS_PORT: the second instance starts a Redis of its own instead of sharing.
        second = MakeRun(database_url=scratch_database, redis_port=shared_redis_port, log=tmp_path / "second.log")
        second.wait_up()
        second_redis = second.redis_port()
        assert second_redis != first_redis
        assert second.control_socket().is_socket()

        # A test run sharing the first instance's Redis (database 0, as CI shares one) leaves it whole.
        live = redis.Redis(port=first_redis)
        live.set("isolation-probe", b"live")
        assert live.exists("_kombu.binding.celery")
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{TEST_FAST}"],
            cwd=ROOT,
            env={**os.environ, "REDIS_URL": f"redis://127.0.0.1:{first_redis}/0"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # A flush would have taken both: the probe and the live broker's binding of its queue.
        assert live.get("isolation-probe") == b"live"
        assert live.exists("_kombu.binding.celery")
        live.close()

        second.stop(signal.SIGTERM)
        assert session_processes(second.process.pid) == []
        assert not listening(second.port)
        assert not listening(second_redis)
        # Stopping the second left the first whole: its web, its Redis, its control socket.
        assert http_status(f"http://127.0.0.1:{first.port}/healthz") == 200
        assert listening(first_redis)
        assert first.control_socket().is_socket()

        first.stop(signal.SIGINT)
        assert "make was interrupted; stopping everything" in first.output()
        assert session_processes(first.process.pid) == []
        assert not listening(first.port)
        assert not listening(first_redis)
    finally:
        for instance in (first, second):
            if instance is not None:
                instance.kill_all()


TEST_FAST = test_the_tests_never_empty_or_consume_what_a_live_service_keeps_in_the_same_redis.__name__
