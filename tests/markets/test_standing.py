"""Standing forecasts (markets.services.standing): a pair of re-arming limit orders with a budget, on PostgreSQL."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import F
from django.utils import timezone

from accounts.models import Account, LedgerTransaction
from accounts.services import wallet_get
from markets.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    MarketClosed,
    StandingForecastOrder,
    StandingNotActive,
)
from markets.models import LimitOrder, Position, StandingForecast, Trade
from markets.services import market_close, market_halt, market_resolve, markets_reconcile, trade_execute
from markets.services.orders import order_cancel, orders_expire_due
from markets.services.standing import (
    StandingRequest,
    standing_forecast_cancel,
    standing_forecast_create,
    standing_forecasts_expire_due,
)
from tests.factories import trade_request
from tests.markets.order_helpers import reserved, yes_price

pytestmark = pytest.mark.django_db

GRANT = Decimal("1000")


@pytest.fixture
def market(make_market):
    return make_market(slug="standing", liquidity=100)


def standing(outcome="YES", belief="0.5", band="3", budget="200", **extra):
    return StandingRequest(
        outcome=outcome, belief=Decimal(belief), band_points=Decimal(band), budget=Decimal(budget), **extra
    )


def open_orders(forecast):
    return {order.side: order for order in LimitOrder.objects.filter(standing_forecast=forecast, status="open")}


def test_inside_its_band_it_rests_a_buy_below_and_holds_no_sell_without_shares(market, make_user):
    user = make_user()
    result = standing_forecast_create(user=user, market=market, request=standing(belief="0.5", band="3"))
    forecast = result.forecast
    assert result.trade_id is None
    assert forecast.status == StandingForecast.Status.ACTIVE
    assert forecast.band == Decimal("0.03")
    orders = open_orders(forecast)
    assert set(orders) == {"buy"}
    assert orders["buy"].limit_probability == Decimal("0.47")
    assert orders["buy"].remaining == Decimal("200")
    assert reserved(user) == Decimal("200")
    assert wallet_get(user=user).balance == GRANT - 200
    assert markets_reconcile() == []


def test_outside_its_band_it_trades_at_once_to_the_band_and_arms_both_sides(market, make_user):
    user = make_user()
    result = standing_forecast_create(user=user, market=market, request=standing(belief="0.7", band="3"))
    forecast = result.forecast
    assert result.trade_id is not None
    trade = Trade.objects.get(pk=result.trade_id)
    assert trade.user_id == user.pk
    assert trade.side == "buy"
    assert yes_price(market) == pytest.approx(0.67, abs=1e-6)
    assert yes_price(market) <= 0.67
    assert forecast.spent == trade.amount
    orders = open_orders(forecast)
    assert orders["buy"].remaining == Decimal("200") - trade.amount
    # The sell side holds what the buy bought, above belief + band.
    assert orders["sell"].limit_probability == Decimal("0.73")
    assert orders["sell"].remaining == trade.shares
    assert Position.objects.get(user=user, outcome=trade.outcome).reserved_shares == trade.shares
    assert markets_reconcile() == []


def test_a_trade_that_pushes_the_price_down_is_met_and_the_sell_side_re_arms(market, make_user):
    forecaster, trader = make_user(), make_user()
    forecast = standing_forecast_create(user=forecaster, market=market, request=standing(belief="0.5")).forecast
    trade_execute(user=trader, market=market, request=trade_request("NO", "buy", amount="40"))
    assert yes_price(market) == pytest.approx(0.47, abs=1e-6)
    fill = Trade.objects.get(order__standing_forecast=forecast)
    forecast.refresh_from_db()
    assert forecast.spent == fill.amount
    orders = open_orders(forecast)
    assert orders["buy"].remaining == Decimal("200") - fill.amount
    assert orders["sell"].remaining == fill.shares
    assert orders["sell"].limit_probability == Decimal("0.53")
    assert markets_reconcile() == []

    # The trader pushes the price up past 53%: the forecaster sells all it bought (no more: it holds no other
    # shares), and the buy side grows back by what the sale brought in.
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="60"))
    assert yes_price(market) > 0.53
    sale = Trade.objects.filter(order__standing_forecast=forecast, side="sell").get()
    assert sale.shares == fill.shares
    assert Position.objects.get(user=forecaster, outcome=fill.outcome_id).shares == 0
    forecast.refresh_from_db()
    assert forecast.spent == fill.amount - sale.amount
    orders = open_orders(forecast)
    assert set(orders) == {"buy"}
    assert orders["buy"].remaining == Decimal("200") - forecast.spent
    replaced = LimitOrder.objects.filter(standing_forecast=forecast, end_reason="re-armed")
    assert replaced.filter(side="buy").exists()
    assert markets_reconcile() == []


def test_the_budget_bounds_what_it_spends_net(market, make_user):
    forecaster, trader = make_user(), make_user()
    forecast = standing_forecast_create(
        user=forecaster, market=market, request=standing(belief="0.6", band="1", budget="5")
    ).forecast
    for _ in range(3):
        trade_execute(user=trader, market=market, request=trade_request("NO", "buy", amount="50"))
    forecast.refresh_from_db()
    paid = sum(t.amount for t in Trade.objects.filter(order__standing_forecast=forecast, side="buy"))
    assert paid == forecast.spent <= Decimal("5")
    assert "buy" not in open_orders(forecast)
    assert wallet_get(user=forecaster).balance + reserved(forecaster) == GRANT - paid
    assert markets_reconcile() == []


def test_its_own_trades_never_fill_its_orders(market, make_user):
    forecaster = make_user()
    forecast = standing_forecast_create(user=forecaster, market=market, request=standing(belief="0.5")).forecast
    trade_execute(user=forecaster, market=market, request=trade_request("NO", "buy", amount="40"))
    assert not Trade.objects.filter(order__standing_forecast=forecast).exists()


def test_two_standing_forecasts_either_side_of_a_price_do_not_trade_back_and_forth(market, make_user):
    """A believes 70%, B believes 50% and holds Yes shares: both are crossed at every price between 52% and 68%,
    yet each outside trade fills each of their orders at most once, and without outside trades nothing trades."""
    a, b, trader = make_user(), make_user(), make_user()
    # B buys Yes cheap (from 20% back to 50%): about 139 shares its sell side may sell above 52%.
    trade_execute(user=trader, market=market, request=trade_request("YES", None, probability="0.2"))
    trade_execute(user=b, market=market, request=trade_request("YES", None, probability="0.5"))
    forecast_b = standing_forecast_create(user=b, market=market, request=standing(belief="0.5", band="2")).forecast
    assert set(open_orders(forecast_b)) == {"buy", "sell"}
    fills_before = 0
    # A's creation buys at once up to 68% (A's own trade); B's sell fills on it once, back down to 52%.
    forecast_a = standing_forecast_create(user=a, market=market, request=standing(belief="0.7", band="2")).forecast
    assert Trade.objects.filter(order__standing_forecast=forecast_b).count() == fills_before + 1
    assert Trade.objects.filter(order__standing_forecast=forecast_a).count() == 1
    assert yes_price(market) == pytest.approx(0.52, abs=1e-6)
    # A's buy rests crossed (52% is below its 68%), waiting for someone else's trade: nothing trades meanwhile.
    assert open_orders(forecast_a)["buy"].limit_probability == Decimal("0.68")
    for round_number in range(1, 6):
        last = Trade.objects.order_by("-pk").values_list("pk", flat=True).first()
        trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="1"))
        fills = list(
            Trade.objects.filter(pk__gt=last, order__isnull=False).values_list("order__standing_forecast", flat=True)
        )
        # Each standing forecast fills at most once per outside trade (A up to 68%, then B down to 52%).
        assert sorted(fills) == sorted(set(fills)), round_number
        assert set(fills) <= {forecast_a.pk, forecast_b.pk}
        assert len(fills) <= 2
    assert markets_reconcile() == []
    for forecast in (forecast_a, forecast_b):
        forecast.refresh_from_db()
        assert forecast.spent <= forecast.budget


def test_one_owners_standing_forecasts_re_armed_by_one_trade_share_its_free_shares_in_order(market, make_user):
    """Both of one owner's standing forecasts on Yes buy on one outside trade, and both are re-armed together (in
    one statement): the first (by id) sells every free share, both fills' shares, and the second holds none back
    twice, as when they were re-armed one after the other."""
    owner, trader = make_user(), make_user()
    first = standing_forecast_create(
        user=owner, market=market, request=standing(belief="0.5", band="1", budget="20")
    ).forecast
    second = standing_forecast_create(
        user=owner, market=market, request=standing(belief="0.49", band="1", budget="20")
    ).forecast
    trade_execute(user=trader, market=market, request=trade_request("NO", "buy", amount="60"))
    bought = Trade.objects.filter(order__standing_forecast__in=[first, second])
    assert set(bought.values_list("order__standing_forecast", flat=True)) == {first.pk, second.pk}
    shares = sum(fill.shares for fill in bought)
    assert open_orders(first)["sell"].remaining == shares
    assert "sell" not in open_orders(second)
    assert Position.objects.get(user=owner, outcome__code="YES").reserved_shares == shares
    for forecast in (first, second):
        forecast.refresh_from_db()
        assert forecast.spent == sum(fill.amount for fill in bought.filter(order__standing_forecast=forecast))
    assert wallet_get(user=owner).balance + reserved(owner) == GRANT - sum(fill.amount for fill in bought)
    assert markets_reconcile() == []


def test_a_buy_side_re_armed_for_the_first_time_opens_its_owners_reserved_account(market, make_user):
    """A budget spent whole at once rests no buy order and reserves nothing; when its sell side then fills, the buy
    side re-arms with what the sale brought in, moved to a reserved account its owner never had until then."""
    owner, trader = make_user(), make_user()
    forecast = standing_forecast_create(
        user=owner, market=market, request=standing(belief="0.7", band="3", budget="5")
    ).forecast
    assert set(open_orders(forecast)) == {"sell"}
    assert not Account.objects.filter(key=f"reserved:{owner.pk}").exists()
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="150"))
    sale = Trade.objects.get(order__standing_forecast=forecast, side="sell")
    forecast.refresh_from_db()
    assert forecast.spent == Decimal("5") - sale.amount
    buy = open_orders(forecast)["buy"]
    assert buy.remaining == buy.reserved_credits == sale.amount
    assert reserved(owner) == sale.amount
    reserve = LedgerTransaction.objects.get(reference=f"order:{buy.pk}")
    assert reserve.kind == LedgerTransaction.Kind.ORDER_RESERVE
    assert markets_reconcile() == []


def test_cancel_ends_both_orders_and_releases_their_reserves(market, make_user):
    user = make_user()
    forecast = standing_forecast_create(user=user, market=market, request=standing(belief="0.7")).forecast
    held = Position.objects.get(user=user, outcome__code="YES")
    assert held.reserved_shares > 0
    cancelled = standing_forecast_cancel(user=user, forecast_id=forecast.pk)
    assert cancelled.status == StandingForecast.Status.CANCELLED
    assert not LimitOrder.objects.filter(standing_forecast=forecast, status="open").exists()
    assert reserved(user) == 0
    held.refresh_from_db()
    assert held.reserved_shares == 0
    assert markets_reconcile() == []
    with pytest.raises(StandingNotActive):
        standing_forecast_cancel(user=user, forecast_id=forecast.pk)


def test_someone_elses_standing_forecast_is_not_found(market, make_user):
    forecast = standing_forecast_create(user=make_user(), market=market, request=standing()).forecast
    with pytest.raises(StandingForecast.DoesNotExist):
        standing_forecast_cancel(user=make_user(), forecast_id=forecast.pk)


def test_its_orders_cannot_be_cancelled_one_by_one(market, make_user):
    user = make_user()
    forecast = standing_forecast_create(user=user, market=market, request=standing()).forecast
    with pytest.raises(StandingForecastOrder):
        order_cancel(user=user, order_id=open_orders(forecast)["buy"].pk)


def test_expiry_ends_it_and_its_orders_and_runs_twice_safely(market, make_user):
    user = make_user()
    now = timezone.now()
    forecast = standing_forecast_create(
        user=user, market=market, request=standing(belief="0.7", expires_at=now + timedelta(hours=1)), now=now
    ).forecast
    assert {o.expires_at for o in open_orders(forecast).values()} == {forecast.expires_at}
    later = now + timedelta(hours=2)
    # The orders' own sweep may come first: the standing forecast's sweep still ends it.
    orders_expire_due(now=later)
    assert standing_forecasts_expire_due(now=later) == 1
    assert standing_forecasts_expire_due(now=later) == 0
    forecast.refresh_from_db()
    assert forecast.status == StandingForecast.Status.EXPIRED
    assert reserved(user) == 0
    assert markets_reconcile() == []


def test_expiry_alone_ends_its_orders(market, make_user):
    user = make_user()
    now = timezone.now()
    forecast = standing_forecast_create(
        user=user, market=market, request=standing(expires_at=now + timedelta(hours=1)), now=now
    ).forecast
    assert standing_forecasts_expire_due(now=now + timedelta(hours=2)) == 1
    assert set(LimitOrder.objects.filter(standing_forecast=forecast).values_list("status", flat=True)) == {"expired"}
    assert reserved(user) == 0


@pytest.mark.parametrize("stop", ["close", "halt", "resolve"])
def test_the_market_stopping_ends_it_like_its_orders(market, make_user, stop):
    user = make_user()
    staff = make_user(is_staff=True)
    forecast = standing_forecast_create(user=user, market=market, request=standing(belief="0.7")).forecast
    if stop == "close":
        market_close(market=market)
    elif stop == "halt":
        market_halt(market=market, user=staff, reason="Checking a source")
    else:
        market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Known")
    forecast.refresh_from_db()
    assert forecast.status == StandingForecast.Status.CANCELLED
    assert forecast.end_reason
    assert not LimitOrder.objects.filter(standing_forecast=forecast, status="open").exists()
    assert reserved(user) == 0
    assert markets_reconcile() == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"belief": "0"}, "belief"),
        ({"belief": "1"}, "belief"),
        ({"belief": "1.2"}, "belief"),
        ({"belief": "0.55555"}, "belief"),
        ({"band": "0"}, "band"),
        ({"band": "-1"}, "band"),
        ({"belief": "0.98", "band": "3"}, "band"),
        ({"belief": "0.02", "band": "2"}, "band"),
        ({"budget": "0"}, "budget"),
        ({"budget": "-5"}, "budget"),
        ({"outcome": "MAYBE"}, "outcome"),
    ],
)
def test_bad_input_names_its_field_and_writes_nothing(market, make_user, fields, field):
    user = make_user()
    with pytest.raises(InvalidInput) as refused:
        standing_forecast_create(user=user, market=market, request=standing(**fields))
    assert refused.value.field == field
    assert not StandingForecast.objects.exists()
    assert not LimitOrder.objects.exists()


def test_an_expiry_in_the_past_is_refused(market, make_user):
    with pytest.raises(InvalidInput) as refused:
        standing_forecast_create(
            user=make_user(), market=market, request=standing(expires_at=timezone.now() - timedelta(minutes=1))
        )
    assert refused.value.field == "expires_at"


def test_a_budget_above_the_wallet_is_refused(market, make_user):
    with pytest.raises(InsufficientFunds) as refused:
        standing_forecast_create(user=make_user(), market=market, request=standing(budget="1000.01"))
    assert refused.value.field == "budget"
    assert not StandingForecast.objects.exists()


def test_a_closed_market_takes_none(market, make_user):
    market_close(market=market)
    with pytest.raises(MarketClosed):
        standing_forecast_create(user=make_user(), market=market, request=standing())


def test_an_idempotency_key_replays_and_conflicts(market, make_user):
    user = make_user()
    first = standing_forecast_create(user=user, market=market, request=standing(idempotency_key="k1"))
    again = standing_forecast_create(user=user, market=market, request=standing(idempotency_key="k1"))
    assert again.replayed
    assert again.forecast.pk == first.forecast.pk
    assert StandingForecast.objects.count() == 1
    with pytest.raises(IdempotencyConflict):
        standing_forecast_create(user=user, market=market, request=standing(belief="0.6", idempotency_key="k1"))


def test_reconciliation_catches_a_standing_forecast_out_of_step_with_its_orders(market, make_user):
    user, trader = make_user(), make_user()
    forecast = standing_forecast_create(user=user, market=market, request=standing(belief="0.5")).forecast
    trade_execute(user=trader, market=market, request=trade_request("NO", "buy", amount="40"))
    assert markets_reconcile() == []

    StandingForecast.objects.filter(pk=forecast.pk).update(spent=F("spent") - 1)
    assert {v.invariant for v in markets_reconcile()} == {"standing_spent_equals_fills"}
    StandingForecast.objects.filter(pk=forecast.pk).update(spent=F("spent") + 1)

    StandingForecast.objects.filter(pk=forecast.pk).update(status=StandingForecast.Status.CANCELLED)
    assert {v.invariant for v in markets_reconcile()} == {"standing_orders_consistent"}
    StandingForecast.objects.filter(pk=forecast.pk).update(status=StandingForecast.Status.ACTIVE, budget=F("spent") + 1)
    assert {v.invariant for v in markets_reconcile()} == {"standing_orders_consistent"}
