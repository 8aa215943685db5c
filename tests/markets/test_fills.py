"""The fill pass's one write statement (markets.services.fills): what it writes for each fill and for the pass as a
set, on the real PostgreSQL."""

from decimal import Decimal
from itertools import pairwise

import pytest

from accounts.models import Account, LedgerEntry
from accounts.services import wallet_get
from markets.errors import InsufficientFunds
from markets.models import LimitOrder, Outcome, Position, PricePoint, Trade
from markets.services import markets_reconcile, trade_execute
from markets.services.orders import OrderRequest, order_place
from tests.factories import trade_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_market):
    return make_market(slug="fills", liquidity=100)


def buy_order(user, market, limit, size="10"):
    request = OrderRequest(outcome="YES", side="buy", limit=Decimal(limit), size=Decimal(size))
    return order_place(user=user, market=market, request=request).order


def test_each_fill_is_a_trade_with_its_own_ledger_transaction_and_price_point_in_fill_order(market, make_user):
    twice, once, seller = make_user(), make_user(), make_user()
    high = buy_order(twice, market, "0.45")
    low = buy_order(twice, market, "0.40")
    middle = buy_order(once, market, "0.42")
    trade_execute(user=seller, market=market, request=trade_request("NO", "buy", shares="300"))

    fills = list(Trade.objects.filter(market=market, order__isnull=False).order_by("pk"))
    assert [fill.order_id for fill in fills] == [high.pk, middle.pk, low.pk]  # price priority, ids in fill order
    trigger = Trade.objects.get(market=market, order__isnull=True)
    # Priced one after another, each from where the one before left the price (recomputed from q: to a few ulps).
    assert fills[0].probabilities_before == pytest.approx(trigger.probabilities_after, abs=1e-12)
    for before, after in pairwise(fills):
        assert after.probabilities_before == pytest.approx(before.probabilities_after, abs=1e-12)
    points = list(PricePoint.objects.filter(trade__in=fills).order_by("pk"))
    assert [point.trade_id for point in points] == [fill.pk for fill in fills]
    assert [point.probabilities for point in points] == [fill.probabilities_after for fill in fills]
    assert [o.probability for o in Outcome.objects.filter(market=market).order_by("index")] == pytest.approx(
        fills[-1].probabilities_after, abs=1e-12
    )
    escrow = market.escrow_id
    for fill in fills:
        entries = dict(LedgerEntry.objects.filter(transaction=fill.ledger_transaction).values_list("account", "amount"))
        reserved = Account.objects.get(key=f"reserved:{fill.user_id}").pk
        assert entries == {reserved: -fill.amount, escrow: fill.amount}
        assert fill.ledger_transaction.kind == "trade"
    # Two fills of one owner on one outcome make one new position holding both.
    position = Position.objects.get(user=twice, outcome__code="YES")
    mine = [fill for fill in fills if fill.user_id == twice.pk]
    assert position.shares == sum(fill.shares for fill in mine)
    assert position.net_cost == sum(fill.amount for fill in mine)
    for placed in (high, middle, low):
        placed.refresh_from_db()
        assert placed.status == LimitOrder.Status.FILLED
        assert (placed.remaining, placed.reserved_credits, placed.filled_amount) == (0, 0, Decimal("10"))
    market.refresh_from_db()
    assert market.volume == trigger.amount + sum(fill.amount for fill in fills)
    assert markets_reconcile() == []


def test_a_sell_order_whose_remainder_pays_nothing_ends_and_frees_its_shares(market, make_user):
    """An order the price is past but whose remainder trades nothing (here a millionth of a share, whose sale pays
    less than a credit's quantum) ends filled in the pass's statement, its shares freed, beside a fill."""
    holder, buyer = make_user(), make_user()
    trade_execute(user=holder, market=market, request=trade_request("YES", "buy", shares="50"))
    request = OrderRequest(outcome="YES", side="sell", limit=Decimal("0.70"), size=Decimal("5"))
    crumb = order_place(user=holder, market=market, request=request).order
    crumb_left = Decimal("0.000001")
    LimitOrder.objects.filter(pk=crumb.pk).update(remaining=crumb_left, reserved_shares=crumb_left)
    Position.objects.filter(user=holder, outcome=crumb.outcome).update(reserved_shares=crumb_left)
    other = make_user()
    trade_execute(user=other, market=market, request=trade_request("YES", "buy", shares="10"))
    request = OrderRequest(outcome="YES", side="sell", limit=Decimal("0.72"), size=Decimal("5"))
    fills = order_place(user=other, market=market, request=request).order
    assert markets_reconcile() == []

    trade_execute(user=buyer, market=market, request=trade_request("YES", "buy", shares="200"))
    crumb.refresh_from_db()
    fills.refresh_from_db()
    assert (crumb.status, crumb.end_reason, crumb.reserved_shares) == (LimitOrder.Status.FILLED, "filled", 0)
    assert crumb.ended_at is not None
    assert not Trade.objects.filter(order=crumb).exists()
    assert Trade.objects.filter(order=fills).count() == 1
    assert Position.objects.get(user=holder, outcome=crumb.outcome).reserved_shares == 0
    assert Outcome.objects.get(pk=crumb.outcome_id).best_sell_limit is None
    assert markets_reconcile() == []


def test_a_reserve_the_pass_would_overdraw_refuses_the_whole_trade(market, make_user):
    """The pass's statement fails on the account's CHECK: InsufficientFunds, and nothing of the trade is written."""
    owner, seller = make_user(), make_user()
    placed = buy_order(owner, market, "0.45")
    Account.objects.filter(key=f"reserved:{owner.pk}").update(balance=Decimal("1"))  # out of step on purpose
    trades = Trade.objects.count()
    with pytest.raises(InsufficientFunds):
        trade_execute(user=seller, market=market, request=trade_request("NO", "buy", shares="300"))
    assert Trade.objects.count() == trades
    assert wallet_get(user=seller).balance == Decimal("1000")
    placed.refresh_from_db()
    assert (placed.status, placed.remaining) == (LimitOrder.Status.OPEN, Decimal("10"))
