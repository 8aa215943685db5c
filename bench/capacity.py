"""Capacity benchmark: how many trades per second one market and one database can take (README, "Deployment and
scaling"; docs/benchmarks.md).

A market's trades queue on its row lock, so one market cannot go faster than one trade per lock-hold time: from
the `SELECT ... FOR UPDATE` of the market row to the end of the commit. The database's share of a trade is the
time its statements and its commit take, measured around each call (round trip included, so it overstates the
server's own work); one database core can do about one trade per that much time. Both are measured on sequential
trades, where nothing waits for anything else, by timing every statement with Django's execute_wrapper.

    python -m bench.capacity --trades 300
"""

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_bench_capacity"

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.services import user_create  # noqa: E402
from markets.models import Market  # noqa: E402
from markets.services import market_create, markets_reconcile, trade_execute  # noqa: E402
from markets.trade_request import TradeRequest  # noqa: E402


class TradeTimer:
    """Per trade: the lock-hold time and the time spent in the database (statements and commit)."""

    def __init__(self) -> None:
        self.lock_started: float | None = None
        self.database_seconds = 0.0
        self.lock_holds: list[float] = []
        self.database_times: list[float] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        if self.lock_started is None and "FOR UPDATE" in sql and '"markets_market"' in sql:
            self.lock_started = started
        try:
            return execute(sql, params, many, context)
        finally:
            self.database_seconds += time.perf_counter() - started

    def commit(self, original: Callable[[], None]) -> Callable[[], None]:
        def timed_commit() -> None:
            started = time.perf_counter()
            original()
            ended = time.perf_counter()
            self.database_seconds += ended - started
            if self.lock_started is not None:
                self.lock_holds.append(ended - self.lock_started)
            self.lock_started = None

        return timed_commit

    def trade_done(self) -> None:
        self.database_times.append(self.database_seconds)
        self.database_seconds = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=300, help="sequential trades to time")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        user = user_create(username="capacity", password=None)
        market = market_create(
            slug="capacity",
            question="Benchmark market capacity?",
            kind=Market.Kind.MULTIPLE,
            outcomes=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")],
            liquidity=1000,
            closes_at=timezone.now() + timedelta(days=1),
        )

        def trade(index: int) -> None:
            trade_execute(
                user=user,
                market=market,
                request=TradeRequest(outcome="ABCD"[index % 4], side="buy", shares=Decimal("0.5")),
            )

        for index in range(30):  # warm-up: connections, prepared statements, caches
            trade(index)
        timer = TradeTimer()
        walls: list[float] = []
        connection.commit = timer.commit(connection.commit)  # type: ignore[method-assign]
        with connection.execute_wrapper(timer):
            for index in range(options.trades):
                started = time.perf_counter()
                trade(index)
                walls.append(time.perf_counter() - started)
                timer.trade_done()
        violations = markets_reconcile()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    wall = statistics.median(walls)
    hold = statistics.median(timer.lock_holds)
    database = statistics.median(timer.database_times)
    print(f"trades timed:                                  {options.trades}")
    print(f"one trade, wall (median):                      {wall * 1000:8.3f} ms")
    print(f"market row lock held per trade (median):       {hold * 1000:8.3f} ms")
    print(f"database time per trade (median):              {database * 1000:8.3f} ms")
    print(f"share of the trade under the lock:             {hold / wall:8.2f}")
    print(f"database share of the trade:                   {database / wall:8.2f}")
    print(f"one market's ceiling (1 / lock hold):          {1 / hold:8.1f} trades/s")
    print(f"per database core (1 / database time):         {1 / database:8.1f} trades/s")
    print(f"invariant violations after the run:            {len(violations)}")


if __name__ == "__main__":
    main()
