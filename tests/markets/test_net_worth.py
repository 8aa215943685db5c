"""The net-worth history: one set-based query, checked point by point against a plain Python replay of the
same trades, price points and payouts."""

from datetime import datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_balance
from markets.models import Outcome, Payout, PricePoint, Trade
from markets.selectors.net_worth import net_worth_chart, user_net_worth_history
from markets.selectors.portfolio import portfolio_get
from markets.services import market_resolve, market_settle, trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

START = timezone.now() - timedelta(days=10)


def reference(user: User, at: datetime, balance_now: Decimal) -> tuple[Decimal, Decimal]:
    """(balance, positions value) at `at`, by replaying rows one by one."""
    balance = balance_now
    for trade in Trade.objects.filter(user=user, created_at__gt=at):
        balance -= -trade.amount if trade.side == "buy" else trade.amount
    for payout in Payout.objects.filter(user=user, created_at__gt=at, resolution__is_current=True):
        balance -= payout.amount
    shares: dict[int, Decimal] = {}
    for trade in Trade.objects.filter(user=user, created_at__lte=at).select_related("outcome"):
        signed = trade.shares if trade.side == "buy" else -trade.shares
        shares[trade.outcome_id] = shares.get(trade.outcome_id, Decimal(0)) + signed
    value = Decimal(0)
    for outcome_id, held in shares.items():
        outcome = Outcome.objects.select_related("market").get(pk=outcome_id)
        market = outcome.market
        if market.resolved_at is not None and market.resolved_at <= at:
            continue
        point = PricePoint.objects.filter(market=market, created_at__lte=at).order_by("-created_at", "-id").first()
        probability = (
            Decimal(str(point.probabilities[outcome.index])) if point else Decimal(str(outcome.initial_probability))
        )
        value += held * probability
    return balance, value


def test_the_history_matches_a_replay_at_every_point_and_ends_at_the_portfolio(
    make_market, make_user, django_assert_num_queries
):
    staff = make_user("staff", is_staff=True)
    trader, other = make_user("trader"), make_user("other")
    rain = make_market("rain", question="rain?", closes_at=START + timedelta(days=30), now=START)
    sun = make_market("sun", question="sun?", closes_at=START + timedelta(days=5), now=START)
    steps = [
        (trader, rain, "YES", "buy", {"amount": "100"}, 1),
        (other, rain, "YES", "buy", {"amount": "200"}, 2),
        (trader, sun, "NO", "buy", {"amount": "50"}, 2.5),
        (trader, rain, "YES", "sell", {"shares": "40"}, 3),
        (other, sun, "YES", "buy", {"amount": "30"}, 4),
        (other, rain, "NO", "buy", {"amount": "80"}, 7),
    ]
    for user, market, code, side, quantity, day in steps:
        trade_execute(
            user=user,
            market=market,
            request=trade_request(code, side, **quantity),
            now=START + timedelta(days=day),
        )
    with mock.patch("markets.services.resolution.settlement_enqueue"):
        market_resolve(
            market=sun, user=staff, kind="outcome", outcome_code="NO", reason="Dry.", now=START + timedelta(days=6)
        )
    market_settle(market_id=sun.pk, now=START + timedelta(days=6, hours=1))

    balance = user_balance(user=trader)
    now = timezone.now()
    with django_assert_num_queries(1):
        history = user_net_worth_history(user=trader, balance=balance, now=now, points=40)
    assert len(history) == 41
    assert history[0].at < START + timedelta(days=1)
    assert history[-1].at == now
    assert history[0].balance == Decimal("1000")
    assert history[0].positions == 0
    for point in history:
        expected_balance, expected_value = reference(trader, point.at, balance)
        assert point.balance == expected_balance, point.at
        assert abs(point.positions - expected_value) < Decimal("0.000001"), point.at
    # The last point is today's portfolio: balance plus open positions at current prices.
    portfolio = portfolio_get(user=trader)
    assert history[-1].balance == portfolio.balance
    assert abs(history[-1].net_worth - portfolio.net_worth) < Decimal("0.00001")
    chart = net_worth_chart(history)
    assert len(chart["t"]) == len(chart["net_worth"]) == 41


def test_a_user_without_trades_has_a_flat_day_of_balance(make_user):
    newcomer = make_user("newcomer")
    history = user_net_worth_history(user=newcomer, points=10)
    assert len(history) == 11
    assert {point.net_worth for point in history} == {Decimal("1000")}
    assert history[-1].at - history[0].at == timedelta(days=1)
