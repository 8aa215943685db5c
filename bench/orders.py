"""Limit-order benchmark: what resting orders cost a trade, as ratios to a trade on a market with an empty book.

- none crossed: trades on a market whose book holds 1,000 one-credit buy orders at limits no trade here reaches,
  in turns with the same trades on a market with an empty book (median of each).
- crossing: one trade (500 credits of No on a fresh binary market, b = 1000, taking Yes from 50% to about 30%) on a
  market holding 10 or 100 one-credit buy orders for Yes at limits from 45% down: each crossed order fills, a trade
  of its own, in the same transaction; against the same trade on a fresh empty market timed right before it.
- hot market: trades per second from `--threads` threads on the market with 1,000 resting orders, against the
  same threads on markets with an empty book (run before and after it, averaged).
- hot market, crossed book: the same threads trading 20 credits at a time on a market whose book keeps being
  crossed: `--standing` standing forecasts on Yes, beliefs a point apart around 50% with a band of half a point,
  which re-arm after every fill; against the same trades on an empty book, with the fills the run made.

    make bench BENCH_ARGS=orders
    python -m bench.orders --repeats 7 --threads 8
"""

import argparse
import os
import random
import statistics
import time
from datetime import timedelta
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_bench_orders"

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services import user_create  # noqa: E402
from bench.threads import threaded_rate  # noqa: E402
from markets.models import LimitOrder, Market, Trade  # noqa: E402
from markets.services import market_create, markets_reconcile, trade_execute  # noqa: E402
from markets.services.orders import OrderRequest, order_place  # noqa: E402
from markets.services.standing import StandingRequest, standing_forecast_create  # noqa: E402
from markets.trade_request import TradeRequest  # noqa: E402

names = iter(range(10**9))
TRIGGER = TradeRequest(outcome="NO", side="buy", amount=Decimal("500"))


def new_market() -> Market:
    slug = f"bench-orders-{next(names)}"
    return market_create(
        slug=slug,
        question=f"Benchmark market {slug}?",
        kind=Market.Kind.BINARY,
        liquidity=1000,
        closes_at=timezone.now() + timedelta(days=1),
    )


def new_user() -> User:
    return user_create(username=f"bench-orders-{next(names)}", password=None)


def rest(market: Market, owners: list[User], count: int, *, crossed: bool) -> None:
    """`count` one-credit buy orders of distinct owners. Crossed: Yes at limits from 45% down, which the trigger
    (Yes to about 30%) crosses. Not crossed: Yes and No at limits from 5% down, which no trade here reaches."""
    for index in range(count):
        top = Decimal("0.45") if crossed else Decimal("0.05")
        limit = top - Decimal(index % 400) * Decimal("0.0001")
        outcome = "YES" if crossed or index % 2 == 0 else "NO"
        order_place(
            user=owners[index % len(owners)],
            market=market,
            request=OrderRequest(outcome=outcome, side="buy", limit=limit, size=Decimal("1")),
        )


def timed_trade(market: Market, request: TradeRequest = TRIGGER) -> float:
    user = new_user()
    start = time.perf_counter()
    trade_execute(user=user, market=market, request=request)
    return time.perf_counter() - start


def crossing(owners: list[User], count: int, repeats: int) -> tuple[float, float, int]:
    """Median seconds of the trigger on a market with `count` crossed orders, and of the same trigger on a market
    with an empty book timed right before it (the machine's load moves both alike); the fills of the last one."""
    crossed, empty = [], []
    fills = 0
    for _ in range(repeats):
        empty.append(timed_trade(new_market()))
        market = new_market()
        rest(market, owners, count, crossed=True)
        crossed.append(timed_trade(market))
        fills = Trade.objects.filter(market=market, order__isnull=False).count()
    return statistics.median(crossed), statistics.median(empty), fills


def uncrossed(booked: Market, repeats: int) -> tuple[float, float]:
    """Median seconds of trades on the booked market (whose orders they never reach) and on an empty one, in
    turns: each market takes the trigger, then its mirror (500 credits of Yes), so prices swing between about 30%
    and 60% and never come near the book's 5%."""
    empty_market = new_market()
    on_book, on_empty = [], []
    mirror = TradeRequest(outcome="YES", side="buy", amount=Decimal("500"))
    for index in range(repeats):
        request = TRIGGER if index % 2 == 0 else mirror
        on_empty.append(timed_trade(empty_market, request))
        on_book.append(timed_trade(booked, request))
    return statistics.median(on_book), statistics.median(on_empty)


def new_traders(count: int) -> list[User]:
    return [new_user() for _ in range(count)]


