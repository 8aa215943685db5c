"""The price-cache refresh after a trade: built from the trade's own rows whatever the cache holds (the market row
carries its trader count), and exactly what the database holds."""

import copy
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from markets import cache as price_cache
from markets.models import Market, Trade
from markets.selectors.prices import market_snapshot, market_snapshot_build
from markets.services import trade_execute
from markets.services.orders import OrderRequest, order_place
from tests.factories import trade_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_market):
    return make_market(
        slug="four-way",
        question="Which of four?",
        kind=Market.Kind.MULTIPLE,
        outcomes=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")],
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=30),
    )


def cached(market):
    return price_cache.cache_get(price_cache.snapshot_key(market.slug))


def database(market):
    """The snapshot rebuilt from the database, with the bodies rendered from it: what the cache must hold."""
    snapshot = market_snapshot_build(market_id=market.pk)
    assert snapshot is not None
    return price_cache.snapshot_rendered(snapshot)


def rebuilt_from_database(queries):
    # Only the database rebuild reads the market's resolutions.
    return any('"markets_resolution"' in query["sql"] for query in queries.captured_queries)


def trade(django_capture_on_commit_callbacks, *, user, market, outcome_code, side, now=None, **quantities):
    with django_capture_on_commit_callbacks(execute=True):
        return trade_execute(user=user, market=market, request=trade_request(outcome_code, side, **quantities), now=now)


def test_snapshot_after_each_trade_equals_a_database_rebuild(market, make_user, django_capture_on_commit_callbacks):
    alice, bob = make_user("alice"), make_user("bob")
    market_snapshot(slug=market.slug)  # a reader fills the cache first
    steps = [
        (alice, "A", "buy", "3"),
        (alice, "B", "buy", "2"),  # same trader, another outcome: no new trader
        (bob, "A", "buy", "1.5"),  # a new trader
        (alice, "A", "sell", "1"),
    ]
    for user, code, side, shares in steps:
        trade(
            django_capture_on_commit_callbacks,
            user=user,
            market=market,
            outcome_code=code,
            side=side,
            shares=shares,
        )
        assert cached(market) == database(market)
    assert cached(market)["market"]["trader_count"] == 2


def test_refresh_after_a_trade_reads_no_database_when_the_cache_is_current(
    market, make_user, django_capture_on_commit_callbacks
):
    user = make_user()
    market_snapshot(slug=market.slug)
    with CaptureQueriesContext(connection) as queries:
        trade(django_capture_on_commit_callbacks, user=user, market=market, outcome_code="C", side="buy", shares="1")
    assert not rebuilt_from_database(queries)
    assert cached(market) == database(market)


def test_stale_or_missing_snapshot_is_built_from_the_trade_all_the_same(
    market, make_user, django_capture_on_commit_callbacks
):
    alice, bob = make_user("alice"), make_user("bob")
    # Nothing cached: the trader count comes with the market's row, so the trade's rows are enough.
    with CaptureQueriesContext(connection) as queries:
        trade(django_capture_on_commit_callbacks, user=alice, market=market, outcome_code="A", side="buy", shares="1")
    assert not rebuilt_from_database(queries)
    assert cached(market) == database(market)
    # A snapshot of another version (a callback that ran out of order, the previous trade's not stored yet) is
    # not needed either: a new trader counted from the market's row, not from the cache.
    stale = cached(market)
    trade(django_capture_on_commit_callbacks, user=alice, market=market, outcome_code="B", side="buy", shares="1")
    price_cache.cache_set(price_cache.snapshot_key(market.slug), stale)
    with CaptureQueriesContext(connection) as queries:
        trade(django_capture_on_commit_callbacks, user=bob, market=market, outcome_code="D", side="buy", shares="1")
    assert not rebuilt_from_database(queries)
    assert cached(market) == database(market)
    assert cached(market)["market"]["trader_count"] == 2


def test_trade_dated_by_its_caller_is_rebuilt_from_the_database(market, make_user, django_capture_on_commit_callbacks):
    user = make_user()
    market_snapshot(slug=market.slug)
    trade(django_capture_on_commit_callbacks, user=user, market=market, outcome_code="A", side="buy", shares="2")
    # An earlier-dated trade is not the market's latest price change: the snapshot keeps the later one.
    trade(
        django_capture_on_commit_callbacks,
        user=user,
        market=market,
        outcome_code="B",
        side="buy",
        shares="1",
        now=timezone.now() - timedelta(hours=1),
    )
    assert cached(market) == database(market)


def test_a_snapshot_that_cannot_be_rebuilt_is_dropped_not_left_stale(
    market, make_user, monkeypatch, django_capture_on_commit_callbacks
):
    market_snapshot(slug=market.slug)
    assert cached(market) is not None

    def broken(**_arguments):
        raise RuntimeError("rebuild failed")

    monkeypatch.setattr("markets.services.price_cache.market_snapshot_from", broken)
    monkeypatch.setattr("markets.services.price_cache.market_snapshot_build", broken)
    trade(
        django_capture_on_commit_callbacks,
        user=make_user(),
        market=market,
        outcome_code="A",
        side="buy",
        shares="2",
    )  # the trade itself succeeds
    assert cached(market) is None


