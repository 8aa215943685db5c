"""HTTP benchmark: Forecastle served as the README deploys it, against a floor project in the same run.

Both servers are gunicorn with `--workers 2 --threads 4` on loopback, on the same PostgreSQL and Redis:
- Forecastle: `config.wsgi` under the production settings, on a scratch database made by Django's
  create_test_db (migrated, 8 four-outcome markets, 8 traders each with an API key and a large grant);
- the floor (bench/floor/): Django + DRF with the same database and cache settings, no middleware beyond
  Security and Common: a trade is token auth plus one transaction that locks a row, updates it and inserts
  a row; a read is one Redis GET of bytes rendered beforehand (a copy of Forecastle's market detail body; the
  list and the history, whose bodies are larger, are also compared with a GET of a copy of their own bytes).

The reads are measured as real clients make them, with `Accept-Encoding: gzip, deflate` (what httpx and requests send;
browsers and curl --compressed send gzip too), sent to both servers: Forecastle answers its cached reads with the gzip
bytes it stored when it rendered them (bodies of 1 kB or more), while the floor ignores the header and sends its
identity bytes, as a one-GET floor does. Each read is also measured without the header (the "identity" lines, against
the floor without it either), so the identity figures stay in the report; the bodies each server sent, and their
sizes, are printed after the table. wrk does not inflate what it receives: a real client's inflate of a gzip body is
its own CPU, not measured here.

Load comes from Debian's wrk (installed with apt-get if missing), one thread per connection, in bounded runs;
bench/wrk/requests.lua sends the POST bodies, the API keys, any extra headers and a unique Idempotency-Key per
trade. Each case
runs once to warm up, then the cases are interleaved (Forecastle, floor, Forecastle, ...) and repeated;
the figures are medians. CPU per request is the user+system time of the server's processes (gunicorn
master and workers, from /proc) over the run, divided by the requests served: the app's CPU, without
PostgreSQL's or Redis's. Any non-2xx answer or socket error fails the run, and so does any invariant
violation found by the reconciliations run after it.

    make bench BENCH_ARGS=http                      # through tools/stack.py
    python -m bench.http --runs 3 --seconds 5       # alone (DATABASE_URL and REDIS_URL set)
    python -m bench.http --quick                    # a smoke run: 1 repeat of 1 s per case
    python -m bench.http --reads                    # the cached reads and their floors only
    python -m bench.http --trades                   # the trades and their floors only
"""

import argparse
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from bench.servers import database_url, free_port, served, wrk_path

os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_http"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
# Each trader trades thousands of times over a full run.
os.environ["FORECASTLE_SIGNUP_GRANT"] = "10000000"
# A prefix of this run's own: cached prices and throttle counters of another run never leak into it.
CACHE_PREFIX = f"bench-http-{uuid.uuid4().hex[:12]}"
os.environ["CACHE_KEY_PREFIX"] = CACHE_PREFIX

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.services import api_key_create, user_create  # noqa: E402
from markets.models import Market  # noqa: E402
from markets.services import market_create, markets_reconcile, trade_execute  # noqa: E402
from markets.trade_request import TradeRequest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "wrk" / "requests.lua"
BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONNECTIONS = 8
# Far above what the runs reach: the throttles still run (and cost what they cost), but never refuse.
BENCH_RATE = "1000000/min"
# Reads whose bodies are larger than the detail's, each also compared with a floor that sends a copy of its bytes.
SIZED_READS = {"list": "/api/v1/markets/", "history": "/api/v1/markets/{slug}/history/"}
# What httpx and requests send by default; the floor ignores it.
ACCEPT_GZIP = "Accept-Encoding: gzip, deflate"
# The cached reads, by case name: (label, path under the read market's slug).
READS = {
    "detail": ("market detail", "/api/v1/markets/{slug}/"),
    "list": ("market list", "/api/v1/markets/"),
    "quote": ("quote", "/api/v1/markets/{slug}/quote/?outcome=A&side=buy&amount=10"),
    "history": ("history", "/api/v1/markets/{slug}/history/"),
}
FLOOR_READS = {"": "/read/", **{name: f"/read/{name}/" for name in SIZED_READS}}
TRADE_BODIES = "|".join(
    json.dumps({"outcome": code, "side": "buy", "amount": "1"}, separators=(",", ":")) for code in "ABCD"
)


@dataclass
class Case:
    name: str
    server: str  # "forecastle" or "floor"
    connections: int
    method: str
    paths: list[str]
    tokens: list[str] = field(default_factory=list)
    bodies: str = ""
    headers: list[str] = field(default_factory=list)  # "Name: value"
    results: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(result[key] for result in self.results)