def standing_book(count: int) -> Market:
    """A book that stays crossed: `count` standing forecasts of their own owners on Yes, beliefs one point apart
    around 50%, a band of half a point, 100 credits each. Those above the price buy at once up to their band; each
    fill re-arms the other side, so trades that move the price a point or so keep crossing some of them."""
    market = new_market()
    for index in range(count):
        belief = Decimal("0.50") + Decimal(index - count // 2) / 100
        request = StandingRequest(outcome="YES", belief=belief, band_points=Decimal("0.5"), budget=Decimal("100"))
        standing_forecast_create(user=new_user(), market=market, request=request)
    return market


def throughput(market: Market, users: list[User], trades_per_thread: int, amount: Decimal = Decimal("1")) -> float:
    rngs = [random.Random(index) for index in range(len(users))]  # nosec B311 - which outcome a benchmark trade buys

    def trade(thread_index: int, _index: int) -> None:
        trade_execute(
            user=users[thread_index],
            market=market,
            request=TradeRequest(outcome=rngs[thread_index].choice(["YES", "NO"]), side="buy", amount=amount),
        )

    return threaded_rate(trade, threads=len(users), per_thread=trades_per_thread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="trades timed per case (median)")
    parser.add_argument("--threads", type=int, default=8, help="threads for the hot-market run")
    parser.add_argument("--book", type=int, default=1000, help="resting orders on the hot market's book")
    parser.add_argument("--trades", type=int, default=40, help="trades per thread in the hot-market run")
    parser.add_argument("--standing", type=int, default=30, help="standing forecasts on the crossed hot market")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        owners = [new_user() for _ in range(100)]
        timed_trade(new_market())  # warm-up
        booked = new_market()
        rest(booked, owners, options.book, crossed=False)
        resting = LimitOrder.objects.filter(market=booked, status="open").count()
        on_book, on_empty = uncrossed(booked, options.repeats * 2)
        ten, ten_empty, ten_fills = crossing(owners, 10, options.repeats)
        hundred, hundred_empty, hundred_fills = crossing(owners, 100, options.repeats)

        traders = [new_user() for _ in range(options.threads)]
        hot_empty = throughput(new_market(), traders, options.trades)
        hot_booked = throughput(booked, traders, options.trades)
        hot_empty_again = throughput(new_market(), traders, options.trades)
        still_resting = LimitOrder.objects.filter(market=booked, status="open").count()
        crossed_market = standing_book(options.standing)
        swing = Decimal("20")
        fills_before = Trade.objects.filter(market=crossed_market, order__isnull=False).count()
        # Fresh traders for each run: 40 trades of 20 credits take most of a sign-up grant.
        hot_crossed_empty = throughput(new_market(), new_traders(options.threads), options.trades, swing)
        hot_crossed = throughput(crossed_market, new_traders(options.threads), options.trades, swing)
        hot_crossed_empty_again = throughput(new_market(), new_traders(options.threads), options.trades, swing)
        crossed_fills = Trade.objects.filter(market=crossed_market, order__isnull=False).count() - fills_before
        violations = markets_reconcile()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    hot_empty = (hot_empty + hot_empty_again) / 2
    hot_crossed_empty = (hot_crossed_empty + hot_crossed_empty_again) / 2
    rows = [
        ("one trade, empty book (the baseline)", f"{on_empty * 1000:9.3f} ms"),
        (f"one trade, {resting:,} resting orders, none crossed", f"{on_book * 1000:9.3f} ms", on_book / on_empty),
        ("one trade, empty book (beside the 10)", f"{ten_empty * 1000:9.3f} ms"),
        (f"one trade crossing 10 orders ({ten_fills} fills)", f"{ten * 1000:9.3f} ms", ten / ten_empty),
        ("one trade, empty book (beside the 100)", f"{hundred_empty * 1000:9.3f} ms"),
        (
            f"one trade crossing 100 orders ({hundred_fills} fills)",
            f"{hundred * 1000:9.3f} ms",
            hundred / hundred_empty,
        ),
        (f"{options.threads} threads, one market, empty book", f"{hot_empty:9.1f} /s"),
        (
            f"{options.threads} threads, one market, {still_resting:,} resting",
            f"{hot_booked:9.1f} /s",
            hot_booked / hot_empty,
        ),
        (f"{options.threads} threads, 20-credit trades, empty book", f"{hot_crossed_empty:9.1f} /s"),
        (
            f"{options.threads} threads, 20-credit trades, {options.standing} standing",
            f"{hot_crossed:9.1f} /s",
            hot_crossed / hot_crossed_empty,
        ),
        (f"  fills in that run ({options.threads * options.trades} trades)", f"{crossed_fills:9d}"),
    ]
    for label, figure, *ratio in rows:
        print(f"{label:<52} {figure}" + (f"  {ratio[0]:6.2f}x" if ratio else ""))
    print(f"{'invariant violations after the run':<52} {len(violations):9d}")


if __name__ == "__main__":
    main()
