"""A real Celery worker process for tests: `celery -A config worker` against the test database and
the test Redis, started and stopped (or SIGKILLed) by the test.

Use it only in `transaction=True` tests: the worker is another process and sees committed rows only.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from tests.redis_namespace import namespace_delete

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database the tests run on (test_forecastle<suffix>), for the worker's DATABASE_URL."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    # The embedded server of `make test` listens on a Unix socket: its directory is the (quoted) host.
    location = quote(host, safe="") if host.startswith("/") else f"{host}:{db.get('PORT') or 5432}"
    return f"postgres://{db['USER']}{password}@{location}/{db['NAME']}"


def broker_flush() -> None:
    """Empties this test run's broker namespace (config/settings/test.py): no message of an earlier run is
    redelivered, and nothing outside the namespace, such as a running `make run`'s queues, is touched."""
    namespace_delete(settings.CELERY_BROKER_URL, str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]))


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the whole process group: no warm shutdown, no ack, no rollback by the worker."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def celery_worker(
    *, name: str, env: dict[str, str] | None = None, ready_timeout: float = 60, beat: bool = False
) -> Iterator[Worker]:
    """Starts `celery -A config worker --pool=solo` (the task runs in the process we may kill) and waits
    until it is ready to consume. With `beat`, the worker also runs the beat schedule of the settings (`-B`,
    with a schedule file of its own), as `make run`'s beat would."""
    log = Path(tempfile.mkstemp(prefix=f"celery-{name}-", suffix=".log")[1])
    schedule = Path(tempfile.mkdtemp(prefix=f"celery-beat-{name}-")) / "schedule"
    beat_arguments = ["-B", "-s", str(schedule)] if beat else []
    worker_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        **(env or {}),
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{name}@%h",
                *beat_arguments,
            ],
            cwd=ROOT,
            env=worker_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log)
    try:
        deadline = time.monotonic() + ready_timeout
        while " ready." not in worker.output():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker {name} did not start:\n{worker.output()[-3000:]}")
            time.sleep(0.2)
        yield worker
    finally:
        worker.stop()
        log.unlink(missing_ok=True)
        shutil.rmtree(schedule.parent, ignore_errors=True)


def wait_for(
    predicate: Callable[[], bool], *, timeout: float = 60, interval: float = 0.2, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
