"""Trading benchmark: what one trade costs, as a ratio to the floor of a trade-shaped transaction.

The baseline, measured in the same run on the same database, is the least a trade could cost: one transaction
that locks a row, updates it and inserts one row. The ratio says how much the LMSR pricing, the ledger and the
bookkeeping add on top of that floor; contention is shown as the ratio of trades per second on one hot market to
trades per second spread over several markets.

    make bench            # all benchmarks, with embedded servers where DATABASE_URL/REDIS_URL are unset
    python -m bench.trading --trades 400 --threads 8
"""

import argparse
import os
import random
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_bench_trading"

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Account, User  # noqa: E402
from accounts.services import user_create  # noqa: E402
from bench.threads import threaded_rate  # noqa: E402
from markets.models import Market  # noqa: E402
from markets.services import market_create, markets_reconcile, trade_execute  # noqa: E402
from markets.trade_request import TradeRequest  # noqa: E402


def baseline_transaction(account_id: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT balance FROM accounts_account WHERE id = %s FOR UPDATE", [account_id])
        cursor.execute("UPDATE accounts_account SET balance = balance WHERE id = %s", [account_id])
        cursor.execute(
            "INSERT INTO accounts_ledgertransaction (kind, memo, created_at) VALUES ('adjustment', 'bench', now())"
        )


def new_market(slug: str) -> Market:
    return market_create(
        slug=slug,
        question=f"Benchmark market {slug}?",
        kind=Market.Kind.MULTIPLE,
        outcomes=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")],
        liquidity=1000,
        closes_at=timezone.now() + timedelta(days=1),
    )


def timed(function: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        function(index)
    return (time.perf_counter() - start) / count


def throughput(markets: list[Market], users: list[User], trades_per_thread: int) -> float:
    rngs = [random.Random(index) for index in range(len(users))]

    def trade(thread_index: int, index: int) -> None:
        trade_execute(
            user=users[thread_index],
            market=markets[thread_index % len(markets)],
            request=TradeRequest(
                outcome=rngs[thread_index].choice("ABCD"), side="buy", amount=Decimal("1") + index % 3
            ),
        )

    return threaded_rate(trade, threads=len(users), per_thread=trades_per_thread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=400, help="sequential trades to time")
    parser.add_argument("--threads", type=int, default=8, help="threads for the contention run")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        users = [user_create(username=f"bench{index}", password=None) for index in range(options.threads)]
        wallet = Account.objects.get(user=users[0])
        market = new_market("bench-sequential")
        timed(lambda i: baseline_transaction(wallet.pk), 50)  # warm-up
        baseline = timed(lambda i: baseline_transaction(wallet.pk), options.trades)
        per_trade = timed(
            lambda i: trade_execute(
                user=users[0],
                market=market,
                request=TradeRequest(outcome="ABCD"[i % 4], side="buy", shares=Decimal("0.5")),
            ),
            options.trades,
        )
        hot = throughput([new_market("bench-hot")], users, 60)
        spread = throughput([new_market(f"bench-spread-{i}") for i in range(options.threads)], users, 60)
        violations = markets_reconcile()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    print(f"database round-trip floor (lock+update+insert): {baseline * 1000:8.3f} ms")
    print(f"one trade (trade_execute, sequential):        {per_trade * 1000:8.3f} ms")
    print(f"ratio trade / floor:                          {per_trade / baseline:8.2f}x")
    print(f"{options.threads} threads, one hot market:  {hot:8.1f} trades/s")
    print(f"{options.threads} threads, {options.threads} markets:       {spread:8.1f} trades/s")
    print(f"ratio spread / hot:                           {spread / hot:8.2f}x")
    print(f"invariant violations after the run:           {len(violations)}")


if __name__ == "__main__":
    main()