def log(message: str) -> None:
    print(f"[bench.http] {message}", file=sys.stderr, flush=True)


def cpu_seconds(master_pid: int) -> float:
    """User + system time of the gunicorn master and its workers, from /proc."""
    pids = [master_pid]
    with contextlib.suppress(OSError):
        pids += [int(pid) for pid in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()]
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


@contextlib.contextmanager
def gunicorn(*, module: str, port: int, env: dict[str, str], log_path: Path) -> Iterator[int]:
    command = [
        str(BIN / "gunicorn"),
        module,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        "--graceful-timeout",
        "10",
    ]
    with served(module, command, port=port, env=env, log_path=log_path) as pid:
        yield pid


def run_wrk(wrk: str, case: Case, *, port: int, master_pid: int, seconds: int, run_id: str) -> dict[str, float]:
    env = {
        **os.environ,
        "BENCH_METHOD": case.method,
        "BENCH_PATHS": " ".join(case.paths),
        "BENCH_TOKENS": " ".join(case.tokens),
        "BENCH_BODIES": case.bodies,
        "BENCH_RUN": run_id,
        "BENCH_HEADERS": "|".join(case.headers),
    }
    command = [
        wrk,
        f"-t{case.connections}",
        f"-c{case.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
    ]
    cpu_before = cpu_seconds(master_pid)
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    cpu = cpu_seconds(master_pid) - cpu_before
    line = next((row for row in finished.stdout.splitlines() if row.startswith("BENCH_JSON ")), None)
    if finished.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed for {case.name}:\n{finished.stdout}\n{finished.stderr}")
    if finished.stderr.strip():
        log(f"{case.server} {case.name}: {finished.stderr.strip()}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    requests = max(1, raw["requests"])
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "errors": raw["non2xx"] + raw["socket_errors"],
        "cpu_ms": cpu * 1000 / requests,
        "requests": raw["requests"],
    }


def seed_forecastle() -> tuple[list[str], list[str], str]:
    """Traders' API keys, trading market slugs, and the slug of a market for reads (never traded by wrk)."""
    users = [user_create(username=f"bench{index}", password=None) for index in range(CONNECTIONS)]
    keys = [api_key_create(user=user, name="bench")[1] for user in users]
    slugs = []
    for index in range(CONNECTIONS + 1):
        slug = f"bench-{index}" if index < CONNECTIONS else "bench-read"
        market_create(
            slug=slug,
            question=f"Benchmark market {slug}?",
            kind=Market.Kind.MULTIPLE,
            outcomes=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")],
            liquidity=1000,
            closes_at=timezone.now() + timedelta(days=7),
        )
        slugs.append(slug)
    read_market = Market.objects.get(slug="bench-read")
    # A history worth reading: 200 price points.
    for index in range(200):
        trade_execute(
            user=users[index % len(users)],
            market=read_market,
            request=TradeRequest(outcome="ABCD"[index % 4], side="buy", amount=Decimal(1 + index % 5)),
        )
    return keys, slugs[:CONNECTIONS], "bench-read"


def report(cases: dict[str, Case], runs: int, seconds: int) -> None:
    def row(label: str, case: Case | None, floor: Case | None) -> None:
        if case is None:
            return
        rps = case.median("rps")
        ratio = f"{rps / floor.median('rps'):6.2f}x" if floor else "       "
        floor_text = (
            f"{floor.median('rps'):8.1f} {floor.median('p50_ms'):6.1f} {floor.median('p95_ms'):6.1f}"
            f" {floor.median('cpu_ms'):6.2f}"
            if floor
            else " " * 30
        )
        print(
            f"{label:<34} {rps:8.1f} {case.median('p50_ms'):6.1f} {case.median('p95_ms'):6.1f}"
            f" {case.median('cpu_ms'):6.2f}   {floor_text}   {ratio}"
        )

    print(f"\nmedians of {runs} interleaved run(s) of {seconds:g} s per case; req/s, p50 and p95 in ms, CPU ms/request")
    print(f"{'':<34} {'Forecastle':^29}   {'floor':^30}   ratio")
    print(f"{'work':<34} {'req/s':>8} {'p50':>6} {'p95':>6} {'cpu':>6}   {'req/s':>8} {'p50':>6} {'p95':>6} {'cpu':>6}")
    row("trade, 1 connection", cases.get("trade_1"), cases.get("floor_trade_1"))
    row("trade, 8 connections (one market)", cases.get("trade_8"), cases.get("floor_trade_8"))
    row("trade, 8 connections, 8 markets", cases.get("trade_8_spread"), None)
    for suffix, title in (("", "Accept-Encoding: gzip (the floor ignores it)"), ("_identity", "no Accept-Encoding")):
        print(f"cached reads, {title}:")
        for name, (label, _path) in READS.items():
            row(f"cached read: {label}, 8 conn", cases.get(f"read_{name}{suffix}"), cases.get(f"floor_read{suffix}"))
        for name in SIZED_READS:
            row(
                f"  {name} against its own bytes",
                cases.get(f"read_{name}{suffix}"),
                cases.get(f"floor_read_{name}{suffix}"),
            )
    if "trade_8" not in cases:
        return
    hot, spread = cases["trade_8"].median("rps"), cases["trade_8_spread"].median("rps")
    print(f"one hot market / 8 markets (8 connections): {hot:.1f} / {spread:.1f} req/s = {hot / spread:.2f}x")


