"""The net-worth history: one set-based query, checked point by point against a plain Python replay of the
wallet's ledger entries, the trades and the price points, through a settlement and a re-resolution."""

from datetime import datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from accounts.models import LedgerEntry, LedgerTransaction, User
from accounts.selectors import user_balance
from markets.models import Outcome, PricePoint, Resolution, Trade
from markets.selectors.net_worth import net_worth_chart, user_net_worth_history
from markets.selectors.portfolio import portfolio_get
from markets.services import market_resolve, market_settle, trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

START = timezone.now() - timedelta(days=10)


def entry_time(transaction: LedgerTransaction) -> datetime:
    """When a wallet entry happened, on the market's clock: the trade's, the settlement's or the reversal's time."""
    trade = Trade.objects.filter(ledger_transaction=transaction).first()
    if trade is not None:
        return trade.created_at
    kind, _, resolution_id = (transaction.reference or "").partition(":")
    resolution = Resolution.objects.filter(pk=resolution_id).first() if kind in ("settlement", "reversal") else None
    moment = None
    if resolution is not None:
        moment = resolution.settled_at if kind == "settlement" else resolution.reversed_at
    return moment or transaction.created_at


def reference(user: User, at: datetime, balance_now: Decimal) -> tuple[Decimal, Decimal]:
    """(balance, positions value) at `at`, by replaying the wallet's ledger entries and the trades one by one."""
    balance = balance_now
    entries = LedgerEntry.objects.filter(account__user=user, account__kind="wallet").select_related("transaction")
    for entry in entries:
        if entry.transaction.kind != "signup_grant" and entry_time(entry.transaction) > at:
            balance -= entry.amount
    shares: dict[int, Decimal] = {}
    for trade in Trade.objects.filter(user=user, created_at__lte=at).select_related("outcome"):
        signed = trade.shares if trade.side == "buy" else -trade.shares
        shares[trade.outcome_id] = shares.get(trade.outcome_id, Decimal(0)) + signed
    value = Decimal(0)
    for outcome_id, held in shares.items():
        outcome = Outcome.objects.select_related("market").get(pk=outcome_id)
        market = outcome.market
        if Resolution.objects.filter(market=market, settled_at__lte=at).exists():
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


def test_a_re_resolution_moves_the_curve_by_its_reversal_and_write_off(make_market, make_user):
    """The trader is paid, spends the payout, and a re-resolution takes it back: the curve carries the payout from
    the first settlement, the reversal (less what was written off) from the second, and matches the replay."""
    staff = make_user("staff", is_staff=True)
    trader, other = make_user("trader"), make_user("other")
    rain = make_market("rain", question="rain?", closes_at=START + timedelta(days=3), now=START)
    snow = make_market("snow", question="snow?", closes_at=START + timedelta(days=30), now=START)
    trade_execute(
        user=trader, market=rain, request=trade_request("YES", "buy", amount="600"), now=START + timedelta(days=1)
    )
    trade_execute(
        user=other, market=rain, request=trade_request("NO", "buy", amount="300"), now=START + timedelta(days=2)
    )
    with mock.patch("markets.services.resolution.settlement_enqueue"):
        market_resolve(
            market=rain, user=staff, kind="outcome", outcome_code="YES", reason="Rain.", now=START + timedelta(days=4)
        )
    first = market_settle(market_id=rain.pk, now=START + timedelta(days=4, hours=1))
    assert first is not None
    paid = Resolution.objects.get(pk=first.resolution_id).payout_rows.get(user=trader).amount
    # The trader spends all of it but 10 credits.
    spend = str(user_balance(user=trader) - Decimal("10"))
    trade_execute(
        user=trader, market=snow, request=trade_request("YES", "buy", amount=spend), now=START + timedelta(days=5)
    )
    with mock.patch("markets.services.resolution.settlement_enqueue"):
        market_resolve(
            market=rain, user=staff, kind="outcome", outcome_code="NO", reason="Hail.", now=START + timedelta(days=6)
        )
    market_settle(market_id=rain.pk, now=START + timedelta(days=6, hours=1))
    assert user_balance(user=trader) == 0  # 10 credits given back, the rest written off

    balance = user_balance(user=trader)
    history = user_net_worth_history(user=trader, balance=balance, now=START + timedelta(days=7), points=70)
    for point in history:
        expected_balance, expected_value = reference(trader, point.at, balance)
        assert point.balance == expected_balance, point.at
        assert abs(point.positions - expected_value) < Decimal("0.000001"), point.at

    def at(moment: datetime):
        return next(point for point in reversed(history) if point.at <= moment)

    paid_out = at(START + timedelta(days=4, hours=12))
    assert paid_out.balance == Decimal("1000") - Decimal("600") + paid
    assert paid_out.positions == 0
    spent = at(START + timedelta(days=5, hours=12))
    assert spent.balance == Decimal("10")
    reversed_ = at(START + timedelta(days=6, hours=12))
    assert reversed_.balance == 0
    assert reversed_.positions == spent.positions


def test_credits_reserved_for_an_order_stay_in_the_net_worth(make_market, make_user):
    """Placing a buy order moves credits from the wallet to the reserved account: still the trader's, so the curve
    neither dips when it is placed nor counts the credits twice before it."""
    from markets.services.orders import OrderRequest, order_place

    market = make_market("reserving")
    trader = make_user("reserver")
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="10"))
    order_place(
        user=trader,
        market=market,
        request=OrderRequest(outcome="YES", side="buy", limit=Decimal("0.2"), size=Decimal("300")),
    )
    history = user_net_worth_history(user=trader, points=10)
    assert history[0].net_worth == Decimal("1000")
    assert history[-1].balance == user_balance(user=trader) + Decimal("300")
    assert abs(history[-1].net_worth - Decimal("1000")) < Decimal("1")
