"""Real threads trading at once against PostgreSQL: no lost update, no negative balance, no deadlock.

Each thread has its own database connection (Django opens one per thread) and closes it at the end.
Threads start together on a barrier so their transactions really overlap on the row locks.
"""

import random
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Account, LedgerEntry, User
from markets import cache as price_cache
from markets.errors import InsufficientFunds, InsufficientShares
from markets.models import Market, Outcome, Position, Trade
from markets.selectors.prices import market_snapshot_build
from markets.services import markets_reconcile, trade_execute
from tests.conftest import MakeMarket, MakeUser
from tests.factories import trade_request

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

EXPECTED = (InsufficientFunds, InsufficientShares)
OPERATIONS_PER_THREAD = 12


@dataclass
class Outcomes:
    """What the threads saw, to compare with the database afterwards."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # (user id, market id, outcome code) -> net shares and net credits moved by the trades that succeeded.
    shares: dict[tuple[int, int, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    credits: dict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    succeeded: int = 0
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unexpected: list[str] = field(default_factory=list)


def _operation(rng: random.Random) -> tuple[str, dict[str, object]]:
    """Buys and sells by shares and by amount, some far beyond any balance or position."""
    kind = rng.random()
    if kind < 0.3:
        return "buy", {"shares": f"{rng.uniform(1, 80):.3f}"}
    if kind < 0.55:
        return "buy", {"amount": f"{rng.uniform(1, 150):.2f}"}
    if kind < 0.65:
        return "buy", {"amount": "5000"}  # beyond every wallet
    if kind < 0.9:
        return "sell", {"shares": f"{rng.uniform(1, 60):.3f}"}  # often more than held
    # Small enough that some number of shares always pays it, even at a low price.
    return "sell", {"amount": f"{rng.uniform(0.01, 0.05):.2f}"}


def _trader(*, seed: int, user: User, markets: list[Market], barrier: threading.Barrier, seen: Outcomes) -> None:
    rng = random.Random(seed)
    codes = {market.pk: list(market.outcomes.values_list("code", flat=True)) for market in markets}
    try:
        barrier.wait(timeout=30)
        for _ in range(OPERATIONS_PER_THREAD):
            market = rng.choice(markets)
            code = rng.choice(codes[market.pk])
            side, quantity = _operation(rng)
            try:
                result = trade_execute(
                    user=user,
                    market=market,
                    request=trade_request(code, side, shares=quantity.get("shares"), amount=quantity.get("amount")),
                )
            except EXPECTED as error:
                with seen.lock:
                    seen.refused[error.code] += 1
                continue
            signed = 1 if side == "buy" else -1
            with seen.lock:
                seen.succeeded += 1
                seen.shares[(user.pk, market.pk, code)] += signed * result.trade.shares
                seen.credits[user.pk] -= signed * result.trade.amount
    except Exception:  # Anything else, above all a deadlock or serialization failure, fails the test.
        with seen.lock:
            seen.unexpected.append(traceback.format_exc())
    finally:
        connection.close()


def _run(*, users: list[User], markets: list[Market], threads: int) -> Outcomes:
    seen = Outcomes()
    barrier = threading.Barrier(threads)
    workers = [
        threading.Thread(
            target=_trader,
            kwargs={
                "seed": index,
                "user": users[index % len(users)],
                "markets": markets,
                "barrier": barrier,
                "seen": seen,
            },
        )
        for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers), "a trader thread hung (a lock never released?)"
    return seen


def _assert_consistent(seen: Outcomes, users: list[User]) -> None:
    assert seen.unexpected == [], "\n".join(seen.unexpected)
    assert seen.succeeded > 0
    assert Trade.objects.count() == seen.succeeded

    # No lost update: each wallet moved by exactly what its successful trades paid and received.
    grant = Decimal(settings.FORECASTLE_SIGNUP_GRANT)
    balances = dict(Account.objects.filter(user__in=users).values_list("user_id", "balance"))
    for user in users:
        assert balances[user.pk] == grant + seen.credits[user.pk], user.username
        assert balances[user.pk] >= 0
    assert not Account.objects.filter(kind__in=["wallet", "escrow"], balance__lt=0).exists()

    # Every position holds what its trades bought minus what they sold; q is the sum of positions.
    positions = {
        (user_id, market_id, code): shares
        for user_id, market_id, code, shares in Position.objects.values_list(
            "user_id", "market_id", "outcome__code", "shares"
        )
    }
    for key, shares in seen.shares.items():
        assert positions.get(key, Decimal(0)) == shares, key
    held = dict(Position.objects.values("outcome_id").annotate(total=Sum("shares")).values_list("outcome_id", "total"))
    for outcome_id, outstanding in Outcome.objects.values_list("pk", "shares_outstanding"):
        assert outstanding == held.get(outcome_id, Decimal(0))

    assert LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] == 0
    assert markets_reconcile() == []


def _users(make_user: MakeUser, count: int) -> list[User]:
    return [make_user(f"racer{index}") for index in range(count)]


def _market(make_market: MakeMarket, slug: str, outcomes: int = 2) -> Market:
    binary = outcomes == 2
    return make_market(
        slug=slug,
        question=f"Question {slug}?",
        kind=Market.Kind.BINARY if binary else Market.Kind.MULTIPLE,
        outcomes=None if binary else [(f"O{index}", f"Outcome {index}") for index in range(outcomes)],
        liquidity=500,
        closes_at=timezone.now() + timedelta(days=1),
    )


def test_sixteen_threads_on_one_hot_market(make_user, make_market):
    # Fewer users than threads: two threads share each wallet and race on its row too.
    users = _users(make_user, 8)
    market = _market(make_market, "hot")
    seen = _run(users=users, markets=[market], threads=16)
    _assert_consistent(seen, users)
    # Each trade's callback built its snapshot from its own rows, the trader count from the market's row, in
    # whatever order the callbacks ran: the one left stored is what the database holds.
    rebuilt = market_snapshot_build(market_id=market.pk)
    assert rebuilt is not None
    assert price_cache.cache_get(price_cache.snapshot_key(market.slug)) == price_cache.snapshot_rendered(rebuilt)
    assert seen.refused["insufficient_funds"] > 0
    assert seen.refused["insufficient_shares"] > 0


def test_twenty_four_threads_across_several_markets(make_user, make_market):
    # Each wallet is traded from several markets at once, under different market locks.
    users = _users(make_user, 6)
    markets = [
        _market(make_market, "first"),
        _market(make_market, "second", outcomes=3),
        _market(make_market, "third", outcomes=5),
    ]
    seen = _run(users=users, markets=markets, threads=24)
    _assert_consistent(seen, users)
    assert Trade.objects.values("market").distinct().count() == len(markets)


def _waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def test_a_trade_that_waited_for_the_market_lock_sees_what_its_holder_committed(make_user, make_market):
    """The trade reads under the lock with a statement started after the lock was granted: a sale that queued
    behind the purchase of the very shares it sells finds them (one statement that locked and read together
    would read with the snapshot taken before it waited, and find no position)."""
    user = make_user("patient")
    market = _market(make_market, "queued")
    bought = threading.Event()
    seller_pid: list[int] = []
    sold: list[object] = []

    def buyer() -> None:
        try:
            with transaction.atomic():
                trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="5"))
                bought.set()
                # Hold the market's lock (and the new position, uncommitted) until the sale waits for it.
                for _ in range(500):
                    if seller_pid and _waiting_on_a_lock(seller_pid[0]):
                        break
                    time.sleep(0.01)
        finally:
            connection.close()

    def seller() -> None:
        try:
            bought.wait(10)
            seller_pid.append(connection.cursor().connection.info.backend_pid)
            sold.append(trade_execute(user=user, market=market, request=trade_request("YES", "sell", shares="5")))
        except Exception as error:
            sold.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=buyer), threading.Thread(target=seller)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(sold) == 1
    assert not isinstance(sold[0], Exception), sold
    assert Position.objects.get(user=user, outcome__code="YES").shares == 0
    assert markets_reconcile() == []