def build_cases(*, keys: list[str], slugs: list[str], read_slug: str, floor_seed: dict[str, list]) -> list[Case]:
    """Every case, in the order of one interleaved round."""
    trades = [f"/api/v1/markets/{slug}/trades/" for slug in slugs]
    books = [f"/trade/{book}/" for book in floor_seed["books"]]
    tokens = floor_seed["tokens"]
    many = CONNECTIONS
    return [
        Case("trade_1", "forecastle", 1, "POST", trades[:1], keys[:1], TRADE_BODIES),
        Case("floor_trade_1", "floor", 1, "POST", books[:1], tokens[:1], TRADE_BODIES),
        Case("trade_8", "forecastle", many, "POST", trades[:1], keys, TRADE_BODIES),
        Case("floor_trade_8", "floor", many, "POST", books[:1], tokens, TRADE_BODIES),
        Case("trade_8_spread", "forecastle", many, "POST", trades, keys, TRADE_BODIES),
        *read_cases(read_slug),
    ]


def read_cases(read_slug: str) -> list[Case]:
    """Each cached read and its floors, with Accept-Encoding: gzip sent to both servers and then without it, each
    pair run back to back, so that the two are measured under the same load."""
    targets = [(f"read_{name}", "forecastle", path.format(slug=read_slug)) for name, (_label, path) in READS.items()]
    targets.insert(1, ("floor_read", "floor", FLOOR_READS[""]))
    targets += [(f"floor_read_{name}", "floor", FLOOR_READS[name]) for name in SIZED_READS]
    cases = []
    for name, server, path in targets:
        cases.append(Case(name, server, CONNECTIONS, "GET", [path], headers=[ACCEPT_GZIP]))
        cases.append(Case(f"{name}_identity", server, CONNECTIONS, "GET", [path]))
    return cases


def bodies_served(*, port: int, floor_port: int, read_slug: str) -> list[str]:
    """One line per read and server: the body's size as sent with and without Accept-Encoding: gzip."""
    lines = []
    targets = [(f"Forecastle {name}", port, path.format(slug=read_slug)) for name, (_label, path) in READS.items()]
    targets += [(f"floor {name or 'detail'}", floor_port, path) for name, path in FLOOR_READS.items()]
    for label, server_port, path in targets:
        sizes = []
        for headers in ({"Accept-Encoding": ACCEPT_GZIP.split(": ", 1)[1]}, {}):
            connection = http.client.HTTPConnection("127.0.0.1", server_port, timeout=30)
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                coding = response.getheader("Content-Encoding") or "identity"
                sizes.append(f"{len(response.read()):>6} B {coding:<8}")
            finally:
                connection.close()
        lines.append(f"  {label:<22} with gzip accepted: {sizes[0]}  without: {sizes[1]}")
    return lines


def measure(wrk: str, cases: list[Case], servers: dict[str, tuple[int, int]], *, runs: int, seconds: int) -> int:
    """A warm-up round of 1 s per case, then `runs` rounds; returns how many requests failed."""
    errors = 0
    for round_index in range(runs + 1):
        warm_up = round_index == 0
        for case in cases:
            port, master = servers[case.server]
            result = run_wrk(
                wrk,
                case,
                port=port,
                master_pid=master,
                seconds=1 if warm_up else seconds,
                run_id=f"{CACHE_PREFIX}-{round_index}-{case.name}",
            )
            if result["errors"]:
                log(f"{case.server} {case.name}: {result['errors']} errors of {result['requests']}")
                errors += int(result["errors"])
            if not warm_up:
                case.results.append(result)
        log(f"{'warm-up' if warm_up else f'run {round_index}/{runs}'} done")
    return errors


