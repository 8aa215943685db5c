"""CPU per API request, in-process: the app's own cost of a trade and of each cached read.

Requests go through the WSGI application as deployed (`config.wsgi`'s two handlers, `config.settings.production`
with the throttles raised so that they run but never refuse) on a scratch database, with PostgreSQL and Redis
as configured; no server and no load generator. What is measured is this process's CPU time
(`time.process_time`) per request, the figure of the HTTP benchmark's "cpu" column without the server around it:
on a machine shared with other work it moves far less than throughput or latency do. Each case runs `--requests`
times after a warm-up, `--runs` times; the figure is the median.

    python -m bench.cpu --requests 400 --runs 3
"""

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_cpu"
os.environ.setdefault("SECRET_KEY", "bench-cpu-" + uuid.uuid4().hex * 2)
os.environ.setdefault("ALLOWED_HOSTS", "localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("EMAIL_HOST", "localhost")
os.environ.setdefault("DEFAULT_FROM_EMAIL", "bench@localhost")
os.environ.setdefault("FORECASTLE_SIGNUP_GRANT", "10000000")
os.environ["CACHE_KEY_PREFIX"] = f"bench-cpu-{uuid.uuid4().hex[:12]}"
for scope in ("ANON_READ", "USER_READ", "TRADE"):
    os.environ[f"API_RATE_{scope}"] = "1000000/min"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

# The production settings name the scratch database after DATABASE_URL's alone ("test_<name>"): two engineers'
# runs on one server would share it. It carries FORECASTLE_TEST_DB, as the test settings' databases do.
connection.settings_dict["TEST"]["NAME"] = f"test_forecastle{os.environ['FORECASTLE_TEST_DB']}"
from django.test import RequestFactory  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.services import api_key_create, user_create  # noqa: E402
from config.core.wsgi import forecastle_wsgi_application  # noqa: E402
from markets.models import Market  # noqa: E402
from markets.services import market_create, markets_reconcile, trade_execute  # noqa: E402
from markets.trade_request import TradeRequest  # noqa: E402

Environ = dict[str, Any]


def environ_of(factory: RequestFactory, method: str, path: str, **extra: Any) -> Environ:
    request = getattr(factory, method)(path, HTTP_HOST="localhost", **extra)
    environ = dict(request.environ)
    # RequestFactory sends an empty Cookie header; a program calling the API sends none (config.core.wsgi).
    environ.pop("HTTP_COOKIE", None)
    return environ


def cpu_per_request(application: Any, environ: Callable[[int], Environ], count: int) -> float:
    def call(index: int) -> None:
        statuses: list[str] = []
        body = b"".join(application(environ(index), lambda status, headers, *_: statuses.append(status)))
        if not statuses[0].startswith(("200", "201")):
            raise SystemExit(f"{statuses[0]}: {body[:300]!r}")

    for index in range(30):
        call(index)
    start = time.process_time()
    for index in range(count):
        call(index)
    return (time.process_time() - start) * 1000 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per case and run")
    parser.add_argument("--runs", type=int, default=3, help="runs of every case (the median is reported)")
    options = parser.parse_args()

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        trader = user_create(username="bench-cpu", password=None)
        _key, raw_key = api_key_create(user=trader, name="bench")
        for slug in ("bench-trade", "bench-read"):
            market_create(
                slug=slug,
                question=f"Benchmark market {slug}?",
                kind=Market.Kind.MULTIPLE,
                outcomes=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")],
                liquidity=1000,
                closes_at=timezone.now() + timedelta(days=7),
            )
        read_market = Market.objects.get(slug="bench-read")
        for index in range(200):
            trade_execute(
                user=trader,
                market=read_market,
                request=TradeRequest(outcome="ABCD"[index % 4], side="buy", amount=Decimal(1 + index % 5)),
            )
        application = forecastle_wsgi_application()
        factory = RequestFactory()
        cases: dict[str, Callable[[int], Environ]] = {
            "trade (POST by API key)": lambda index: environ_of(
                factory,
                "post",
                "/api/v1/markets/bench-trade/trades/",
                data=json.dumps({"outcome": "ABCD"[index % 4], "side": "buy", "amount": "1"}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Token {raw_key}",
                HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
            ),
            "cached read: market detail": lambda index: environ_of(factory, "get", "/api/v1/markets/bench-read/"),
            "cached read: market list": lambda index: environ_of(factory, "get", "/api/v1/markets/"),
            "cached read: quote": lambda index: environ_of(
                factory, "get", "/api/v1/markets/bench-read/quote/?outcome=A&side=buy&amount=10"
            ),
            "cached read: history": lambda index: environ_of(factory, "get", "/api/v1/markets/bench-read/history/"),
        }
        results = {
            name: [cpu_per_request(application, environ, options.requests) for _ in range(options.runs)]
            for name, environ in cases.items()
        }
        violations = markets_reconcile()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    print(f"CPU ms per request, median of {options.runs} runs of {options.requests} (all runs in brackets)")
    for name, runs in results.items():
        print(f"{name:<30} {statistics.median(runs):7.3f}   [{', '.join(f'{run:.3f}' for run in runs)}]")
    print(f"invariant violations after the run: {len(violations)}")


if __name__ == "__main__":
    main()
