"""What the benchmarks that serve HTTP share (bench.http, bench.stream): a free loopback port, wrk, a scratch
database's URL, and a server process started, waited for and stopped. No Django here and no environment
changes, so importing it sets nothing up."""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wrk_path(log: Callable[[str], None]) -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is missing: installing Debian's package")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed; install it (apt-get install wrk) and run again")
    return found


def database_url(config: Mapping[str, Any], name: str) -> str:
    """The URL of database `name` on the server of `config` (a Django connection's settings_dict)."""
    credentials = quote(config["USER"] or "", safe="")
    if config["PASSWORD"]:
        credentials += ":" + quote(config["PASSWORD"], safe="")
    host = quote(config["HOST"] or "127.0.0.1", safe="")
    port = f":{config['PORT']}" if config["PORT"] else ""
    return f"postgres://{credentials}@{host}{port}/{name}"


@contextlib.contextmanager
def served(name: str, command: list[str], *, port: int, env: dict[str, str], log_path: Path) -> Iterator[int]:
    """Runs `command` (its output appended to `log_path`) until it listens on the loopback `port`, at most 60 s;
    yields its pid, and stops it afterwards (SIGTERM, then SIGKILL after 20 s)."""
    with log_path.open("ab") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with status {process.returncode}; see {log_path}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start within 60 s; see {log_path}")
            time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