def server_environments(scratch: str, floor_db: str) -> tuple[dict[str, str], dict[str, str]]:
    # Forecastle logs at its deployed default (INFO: one JSON access line per request, to the log file).
    base: dict[str, str] = {**os.environ, "REDIS_URL": str(settings.CACHES["default"]["LOCATION"])}
    rates = {f"API_RATE_{scope}": BENCH_RATE for scope in ("ANON_READ", "USER_READ", "TRADE", "AUTH_TOKEN")}
    forecastle: dict[str, str] = {
        **base,
        **rates,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": database_url(connection.settings_dict, scratch),
        "SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "EMAIL_HOST": "localhost",
        "DEFAULT_FROM_EMAIL": "bench@localhost",
    }
    floor: dict[str, str] = {
        **base,
        "DJANGO_SETTINGS_MODULE": "bench.floor.settings",
        "DATABASE_URL": database_url(connection.settings_dict, floor_db),
    }
    return forecastle, floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="interleaved repeats of every case (medians)")
    parser.add_argument("--seconds", type=int, default=5, help="length of one run of one case")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 repeat of 1 s")
    parser.add_argument("--reads", action="store_true", help="only the cached reads and their floors (no trades)")
    parser.add_argument("--trades", action="store_true", help="only the trades and their floors (no reads)")
    parser.add_argument("--port", type=int, default=0, help="Forecastle's port (default: a free one)")
    parser.add_argument("--floor-port", type=int, default=0, help="the floor's port (default: a free one)")
    options = parser.parse_args()
    runs, seconds = (1, 1) if options.quick else (options.runs, options.seconds)
    port, floor_port = options.port or free_port(), options.floor_port or free_port()
    wrk = wrk_path(log)

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    scratch = connection.settings_dict["NAME"]
    floor_db = f"{scratch}_floor"
    work = Path(tempfile.mkdtemp(prefix="forecastle-bench-http-"))
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{floor_db}"')
            cursor.execute(f'CREATE DATABASE "{floor_db}"')
        keys, slugs, read_slug = seed_forecastle()
        connection.close()
        forecastle_env, floor_env = server_environments(scratch, floor_db)
        log(f"servers: Forecastle on :{port}, floor on :{floor_port}; logs in {work}")
        with gunicorn(module="config.wsgi", port=port, env=forecastle_env, log_path=work / "forecastle.log") as app:
            # The floor serves the very bytes of Forecastle's market detail, and those of its list and history, which
            # are larger: each of those reads is also compared with a floor that sends as many bytes.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/markets/{read_slug}/") as response:
                (work / "read-body.json").write_bytes(response.read())
            seed = [
                "--users",
                str(CONNECTIONS),
                "--books",
                str(CONNECTIONS),
                "--read-body",
                str(work / "read-body.json"),
            ]
            for name, path in SIZED_READS.items():
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path.format(slug=read_slug)}") as response:
                    (work / f"{name}-body.json").write_bytes(response.read())
                seed += ["--named-body", f"{name}={work / f'{name}-body.json'}"]
            seeded = subprocess.run(
                [sys.executable, "-m", "bench.floor.seed", *seed],
                cwd=ROOT,
                env=floor_env,
                capture_output=True,
                text=True,
                check=True,
            )
            floor_seed = json.loads(seeded.stdout)
            floor_log = work / "floor.log"
            with gunicorn(module="bench.floor.wsgi", port=floor_port, env=floor_env, log_path=floor_log) as floor:
                cases = build_cases(keys=keys, slugs=slugs, read_slug=read_slug, floor_seed=floor_seed)
                if options.reads:
                    cases = [case for case in cases if case.name.startswith(("read_", "floor_read"))]
                if options.trades:
                    cases = [case for case in cases if case.name.startswith(("trade_", "floor_trade"))]
                servers = {"forecastle": (port, app), "floor": (floor_port, floor)}
                errors = measure(wrk, cases, servers, runs=runs, seconds=seconds)
                bodies = bodies_served(port=port, floor_port=floor_port, read_slug=read_slug)
        report({case.name: case for case in cases}, runs, seconds)
        print("bodies served (bytes on the wire, and their content coding):")
        print("\n".join(bodies))
        violations = markets_reconcile()  # the ledger's invariants and the markets'
        print(f"errors (non-2xx answers and socket errors): {errors}")
        print(f"invariant violations after the run (markets and ledger reconciliation): {len(violations)}")
        for violation in violations[:10]:
            print(f"  {violation}")
        return 1 if errors or violations else 0
    finally:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{floor_db}"')
        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
