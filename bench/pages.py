"""Pages benchmark: server time of the website pages and the API reads, as ratios to a floor request.

Requests go through Django's test Client in this process, so the time is the server's alone (URL routing,
every middleware, the view, its queries against PostgreSQL, its Redis reads, rendering), without a network
or a WSGI server. The data is the demo data (`manage.py demo_data`) plus one trader holding 60 positions
in 15 four-outcome markets, with two trades each.

The baseline, measured in the same run through the same Client, middleware and database, is a view that
runs one query and renders a tiny template. It is the least a page can cost here; a bare `SELECT 1`
would leave out the routing and middleware every request pays, so its ratios would mostly measure Django.
The run does not call setup_test_environment(): it would instrument every template render with a signal
for the test Client's benefit, a cost production does not pay. Logged-in pages are compared with the
baseline requested logged in (it then also loads the session and the user), API reads with the baseline
requested anonymously.

"cached" rows are the usual case (the price cache in Redis answers); "uncached" rows make every price
cache read a miss, which is what a request pays just after a trade or when Redis is down.

    make bench            # all benchmarks, with embedded servers where DATABASE_URL/REDIS_URL are unset
    python -m bench.pages --requests 60
"""

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from decimal import Decimal
from unittest import mock

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_bench_pages"
# The benchmark reads the same endpoints hundreds of times a minute: lift the per-client read limits.
os.environ.setdefault("API_RATE_ANON_READ", "1000000/min")
os.environ.setdefault("API_RATE_USER_READ", "1000000/min")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.template import engines  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import URLPattern, URLResolver, include, path  # noqa: E402
from django.utils import timezone  # noqa: E402

import config.urls  # noqa: E402
from accounts.models import User  # noqa: E402
from accounts.services import user_create  # noqa: E402
from markets.models import Market, Position  # noqa: E402
from markets.services import market_create, markets_reconcile, trade_execute  # noqa: E402
from markets.trade_request import TradeRequest  # noqa: E402

DEMO_MARKET = "rutte-nato-secretary-general"
PORTFOLIO_MARKETS = 15
TINY_TEMPLATE = engines["django"].from_string("<p>{{ user.username }}: {{ count }} markets</p>")


def baseline_view(request: HttpRequest) -> HttpResponse:
    count = Market.objects.filter(status=Market.Status.OPEN).count()
    return HttpResponse(TINY_TEMPLATE.render({"user": request.user, "count": count}, request))


# This module is the URLconf of the run: the site's URLs plus the baseline view.
urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/baseline/", baseline_view),
    path("", include("config.urls")),
]
handler404 = config.urls.handler404
handler500 = config.urls.handler500


def portfolio_trader() -> User:
    """A trader with 60 positions (15 markets x 4 outcomes), each bought twice and partly sold once."""
    trader = user_create(username="bench-trader", password=None)
    for index in range(PORTFOLIO_MARKETS):
        market = market_create(
            slug=f"bench-portfolio-{index}",
            question=f"Which of four outcomes will benchmark market {index} pick?",
            kind=Market.Kind.MULTIPLE,
            outcomes=[("A", "Outcome A"), ("B", "Outcome B"), ("C", "Outcome C"), ("D", "Outcome D")],
            liquidity=100,
            closes_at=timezone.now() + timedelta(days=30),
            category="Benchmark",
        )
        for code in "ABCD":
            trade_execute(
                user=trader, market=market, request=TradeRequest(outcome=code, side="buy", shares=Decimal("2"))
            )
            trade_execute(
                user=trader, market=market, request=TradeRequest(outcome=code, side="sell", shares=Decimal("0.5"))
            )
    return trader


@contextmanager
def price_cache_misses() -> Iterator[None]:
    with mock.patch("markets.cache.cache_get", return_value=None):
        yield


def measure(client: Client, url: str, count: int, headers: dict[str, str] | None = None) -> tuple[float, float]:
    """(median, p95) in ms of `count` GETs of `url`, after three warm-up requests."""
    for _ in range(3):
        response = client.get(url, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        client.get(url, headers=headers)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60, help="timed requests per page")
    options = parser.parse_args()
    count = options.requests

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    rows: list[tuple[str, str, tuple[float, float], tuple[float, float]]] = []
    try:
        with override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"]):
            call_command("demo_data", stdout=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
            trader = portfolio_trader()
            positions = Position.objects.filter(user=trader).count()
            anonymous, member = Client(), Client()
            member.force_login(trader)
            floor_anonymous = measure(anonymous, "/bench/baseline/", count)
            floor_member = measure(member, "/bench/baseline/", count)

            def add(name: str, client: Client, url: str, *, uncached: bool = False, htmx: bool = False) -> None:
                floor = floor_member if client is member else floor_anonymous
                headers = {"HX-Request": "true"} if htmx else {}
                with price_cache_misses() if uncached else nullcontext():
                    rows.append((name, url, measure(client, url, count, headers), floor))

            market = f"/markets/{DEMO_MARKET}/"
            api = f"/api/v1/markets/{DEMO_MARKET}/"
            add("page: markets list", member, "/")
            add(f"page: portfolio ({positions} positions)", member, "/portfolio/")
            add("page: market", member, market)
            add("fragment: live prices (htmx)", member, f"{market}live/", htmx=True)
            add("fragment: live prices, uncached", member, f"{market}live/", uncached=True, htmx=True)
            add("api: market list", anonymous, "/api/v1/markets/")
            add("api: market list, uncached", anonymous, "/api/v1/markets/", uncached=True)
            add("api: market detail", anonymous, api)
            add("api: market detail, uncached", anonymous, api, uncached=True)
            add("api: quote", anonymous, f"{api}quote/?outcome=YES&side=buy&shares=10")
            add("api: history 1h candles", anonymous, f"{api}history/?interval=1h")
            add("api: history 1h candles, uncached", anonymous, f"{api}history/?interval=1h", uncached=True)
            violations = markets_reconcile()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    print(f"{count} requests each; ms of server time through the test Client; ratio = median / baseline median")
    print(f"{'baseline: 1 query + tiny template, anonymous':<44} {floor_anonymous[0]:8.2f} {floor_anonymous[1]:8.2f}")
    print(f"{'baseline: 1 query + tiny template, logged in':<44} {floor_member[0]:8.2f} {floor_member[1]:8.2f}")
    print(f"{'request':<44} {'median':>8} {'p95':>8} {'ratio':>7}")
    for name, _url, (median, p95), floor in rows:
        print(f"{name:<44} {median:8.2f} {p95:8.2f} {median / floor[0]:6.1f}x")
    print(f"invariant violations after the run: {len(violations)}")


if __name__ == "__main__":
    main()
