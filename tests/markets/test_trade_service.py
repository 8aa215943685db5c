from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import F
from django.utils import timezone

from accounts.models import Account, LedgerTransaction
from accounts.services import ledger_transfer, wallet_get
from markets.errors import InsufficientFunds, InsufficientShares, InvalidInput, MarketClosed, PriceMoved
from markets.models import Market, Outcome, Position, Trade
from markets.services import market_close, market_create, markets_reconcile, trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_market):
    return make_market(
        slug="rutte-nato",
        question="Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?",
        kind=Market.Kind.BINARY,
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=30),
    )


def test_buying_ten_yes_from_even_odds_costs_the_reference_value(market, make_user):
    user = make_user()
    result = trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    assert result.trade.amount == Decimal("5.124948")  # 5.12494795 rounded up: the house's favour
    assert result.probabilities[0] == pytest.approx(0.524979, abs=1e-6)
    assert result.balance == Decimal("1000") - Decimal("5.124948")
    assert wallet_get(user=user).balance == result.balance
    assert markets_reconcile() == []


def test_spending_ten_buys_the_reference_shares(market, make_user):
    result = trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", amount="10"))
    assert result.trade.shares == Decimal("19.090282")  # 19.0902833 rounded down
    assert result.trade.amount <= Decimal("10")
    assert markets_reconcile() == []


def test_a_trade_beyond_the_balance_changes_nothing(market, make_user):
    user = make_user()
    with pytest.raises(InsufficientFunds):
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="5000"))
    assert Trade.objects.count() == 0
    assert wallet_get(user=user).balance == Decimal("1000")
    assert market.outcomes.get(code="YES").shares_outstanding == 0


def test_selling_more_than_held_is_refused(market, make_user):
    user = make_user()
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="3"))
    with pytest.raises(InsufficientShares):
        trade_execute(user=user, market=market, request=trade_request("YES", "sell", shares="4"))
    trade_execute(user=user, market=market, request=trade_request("YES", "sell", shares="3"))
    assert Position.objects.get(user=user).shares == 0
    assert markets_reconcile() == []


def test_price_bound_refuses_the_trade(market, make_user):
    with pytest.raises(PriceMoved):
        trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="10", max_cost="5"))
    assert Trade.objects.count() == 0


def test_trading_on_a_closed_market_is_refused(market, make_user):
    market_close(market=market)
    with pytest.raises(MarketClosed):
        trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="1"))


def test_trading_after_the_close_time_is_refused_before_the_task_runs(market, make_user):
    later = market.closes_at + timedelta(seconds=1)
    with pytest.raises(MarketClosed):
        trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="1"), now=later)


def test_target_probability_moves_the_price_there(market, make_user):
    result = trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", probability="0.7"))
    assert result.probabilities[0] == pytest.approx(0.7, abs=1e-6)


@pytest.mark.parametrize(
    ("field", "value"),
    [("shares", "-1"), ("shares", "0"), ("shares", "NaN"), ("shares", "inf"), ("shares", "1e30"), ("amount", "-2")],
)
def test_bad_quantities_are_refused_with_the_field_named(market, make_user, field, value):
    with pytest.raises(InvalidInput) as error:
        trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", **{field: value}))
    assert error.value.field == field
    assert Trade.objects.count() == 0


def test_subsidy_moves_from_the_house_to_the_escrow(market):
    assert market.subsidy == Decimal("69.314719")  # 100 * ln 2, rounded up
    assert Account.objects.get(key="house").balance == -market.subsidy


def test_reconciliation_reports_q_drifting_from_the_positions(market, make_user):
    trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="10"))
    Outcome.objects.filter(market=market, code="YES").update(shares_outstanding=F("shares_outstanding") + 1)
    assert [(v.invariant, v.subject, v.detail) for v in markets_reconcile()] == [
        ("q_equals_positions", "rutte-nato/YES", "q is 11.000000, positions hold 10.000000")
    ]


def test_the_trader_count_moves_once_per_user_and_market(market, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    for user, code, side in [(alice, "YES", "buy"), (alice, "NO", "buy"), (alice, "YES", "sell"), (bob, "NO", "buy")]:
        trade_execute(user=user, market=market, request=trade_request(code, side, shares="1"))
    # Alice's second outcome and her sale bring no new trader; Bob does.
    market.refresh_from_db()
    assert market.trader_count == 2
    assert markets_reconcile() == []


def test_reconciliation_reports_a_trader_count_drifting_from_the_positions(market, make_user):
    trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="10"))
    Market.objects.filter(pk=market.pk).update(trader_count=F("trader_count") + 1)
    assert [(v.invariant, v.subject, v.detail) for v in markets_reconcile()] == [
        ("trader_count_equals_positions", "rutte-nato", "trader count is 2, 1 users hold positions")
    ]


def test_reconciliation_reports_an_escrow_short_of_the_worst_payout(market, make_user):
    trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="100"))
    house = Account.objects.get(key="house")
    # A balanced, cached movement out of the escrow: only the coverage invariant can notice it.
    ledger_transfer(
        source=market.escrow, destination=house, amount=Decimal("60"), kind=LedgerTransaction.Kind.ADJUSTMENT
    )
    violations = markets_reconcile()
    assert [(v.invariant, v.subject) for v in violations] == [("escrow_covers_worst_payout", "rutte-nato")]
    assert "< worst payout 100.000000" in violations[0].detail


def test_a_user_created_without_a_wallet_gets_a_domain_error_not_a_crash(market):
    from accounts.models import User

    user = User.objects.create_user(username="made-by-createsuperuser", password="x-long-password")
    with pytest.raises(InsufficientFunds):
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="1"))
    assert not Trade.objects.filter(user=user).exists()
    assert markets_reconcile() == []


def test_the_slug_of_the_new_market_page_is_reserved():
    with pytest.raises(InvalidInput) as error:
        market_create(
            slug="new", question="Q?", kind=Market.Kind.BINARY, liquidity=10, closes_at=timezone.now() + timedelta(1)
        )
    assert error.value.field == "slug"
