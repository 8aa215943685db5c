"""Live stream benchmark: 1,000 concurrent stream clients, the delay from a trade's commit to its event
reaching every client, and the web tier's trade throughput with and without those clients connected.

Servers, on a scratch database made by Django's create_test_db (9 four-outcome markets, 8 traders with API
keys), as the README deploys them: gunicorn `config.wsgi --workers 2 --threads 4` and one uvicorn process
serving `config.stream_asgi`, both under config.settings.production; plus `make run`'s front
(tools/front.py) before gunicorn, to measure what its hop costs a cached read.

- Clients: CLIENTS Server-Sent Events connections to the stream process, all in one asyncio process
  (uvloop) of the benchmark's own, each following the latency market (`?markets=bench-latency`).
- Delay: the benchmark trades on the latency market through the trade service in its own process, one
  trade every INTERVAL seconds. The commit time is taken by an on_commit callback registered before the
  trade's own (they run in order, right after the commit); each client notes when the trade's `trade`
  event arrives (time.time(), the same clock). Per trade, "every client" is the last client's arrival;
  the per-event figures are over every (trade, client) pair. Every client must get every trade.
- Throughput: wrk (bench/wrk/requests.lua, as bench/http.py uses it) posts trades with 8 connections over
  8 other markets, without clients, with the clients connected, and without again; the "without" figure is
  the median of the runs before and after. The clients do not follow those markets: the stream process
  still reads each of their events and passes it by.
- Front: wrk reads a cached market detail with 8 connections straight from gunicorn and through the front,
  interleaved.

    make bench BENCH_ARGS=stream                                 # through tools/stack.py
    python -m bench.stream --clients 1000 --runs 3 --seconds 5   # alone (DATABASE_URL and REDIS_URL set)
    python -m bench.stream --ports 8410 8411 8412                # on given ports (by default free ones)
    python -m bench.stream --quick                               # a smoke run: 50 clients, 1 s runs
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from bench.servers import database_url, free_port, served, wrk_path

os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_stream"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["FORECASTLE_SIGNUP_GRANT"] = "10000000"
CACHE_PREFIX = f"bench-stream-{uuid.uuid4().hex[:12]}"
os.environ["CACHE_KEY_PREFIX"] = CACHE_PREFIX
STREAM_KEY = f"{CACHE_PREFIX}:stream"
os.environ["STREAM_REDIS_KEY"] = STREAM_KEY

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "wrk" / "requests.lua"
BIN = Path(sys.executable).parent
CONNECTIONS = 8
BENCH_RATE = "1000000/min"
LATENCY_MARKET = "bench-latency"
READ_MARKET = "bench-read"
TRADE_BODIES = "|".join(
    json.dumps({"outcome": code, "side": "buy", "amount": "1"}, separators=(",", ":")) for code in "ABCD"
)


def log(message: str) -> None:
    print(f"[bench.stream] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# The client process: `python -m bench.stream --client PORT PATH COUNT OUT`. It prints READY once every
# stream answered 200, and on SIGTERM writes {trade id: [arrival times]} and the failures to OUT.
async def _client_main(port: int, path: str, count: int, out: Path) -> None:
    arrivals: dict[int, list[float]] = {}
    failures: list[str] = []
    opened = 0
    ready = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    # Clients arrive a hundred at a time, not all in the same millisecond.
    connecting = asyncio.Semaphore(100)

    async def one() -> None:
        nonlocal opened
        try:
            async with connecting:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
                request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
                writer.write(request.encode())
                head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                failures.append(head.split(b"\r\n", 1)[0].decode())
                return
            opened += 1
            if opened == count:
                ready.set()
            while True:
                chunk = await reader.readuntil(b"\n\n")
                if b"event: trade" not in chunk:
                    continue
                now = time.time()
                data = chunk[chunk.index(b"data: ") + 6 :]
                trade_id = json.loads(data.split(b"\n", 1)[0])["id"]
                arrivals.setdefault(trade_id, []).append(now)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            if not stop.is_set():
                failures.append(repr(error))

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED, timeout=120)
    print("READY" if ready.is_set() else f"FAILED {failures[:3]}", flush=True)
    # The benchmark names its last trade in LAST once it traded; DONE when every client has it.
    last = out.with_suffix(".last")
    while not stop.is_set():
        if last.exists() and len(arrivals.get(int(last.read_text()), [])) >= count:
            print("DONE", flush=True)
            break
        await asyncio.sleep(0.2)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    out.write_text(json.dumps({"arrivals": arrivals, "failures": failures, "opened": opened}))


def client_main(arguments: list[str]) -> None:
    port, path, count, out = int(arguments[0]), arguments[1], int(arguments[2]), Path(arguments[3])
    try:
        import uvloop
    except ImportError:
        asyncio.run(_client_main(port, path, count, out))
    else:
        uvloop.run(_client_main(port, path, count, out))


if __name__ == "__main__" and sys.argv[1:2] == ["--client"]:
    client_main(sys.argv[2:])
    sys.exit(0)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.services import api_key_create, user_create  # noqa: E402
from markets.models import Market  # noqa: E402
from markets.services import market_create, markets_reconcile, trade_execute  # noqa: E402
from markets.trade_request import TradeRequest  # noqa: E402


def server(
    name: str, command: list[str], *, port: int, env: dict[str, str], work: Path
) -> contextlib.AbstractContextManager[int]:
    return served(name, command, port=port, env=env, log_path=work / f"{name}.log")


def run_wrk(wrk: str, *, port: int, method: str, paths: list[str], tokens: list[str], seconds: int) -> dict[str, float]:
    env = {
        **os.environ,
        "BENCH_METHOD": method,
        "BENCH_PATHS": " ".join(paths),
        "BENCH_TOKENS": " ".join(tokens),
        "BENCH_BODIES": TRADE_BODIES if method == "POST" else "",
        "BENCH_RUN": f"{CACHE_PREFIX}-{uuid.uuid4().hex[:8]}",
    }
    command = [wrk, f"-t{CONNECTIONS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA)]
    finished = subprocess.run(
        [*command, f"http://127.0.0.1:{port}"], env=env, capture_output=True, text=True, check=False
    )
    line = next((row for row in finished.stdout.splitlines() if row.startswith("BENCH_JSON ")), None)
    if finished.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed:\n{finished.stdout}\n{finished.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "errors": raw["non2xx"] + raw["socket_errors"],
    }


def seed() -> tuple[list[str], list[str]]:
    """Traders' API keys and the slugs of the markets wrk trades on; the latency and read markets too."""
    users = [user_create(username=f"bench{index}", password=None) for index in range(CONNECTIONS)]
    keys = [api_key_create(user=user, name="bench")[1] for user in users]
    slugs = [f"bench-{index}" for index in range(CONNECTIONS)]
    for slug in [*slugs, LATENCY_MARKET, READ_MARKET]:
        market_create(
            slug=slug,
            question=f"Benchmark market {slug}?",
            kind=Market.Kind.MULTIPLE,
            outcomes=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")],
            liquidity=1000,
            closes_at=timezone.now() + timedelta(days=7),
        )
    return keys, slugs