def test_a_late_callback_on_a_hot_market_neither_undoes_nor_rebuilds(
    market, make_user, django_capture_on_commit_callbacks
):
    """Trades on one market commit in lock order, but their callbacks run in any order after: the callback of a
    trade that a later trade's callback already covered stores nothing and reads no database."""
    alice, bob = make_user("alice"), make_user("bob")
    market_snapshot(slug=market.slug)
    with django_capture_on_commit_callbacks(execute=False) as late:
        trade_execute(user=alice, market=market, request=trade_request("A", "buy", shares="3"))
    # The later trade's callback finds the snapshot older than the trade it followed: built from its rows all the same.
    trade(django_capture_on_commit_callbacks, user=bob, market=market, outcome_code="B", side="buy", shares="5")
    current = cached(market)
    assert current == database(market)
    with CaptureQueriesContext(connection) as queries:
        for callback in late:
            callback()
    assert not rebuilt_from_database(queries)
    assert cached(market) == current


def test_a_snapshot_built_from_a_trade_never_replaces_a_newer_one(
    market, make_user, django_capture_on_commit_callbacks
):
    user = make_user()
    market_snapshot(slug=market.slug)
    trade(django_capture_on_commit_callbacks, user=user, market=market, outcome_code="A", side="buy", shares="1")
    older = cached(market)
    trade(django_capture_on_commit_callbacks, user=user, market=market, outcome_code="C", side="buy", shares="1")
    newer = cached(market)
    key = price_cache.snapshot_key(market.slug)
    # A trade's callback that read the cache before the newer snapshot was stored, and stores after it.
    price_cache.snapshot_store(key, older, newer_only=True)
    assert cached(market) == newer
    # So does one of the same version (a close or a proposal rebuilt from the database at that version).
    closed = copy.deepcopy(newer)
    closed["market"]["status"] = "closed"
    price_cache.snapshot_store(key, closed)
    price_cache.snapshot_store(key, newer, newer_only=True)
    assert cached(market)["market"]["status"] == "closed"
    # A snapshot read from the database is stored whatever its version.
    price_cache.snapshot_store(key, older)
    assert cached(market) == older


def resting_buy(user, market, code, limit, size="100"):
    placed = order_place(
        user=user,
        market=market,
        request=OrderRequest(outcome=code, side="buy", limit=Decimal(limit), size=Decimal(size)),
    )
    assert placed.trade_id is None  # it rests: no change to announce
    return placed.order


def test_snapshot_after_a_trade_and_its_fills_equals_a_database_rebuild(
    market, make_user, django_capture_on_commit_callbacks
):
    newcomer, holder, trader = make_user("newcomer"), make_user("holder"), make_user("trader")
    trade(django_capture_on_commit_callbacks, user=holder, market=market, outcome_code="B", side="buy", shares="1")
    # Two resting buys on other outcomes, one by a user new to the market, one by a trader it has.
    orders = [resting_buy(newcomer, market, "A", "0.2"), resting_buy(holder, market, "C", "0.2")]
    market_snapshot(slug=market.slug)
    assert cached(market)["market"]["trader_count"] == 1

    with CaptureQueriesContext(connection) as queries:
        trade(django_capture_on_commit_callbacks, user=trader, market=market, outcome_code="B", side="buy", amount="60")
    # The trade took A and C below 0.2; each resting buy filled, and the snapshot was built from what the trade
    # and its fills had in hand: the final prices, volume and q, and two new traders (the trader, the newcomer).
    assert Trade.objects.filter(order__in=orders).count() == 2
    assert not rebuilt_from_database(queries)
    assert cached(market) == database(market)
    assert cached(market)["market"]["trader_count"] == 3


def test_snapshot_after_an_order_placed_marketable_and_its_fills_equals_a_database_rebuild(
    market, make_user, django_capture_on_commit_callbacks
):
    newcomer, placer = make_user("newcomer"), make_user("placer")
    resting = resting_buy(newcomer, market, "A", "0.2")
    market_snapshot(slug=market.slug)
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        placed = order_place(
            user=placer,
            market=market,
            request=OrderRequest(outcome="B", side="buy", limit=Decimal("0.5"), size=Decimal("100")),
        )
    assert placed.trade_id is not None
    assert Trade.objects.filter(order=resting).exists()
    assert not rebuilt_from_database(queries)
    assert cached(market) == database(market)
    assert cached(market)["market"]["trader_count"] == 2


def test_an_order_dated_by_its_caller_is_rebuilt_from_the_database(
    market, make_user, django_capture_on_commit_callbacks
):
    market_snapshot(slug=market.slug)
    trade(django_capture_on_commit_callbacks, user=make_user(), market=market, outcome_code="A", side="buy", shares="2")
    # An earlier-dated order's trade is not the market's latest price change: the snapshot keeps the later one.
    with django_capture_on_commit_callbacks(execute=True):
        placed = order_place(
            user=make_user(),
            market=market,
            request=OrderRequest(outcome="B", side="buy", limit=Decimal("0.4"), size=Decimal("50")),
            now=timezone.now() - timedelta(hours=1),
        )
    assert placed.trade_id is not None
    assert cached(market) == database(market)
