"""Limit orders (markets.services.orders) and the fill engine (markets.services.fills) on the real PostgreSQL."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import LedgerTransaction
from accounts.services import wallet_get
from markets.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InsufficientShares,
    InvalidInput,
    MarketClosed,
    OrderNotOpen,
)
from markets.models import LimitOrder, Market, Outcome, Position, Trade
from markets.services import market_close, market_halt, market_resolve, markets_reconcile, trade_execute
from markets.services.orders import OrderRequest, order_cancel, order_place, orders_expire_due
from tests.factories import trade_request
from tests.markets.order_helpers import reserved, yes_price

pytestmark = pytest.mark.django_db

GRANT = Decimal("1000")


@pytest.fixture
def market(make_market):
    return make_market(slug="orders", liquidity=100)


def order(outcome="YES", side="buy", limit="0.4", size="50", **extra):
    return OrderRequest(outcome=outcome, side=side, limit=Decimal(limit), size=Decimal(size), **extra)


def test_a_buy_below_the_price_rests_and_reserves_its_credits_in_the_ledger(market, make_user):
    user = make_user()
    result = order_place(user=user, market=market, request=order(limit="0.4", size="50"))
    placed = result.order
    assert result.trade_id is None
    assert placed.status == LimitOrder.Status.OPEN
    assert placed.remaining == placed.reserved_credits == Decimal("50")
    assert wallet_get(user=user).balance == GRANT - 50
    assert reserved(user) == Decimal("50")
    movement = LedgerTransaction.objects.get(reference=f"order:{placed.pk}")
    assert movement.kind == LedgerTransaction.Kind.ORDER_RESERVE
    assert Outcome.objects.get(market=market, code="YES").best_buy_limit == Decimal("0.4")
    assert markets_reconcile() == []


def test_the_marketable_part_fills_at_once_up_to_the_limit_and_the_rest_rests(market, make_user):
    user = make_user()
    result = order_place(user=user, market=market, request=order(limit="0.6", size="50"))
    placed = result.order
    assert result.trade_id is not None
    trade = Trade.objects.get(pk=result.trade_id)
    assert trade.order_id == placed.pk
    assert trade.side == "buy"
    assert trade.probabilities_after[0] <= 0.6
    assert trade.probabilities_after[0] == pytest.approx(0.6, abs=1e-6)
    assert placed.remaining == Decimal("50") - trade.amount > 0
    assert placed.filled_shares == trade.shares
    assert wallet_get(user=user).balance == GRANT - 50
    assert reserved(user) == placed.remaining
    assert markets_reconcile() == []


def test_an_order_the_price_allows_in_full_is_filled_and_reserves_nothing(market, make_user):
    user = make_user()
    placed = order_place(user=user, market=market, request=order(limit="0.9", size="5")).order
    assert placed.status == LimitOrder.Status.FILLED
    assert placed.remaining == 0
    assert placed.reserved_credits == 0
    assert reserved(user) == 0
    assert wallet_get(user=user).balance == GRANT - 5
    assert markets_reconcile() == []


def test_another_traders_sale_fills_a_resting_buy_up_to_its_limit(market, make_user):
    buyer, seller = make_user(), make_user()
    placed = order_place(user=buyer, market=market, request=order(limit="0.5", size="100")).order
    assert placed.status == LimitOrder.Status.OPEN  # the price is 0.5, not below: nothing marketable
    result = trade_execute(user=seller, market=market, request=trade_request("NO", "buy", shares="200"))
    fill = Trade.objects.get(order=placed)
    assert fill.user == buyer
    assert fill.side == "buy"
    # Nobody sees a price past the resting limit: the fill took it back up to 0.5, no further.
    assert fill.probabilities_before[0] < 0.5
    assert fill.probabilities_after[0] <= 0.5
    assert yes_price(market) == pytest.approx(0.5, abs=1e-6)
    assert result.probabilities[0] == pytest.approx(0.5, abs=1e-6)
    placed.refresh_from_db()
    assert placed.remaining == Decimal("100") - fill.amount
    assert placed.filled_shares == fill.shares
    assert reserved(buyer) == placed.remaining
    assert wallet_get(user=buyer).balance == GRANT - 100
    assert Position.objects.get(user=buyer).shares == fill.shares
    assert markets_reconcile() == []


def test_a_sell_order_reserves_its_shares_and_fills_when_the_price_rises(market, make_user):
    holder, buyer = make_user(), make_user()
    trade_execute(user=holder, market=market, request=trade_request("YES", "buy", shares="100"))
    placed = order_place(user=holder, market=market, request=order(side="sell", limit="0.8", size="60")).order
    assert placed.status == LimitOrder.Status.OPEN
    assert placed.reserved_shares == 60
    assert Position.objects.get(user=holder).reserved_shares == 60
    # The reserved shares cannot be sold twice.
    with pytest.raises(InsufficientShares):
        trade_execute(user=holder, market=market, request=trade_request("YES", "sell", shares="41"))
    balance = wallet_get(user=holder).balance
    trade_execute(user=buyer, market=market, request=trade_request("YES", "buy", probability="0.85"))
    fill = Trade.objects.get(order=placed)
    assert fill.side == "sell"
    assert fill.user == holder
    assert fill.probabilities_after[0] >= 0.8
    assert yes_price(market) == pytest.approx(0.8, abs=1e-6)
    placed.refresh_from_db()
    assert placed.remaining == 60 - fill.shares == placed.reserved_shares
    assert Position.objects.get(user=holder).reserved_shares == placed.remaining
    assert wallet_get(user=holder).balance == balance + fill.amount
    assert markets_reconcile() == []


def test_fills_go_in_price_then_time_priority(market, make_user):
    first, second, third, seller = make_user(), make_user(), make_user(), make_user()
    low = order_place(user=first, market=market, request=order(limit="0.40", size="500")).order
    older = order_place(user=second, market=market, request=order(limit="0.45", size="500")).order
    newer = order_place(user=third, market=market, request=order(limit="0.45", size="500")).order
    trade_execute(user=seller, market=market, request=trade_request("NO", "buy", shares="300"))
    # The best price fills first, the older of two at that price; it takes the price back to 0.45, where
    # neither the newer nor the lower order is crossed any more.
    assert Trade.objects.filter(order=older).count() == 1
    assert not Trade.objects.filter(order__in=[newer, low]).exists()
    assert yes_price(market) == pytest.approx(0.45, abs=1e-6)
    assert markets_reconcile() == []


def test_a_budget_spent_out_lets_the_next_order_fill(market, make_user):
    small, big, seller = make_user(), make_user(), make_user()
    first = order_place(user=small, market=market, request=order(limit="0.5", size="3")).order
    second = order_place(user=big, market=market, request=order(limit="0.5", size="500")).order
    trade_execute(user=seller, market=market, request=trade_request("NO", "buy", shares="300"))
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == LimitOrder.Status.FILLED
    assert first.reserved_credits == 0
    assert second.status == LimitOrder.Status.OPEN
    assert second.filled_shares > 0
    assert Outcome.objects.get(market=market, code="YES").best_buy_limit == Decimal("0.5")
    assert reserved(small) == 0
    assert markets_reconcile() == []


def test_an_owners_own_trade_does_not_fill_their_order(market, make_user):
    user = make_user()
    placed = order_place(user=user, market=market, request=order(limit="0.5", size="100")).order
    trade_execute(user=user, market=market, request=trade_request("NO", "buy", shares="200"))
    assert not Trade.objects.filter(order=placed).exists()
    assert yes_price(market) < 0.5


def test_two_opposite_orders_fill_once_per_triggering_trade(market, make_user):
    """A buy resting at 0.6 and a sell at 0.55 could trade back and forth without end: each fills at most once
    per trade by someone else, so one trade gives at most one fill each."""
    bull, bear, other = make_user(), make_user(), make_user()
    trade_execute(user=bear, market=market, request=trade_request("YES", "buy", shares="300"))
    buy = order_place(user=bull, market=market, request=order(limit="0.6", size="300")).order
    sell = order_place(user=bear, market=market, request=order(side="sell", limit="0.55", size="300")).order
    before = {o.pk: o.fills.count() for o in (buy, sell)}
    trade_execute(user=other, market=market, request=trade_request("YES", "buy", shares="1"))
    after = {o.pk: o.fills.count() for o in (buy, sell)}
    assert after[sell.pk] == before[sell.pk] + 1  # crossed by the trade: sells down to 0.55
    assert after[buy.pk] == before[buy.pk] + 1  # crossed by that fill: buys back up to 0.6, once only
    assert yes_price(market) == pytest.approx(0.6, abs=1e-6)
    assert markets_reconcile() == []


def test_cancel_releases_the_reserve_once(market, make_user):
    user, stranger = make_user(), make_user()
    placed = order_place(user=user, market=market, request=order(limit="0.3", size="40")).order
    with pytest.raises(LimitOrder.DoesNotExist):
        order_cancel(user=stranger, order_id=placed.pk)
    cancelled = order_cancel(user=user, order_id=placed.pk)
    assert cancelled.status == LimitOrder.Status.CANCELLED
    assert cancelled.reserved_credits == 0
    assert wallet_get(user=user).balance == GRANT
    assert reserved(user) == 0
    with pytest.raises(OrderNotOpen):
        order_cancel(user=user, order_id=placed.pk)
    assert wallet_get(user=user).balance == GRANT
    assert Outcome.objects.get(market=market, code="YES").best_buy_limit is None
    assert markets_reconcile() == []


def test_cancelling_a_sell_frees_its_shares(market, make_user):
    user = make_user()
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    placed = order_place(user=user, market=market, request=order(side="sell", limit="0.9", size="10")).order
    order_cancel(user=user, order_id=placed.pk)
    assert Position.objects.get(user=user).reserved_shares == 0
    trade_execute(user=user, market=market, request=trade_request("YES", "sell", shares="10"))
    assert markets_reconcile() == []


def test_due_orders_expire_once_and_the_rest_stay(market, make_user):
    user = make_user()
    now = timezone.now()
    due = order_place(
        user=user, market=market, request=order(limit="0.3", size="10", expires_at=now + timedelta(hours=1))
    )
    later = order_place(
        user=user, market=market, request=order(limit="0.2", size="20", expires_at=now + timedelta(days=2))
    )
    forever = order_place(user=user, market=market, request=order(limit="0.1", size="30"))
    assert orders_expire_due(now=now + timedelta(hours=2)) == 1
    assert orders_expire_due(now=now + timedelta(hours=2)) == 0
    statuses = dict(LimitOrder.objects.values_list("pk", "status"))
    assert statuses == {due.order.pk: "expired", later.order.pk: "open", forever.order.pk: "open"}
    assert reserved(user) == Decimal("50")
    assert wallet_get(user=user).balance == GRANT - 50
    assert markets_reconcile() == []


def test_an_expired_order_does_not_fill_before_the_task_runs(market, make_user):
    buyer, seller = make_user(), make_user()
    now = timezone.now()
    trade_execute(user=seller, market=market, request=trade_request("YES", "buy", shares="200"), now=now)
    placed = order_place(
        user=buyer,
        market=market,
        request=order(limit="0.5", size="100", expires_at=now + timedelta(minutes=5)),
        now=now,
    ).order
    trade_execute(
        user=seller, market=market, request=trade_request("YES", "sell", shares="200"), now=now + timedelta(minutes=6)
    )
    assert not Trade.objects.filter(order=placed).exists()


@pytest.mark.parametrize(
    "stop",
    [
        lambda market, staff: market_close(market=market),
        lambda market, staff: market_halt(market=market, user=staff, reason="Checking the source"),
        lambda market, staff: market_resolve(
            market=market, user=staff, kind="outcome", outcome_code="YES", reason="Done"
        ),
    ],
    ids=["close", "halt", "resolve"],
)
def test_a_market_that_stops_trading_cancels_its_orders_and_releases_them(market, make_user, stop):
    buyer, seller, staff = make_user(), make_user(), make_user(is_staff=True)
    trade_execute(user=seller, market=market, request=trade_request("YES", "buy", shares="10"))
    order_place(user=buyer, market=market, request=order(limit="0.3", size="40"))
    order_place(user=seller, market=market, request=order(side="sell", limit="0.9", size="10"))
    stop(market, staff)
    assert set(LimitOrder.objects.values_list("status", flat=True)) == {"cancelled"}
    assert wallet_get(user=buyer).balance == GRANT
    assert reserved(buyer) == 0
    assert Position.objects.get(user=seller).reserved_shares == 0
    assert Outcome.objects.filter(market=market, best_buy_limit__isnull=False).count() == 0
    assert markets_reconcile() == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "0.12345"}, "limit"),
        ({"size": "0"}, "size"),
        ({"size": "-3"}, "size"),
        ({"side": "hold"}, "side"),
    ],
)
def test_bad_input_is_refused_with_its_field_and_writes_nothing(market, make_user, request_, field):
    user = make_user()
    with pytest.raises(InvalidInput) as error:
        order_place(user=user, market=market, request=order(**request_))
    assert error.value.field == field
    assert not LimitOrder.objects.exists()


def test_an_expiry_in_the_past_is_refused(market, make_user):
    with pytest.raises(InvalidInput) as error:
        order_place(user=make_user(), market=market, request=order(expires_at=timezone.now() - timedelta(seconds=1)))
    assert error.value.field == "expires_at"


def test_reserving_more_than_you_have_is_refused_and_changes_nothing(market, make_user):
    user = make_user()
    with pytest.raises(InsufficientFunds) as error:
        order_place(user=user, market=market, request=order(size="1000.01"))
    assert error.value.field == "size"
    with pytest.raises(InsufficientShares):
        order_place(user=user, market=market, request=order(side="sell", size="1"))
    assert not LimitOrder.objects.exists()
    assert reserved(user) == 0
    assert wallet_get(user=user).balance == GRANT


def test_an_order_on_a_closed_market_is_refused(market, make_user):
    market_close(market=market)
    with pytest.raises(MarketClosed):
        order_place(user=make_user(), market=market, request=order())


def test_an_idempotency_key_replays_the_first_order(market, make_user):
    user = make_user()
    first = order_place(user=user, market=market, request=order(idempotency_key="k1"))
    again = order_place(user=user, market=market, request=order(idempotency_key="k1"))
    assert again.replayed
    assert again.order.pk == first.order.pk
    assert LimitOrder.objects.count() == 1
    assert reserved(user) == Decimal("50")
    with pytest.raises(IdempotencyConflict):
        order_place(user=user, market=market, request=order(size="51", idempotency_key="k1"))


def test_reconciliation_reports_a_reserve_out_of_step_with_the_orders(market, make_user):
    user = make_user()
    placed = order_place(user=user, market=market, request=order(size="10")).order
    LimitOrder.objects.filter(pk=placed.pk).update(reserved_credits=Decimal("9"), remaining=Decimal("9"))
    assert [v.invariant for v in markets_reconcile()] == ["reserved_equals_open_orders"]


def test_a_voided_fill_is_paid_back_like_any_late_trade(market, make_user):
    """Voiding (a resolution's known_at) reverses a fill as it reverses any trade: the fill's owner gets back what
    it paid, into their wallet (the order was cancelled when the market stopped, so nothing stays reserved)."""
    buyer, seller, staff = make_user(), make_user(), make_user(is_staff=True)
    order_place(user=buyer, market=market, request=order(limit="0.5", size="100"))
    known_at = timezone.now()
    trade_execute(user=seller, market=market, request=trade_request("NO", "buy", shares="200"))
    fill = Trade.objects.get(user=buyer)
    market_resolve(
        market=market, user=staff, kind="outcome", outcome_code="NO", reason="Known early", known_at=known_at
    )
    from markets.services import market_settle

    market_settle(market_id=market.pk)
    fill.refresh_from_db()
    assert fill.voided_at is not None
    assert wallet_get(user=buyer).balance == GRANT
    assert Market.objects.get(pk=market.pk).status == Market.Status.RESOLVED
    assert markets_reconcile() == []


def test_the_expiry_task_is_scheduled_and_expires_due_orders(market, make_user, settings):
    from markets.tasks import orders_expire_due as expire_task

    assert "markets.tasks.orders_expire_due" in [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    user = make_user()
    soon = timezone.now() + timedelta(milliseconds=300)
    placed = order_place(user=user, market=market, request=order(size="10", expires_at=soon)).order
    LimitOrder.objects.filter(pk=placed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_task() == 1
    assert expire_task() == 0
    assert reserved(user) == 0
    assert wallet_get(user=user).balance == GRANT