def server_environment(scratch: str, clients: int) -> dict[str, str]:
    rates = {f"API_RATE_{scope}": BENCH_RATE for scope in ("ANON_READ", "USER_READ", "TRADE", "AUTH_TOKEN")}
    return {
        **os.environ,
        **rates,
        "REDIS_URL": str(settings.CACHES["default"]["LOCATION"]),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": database_url(connection.settings_dict, scratch),
        "SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "EMAIL_HOST": "localhost",
        "DEFAULT_FROM_EMAIL": "bench@localhost",
        "STREAM_CONNECTIONS_PER_ADDRESS": str(clients + 100),
        "STREAM_REDIS_KEY": STREAM_KEY,
        "LOG_LEVEL": "WARNING",
    }


class Clients:
    def __init__(self, process: subprocess.Popen[str], out: Path) -> None:
        self.process = process
        self.out = out

    def wait_done(self, *, last_trade: int, timeout: float) -> None:
        """Until every client has the last trade's event (or `timeout` seconds: the report counts what is lost)."""
        self.out.with_suffix(".last").write_text(str(last_trade))
        deadline = time.monotonic() + timeout
        while self.process.stdout is not None and (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.process.stdout], [], [], remaining)
            if readable and self.process.stdout.readline().strip() == "DONE":
                return
        log("not every client got every event in time")


