"""Real threads placing, cancelling and crossing limit orders at once against PostgreSQL: nothing lost, nothing
spent twice, no fill past its limit, no deadlock left unhandled."""

import random
import threading
import traceback
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Case, DecimalField, F, Sum, When
from django.utils import timezone

from accounts.models import Account, LedgerEntry, User
from markets import cache as price_cache
from markets.errors import InsufficientFunds, InsufficientShares, InvalidInput, OrderNotOpen
from markets.models import LimitOrder, Market, Outcome, Trade
from markets.selectors.prices import market_snapshot, market_snapshot_build
from markets.services import markets_reconcile, trade_execute
from markets.services.orders import OrderRequest, order_cancel, order_place
from tests.factories import trade_request

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

EXPECTED = (InsufficientFunds, InsufficientShares, InvalidInput, OrderNotOpen)
OPERATIONS_PER_THREAD = 15


def _step(rng: random.Random, user: User, market: Market, codes: list[str]) -> None:
    code = rng.choice(codes)
    kind = rng.random()
    if kind < 0.35:
        trade_execute(user=user, market=market, request=trade_request(code, "buy", amount=f"{rng.uniform(1, 60):.2f}"))
    elif kind < 0.5:
        trade_execute(user=user, market=market, request=trade_request(code, "sell", shares=f"{rng.uniform(1, 40):.3f}"))
    elif kind < 0.85:
        side = rng.choice(["buy", "sell"])
        size = f"{rng.uniform(1, 80):.2f}" if side == "buy" else f"{rng.uniform(1, 30):.3f}"
        order_place(
            user=user,
            market=market,
            request=OrderRequest(
                outcome=code, side=side, limit=Decimal(f"{rng.uniform(0.2, 0.8):.2f}"), size=Decimal(size)
            ),
        )
    else:
        mine = list(LimitOrder.objects.filter(user=user, status="open").values_list("pk", flat=True)[:3])
        if mine:
            order_cancel(user=user, order_id=rng.choice(mine))


def _trader(seed: int, user: User, markets: list[Market], barrier: threading.Barrier, problems: list[str]) -> None:
    rng = random.Random(seed)
    codes = {market.pk: list(market.outcomes.values_list("code", flat=True)) for market in markets}
    try:
        barrier.wait(timeout=30)
        for _ in range(OPERATIONS_PER_THREAD):
            market = rng.choice(markets)
            try:
                _step(rng, user, market, codes[market.pk])
            except EXPECTED:
                continue
    except Exception:
        problems.append(traceback.format_exc())
    finally:
        connection.close()


def _run(users: list[User], markets: list[Market], threads: int) -> None:
    problems: list[str] = []
    barrier = threading.Barrier(threads)
    workers = [
        threading.Thread(target=_trader, args=(index, users[index % len(users)], markets, barrier, problems))
        for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    assert not any(worker.is_alive() for worker in workers), "a thread hung"
    assert problems == [], "\n".join(problems)


def _assert_nothing_lost(users: list[User]) -> None:
    assert markets_reconcile() == []
    assert LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] == 0
    # Each user's credits (wallet plus reserve) are the grant less what their trades and fills paid, plus what
    # they received: nothing reserved was spent twice or lost on the way back.
    signed = Case(
        When(side="buy", then=-F("amount")),
        default=F("amount"),
        output_field=DecimalField(max_digits=20, decimal_places=6),
    )
    moved = dict(Trade.objects.values("user_id").annotate(net=Sum(signed)).values_list("user_id", "net"))
    grant = Decimal(settings.FORECASTLE_SIGNUP_GRANT)
    for user in users:
        wallet = Account.objects.get(key=f"wallet:{user.pk}").balance
        reserved = Account.objects.filter(key=f"reserved:{user.pk}").values_list("balance", flat=True).first() or 0
        assert wallet + reserved == grant + moved.get(user.pk, Decimal(0)), user.username
    # No fill ever executed beyond its limit.
    indexes = dict(Outcome.objects.values_list("pk", "index"))
    fills = Trade.objects.filter(order__isnull=False).select_related("order")
    assert fills.exists()
    for fill in fills:
        assert fill.order is not None
        price = fill.probabilities_after[indexes[fill.outcome_id]]
        limit = float(fill.order.limit_probability)
        assert price <= limit + 1e-12 if fill.side == "buy" else price >= limit - 1e-12, fill.pk


def _market(make_market, slug: str, outcomes: int = 2) -> Market:
    return make_market(
        slug=slug,
        outcomes=None if outcomes == 2 else outcomes,
        liquidity=200,
        closes_at=timezone.now() + timedelta(days=1),
    )


def test_many_traders_and_many_resting_orders_on_one_market(make_user, make_market):
    users = [make_user(f"orderer{index}") for index in range(8)]
    market = _market(make_market, "hot-orders")
    _run(users, [market], threads=12)
    _assert_nothing_lost(users)
    assert LimitOrder.objects.filter(status="open").exists() or LimitOrder.objects.filter(status="filled").exists()


def test_orders_across_markets_fill_each_others_traders(make_user, make_market):
    """Trades on two markets at once, each filling orders of the other's traders: wallets and reserved accounts
    are locked across markets, and a deadlock PostgreSQL breaks is retried (markets.locks.deadlock_retried)."""
    users = [make_user(f"crosser{index}") for index in range(4)]
    markets = [_market(make_market, "left"), _market(make_market, "right", outcomes=3)]
    _run(users, markets, threads=10)
    _assert_nothing_lost(users)
    assert Trade.objects.values("market").distinct().count() == len(markets)


def test_concurrent_trades_and_fills_leave_the_cached_snapshot_equal_to_the_database(make_user, make_market):
    """Trades, marketable orders and the fills they trigger on one market at once: each refresh builds on the
    cached snapshot of exactly the version its trades followed, or reads the database, and whatever order the
    refreshes ran in, the cache ends with what the database holds (prices, q, volume, trader count)."""
    users = [make_user(f"cached{index}") for index in range(8)]
    market = _market(make_market, "cached-fills", outcomes=3)
    # Resting orders of users who have not traded yet, each on the way of the others' trades.
    codes = list(market.outcomes.values_list("code", flat=True))
    for index, user in enumerate(users[:4]):
        order_place(
            user=user,
            market=market,
            request=OrderRequest(
                outcome=codes[index % len(codes)], side="buy", limit=Decimal("0.3"), size=Decimal("120")
            ),
        )
    market_snapshot(slug=market.slug)
    _run(users, [market], threads=8)
    assert Trade.objects.filter(market=market, order__isnull=False).exists()
    rebuilt = market_snapshot_build(market_id=market.pk)
    assert rebuilt is not None
    assert price_cache.cache_get(price_cache.snapshot_key(market.slug)) == price_cache.snapshot_rendered(rebuilt)