@contextlib.contextmanager
def clients_connected(*, port: int, count: int, work: Path) -> Iterator[Clients]:
    out = work / "arrivals.json"
    command = [sys.executable, "-m", "bench.stream", "--client", str(port), f"/api/v1/stream/?markets={LATENCY_MARKET}"]
    process = subprocess.Popen([*command, str(count), str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip() if process.stdout is not None else ""
        if line != "READY":
            raise SystemExit(f"the stream clients did not all connect: {line}")
        log(f"{count} stream clients connected")
        yield Clients(process, out)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def latency(trades: int, interval: float) -> dict[int, float]:
    """Trades on the latency market; returns each trade's commit time by trade id."""
    market = Market.objects.get(slug=LATENCY_MARKET)
    trader = user_create(username=f"latency-{uuid.uuid4().hex[:8]}", password=None)
    committed: dict[int, float] = {}
    for index in range(trades):
        moment: list[float] = []

        def commit_noted(moment: list[float] = moment) -> None:
            moment.append(time.time())

        with transaction.atomic():
            # Registered before the trade's own callbacks, so it runs first, right after the commit.
            transaction.on_commit(commit_noted)
            result = trade_execute(
                user=trader,
                market=market,
                request=TradeRequest(outcome="ABCD"[index % 4], side="buy", amount=Decimal(1)),
            )
        committed[result.trade.pk] = moment[0]
        time.sleep(interval)
    return committed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--trades", type=int, default=100, help="trades whose delay is measured")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between those trades")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50 clients, 20 trades, 1 s runs")
    parser.add_argument(
        "--ports", type=int, nargs=3, metavar=("WEB", "STREAM", "FRONT"), help="the servers' ports (default: free ones)"
    )
    options = parser.parse_args()
    if options.quick:
        options.clients, options.trades, options.runs, options.seconds = 50, 20, 1, 1
    wrk = wrk_path(log)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, options.clients * 2 + 1024)), hard))

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    scratch = connection.settings_dict["NAME"]
    work = Path(tempfile.mkdtemp(prefix="forecastle-bench-stream-"))
    try:
        keys, slugs = seed()
        env = server_environment(scratch, options.clients)
        web, stream, front = options.ports or (free_port(), free_port(), free_port())
        web_command = [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{web}", "--workers", "2"]
        web_command += ["--threads", "4", "--graceful-timeout", "10", "--proxy-protocol", "v1"]
        stream_command = [str(BIN / "uvicorn"), "config.stream_asgi:application", "--port", str(stream)]
        stream_command += ["--no-proxy-headers", "--timeout-graceful-shutdown", "2", "--log-level", "warning"]
        front_command = [sys.executable, "-m", "tools.front", "--listen", f"127.0.0.1:{front}"]
        front_command += ["--web", f"127.0.0.1:{web}", "--stream", f"127.0.0.1:{stream}"]
        log(f"gunicorn on :{web}, uvicorn on :{stream}, the front on :{front}; logs in {work}")
        trades = [f"/api/v1/markets/{slug}/trades/" for slug in slugs]
        read = [f"/api/v1/markets/{READ_MARKET}/"]
        throughput: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
        reads: dict[str, list[dict[str, float]]] = {"gunicorn": [], "front": []}
        with (
            server("gunicorn", web_command, port=web, env=env, work=work),
            server("uvicorn", stream_command, port=stream, env=env, work=work) as stream_pid,
            server("front", front_command, port=front, env=env, work=work),
        ):
            run_wrk(wrk, port=web, method="POST", paths=trades, tokens=keys, seconds=1)  # warm-up
            run_wrk(wrk, port=front, method="GET", paths=read, tokens=[], seconds=1)
            for _ in range(options.runs):
                reads["gunicorn"].append(
                    run_wrk(wrk, port=web, method="GET", paths=read, tokens=[], seconds=options.seconds)
                )
                reads["front"].append(
                    run_wrk(wrk, port=front, method="GET", paths=read, tokens=[], seconds=options.seconds)
                )
            for _ in range(options.runs):
                throughput["without"].append(
                    run_wrk(wrk, port=web, method="POST", paths=trades, tokens=keys, seconds=options.seconds)
                )
            with clients_connected(port=stream, count=options.clients, work=work) as clients:
                stream_cpu_before = process_cpu(stream_pid)
                for _ in range(options.runs):
                    throughput["with"].append(
                        run_wrk(wrk, port=web, method="POST", paths=trades, tokens=keys, seconds=options.seconds)
                    )
                stream_cpu = process_cpu(stream_pid) - stream_cpu_before
                committed = latency(options.trades, options.interval)
                clients.wait_done(last_trade=max(committed), timeout=120)
            for _ in range(options.runs):
                throughput["without"].append(
                    run_wrk(wrk, port=web, method="POST", paths=trades, tokens=keys, seconds=options.seconds)
                )
        result = json.loads(clients.out.read_text())
        errors = sum(int(run["errors"]) for runs in (*throughput.values(), *reads.values()) for run in runs)
        lost = report(options, committed, result, throughput, reads, stream_cpu)
        violations = markets_reconcile()
        print(f"errors (non-2xx answers and socket errors): {errors}; events lost: {lost}")
        print(f"invariant violations after the run (markets and ledger reconciliation): {len(violations)}")
        return 1 if errors or lost or violations or result["failures"] else 0
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(work, ignore_errors=True)


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(
    options: argparse.Namespace,
    committed: dict[int, float],
    result: dict,
    throughput: dict[str, list[dict[str, float]]],
    reads: dict[str, list[dict[str, float]]],
    stream_cpu: float,
) -> int:
    arrivals = {int(trade_id): times for trade_id, times in result["arrivals"].items()}
    per_event: list[float] = []
    every_client: list[float] = []
    lost = 0
    for trade_id, commit in committed.items():
        times = arrivals.get(trade_id, [])
        lost += options.clients - len(times)
        per_event += [(moment - commit) * 1000 for moment in times]
        if times:
            every_client.append((max(times) - commit) * 1000)
    print(
        f"\n{options.clients} stream clients (one asyncio process), {len(committed)} trades {options.interval} s apart"
    )
    print(f"{'delay from commit, ms':<44} {'p50':>8} {'p95':>8} {'max':>8}")
    print(
        f"{'  to each client (every trade x client)':<44} {percentile(per_event, 0.5):8.1f}"
        f" {percentile(per_event, 0.95):8.1f} {max(per_event):8.1f}"
    )
    print(
        f"{'  to the last of the clients (per trade)':<44} {percentile(every_client, 0.5):8.1f}"
        f" {percentile(every_client, 0.95):8.1f} {max(every_client):8.1f}"
    )

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    print(
        f"\nweb tier (gunicorn, 2 workers x 4 threads), wrk {CONNECTIONS} connections,"
        f" {options.runs} x {options.seconds} s"
    )
    print(f"{'':<44} {'req/s':>8} {'p50':>8} {'p95':>8}")
    for label, runs in (
        ("trades, no stream clients", throughput["without"]),
        (f"trades, {options.clients} stream clients connected", throughput["with"]),
        ("cached read (market detail), gunicorn", reads["gunicorn"]),
        ("cached read (market detail), via the front", reads["front"]),
    ):
        print(f"{label:<44} {median(runs, 'rps'):8.1f} {median(runs, 'p50_ms'):8.1f} {median(runs, 'p95_ms'):8.1f}")
    ratio = median(throughput["with"], "rps") / median(throughput["without"], "rps")
    front = median(reads["front"], "rps") / median(reads["gunicorn"], "rps")
    print(f"trade throughput with / without clients: {ratio:.2f}x; cached reads via the front / direct: {front:.2f}x")
    seconds = options.runs * options.seconds
    print(f"stream process CPU while the trades ran beside the clients: {stream_cpu / seconds * 100:.0f} % of a core")
    return lost


if __name__ == "__main__":
    sys.exit(main())
