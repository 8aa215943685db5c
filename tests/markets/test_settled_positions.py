"""A settled position is worth what the settlement paid for it, not its shares at the last price."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from markets.models import Position
from markets.services import market_resolve, market_settle
from tests.markets.settlement_helpers import buy, sell

pytestmark = pytest.mark.django_db


def positions_of(user) -> dict[str, dict]:
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/me/positions/")
    assert response.status_code == 200
    return {row["outcome"]: row for row in response.json()["results"]}


def test_a_loser_is_shown_the_loss_and_a_winner_the_payout(make_market, make_user):
    staff = make_user("staff", is_staff=True)
    loser, winner = make_user("loser"), make_user("winner")
    market = make_market("rutte")
    buy(loser, market, "NO", "20")
    buy(winner, market, "YES", "30")
    before = positions_of(loser)["NO"]
    assert before["settled"] is False
    assert Decimal(before["value"]) > 0  # at the last price, before the settlement

    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Appointed.")
    assert positions_of(loser)["NO"]["settled"] is False  # resolving: not paid yet
    market_settle(market_id=market.pk)

    lost = positions_of(loser)["NO"]
    assert lost["settled"] is True
    assert lost["value"] == "0.000000"
    assert lost["profit"] == "-20.000000"
    won = positions_of(winner)["YES"]
    shares = Position.objects.get(user=winner, outcome__code="YES").shares
    assert Decimal(won["value"]) == shares
    assert Decimal(won["profit"]) == shares - Decimal("30")


def test_a_split_pays_each_share_its_part(make_market, make_user):
    staff = make_user("staff", is_staff=True)
    trader = make_user("trader")
    market = make_market("split")
    buy(trader, market, "YES", "10")
    buy(trader, market, "NO", "10")
    market_resolve(market=market, user=staff, kind="split", split=["0.25", "0.75"], reason="Half-true.")
    market_settle(market_id=market.pk)
    rows = positions_of(trader)
    for code, part in (("YES", Decimal("0.25")), ("NO", Decimal("0.75"))):
        shares = Position.objects.get(user=trader, outcome__code=code).shares
        assert Decimal(rows[code]["value"]) == (shares * part).quantize(Decimal("0.000001"), rounding="ROUND_FLOOR")


def test_an_annulled_market_refunds_the_net_cost_and_a_trader_in_profit_keeps_it(make_market, make_user):
    staff = make_user("staff", is_staff=True)
    refunded, profiteer, pusher = make_user("refunded"), make_user("profiteer"), make_user("pusher")
    market = make_market("void", liquidity=20)
    buy(profiteer, market, "YES", "10")
    buy(pusher, market, "YES", "200")
    sell(profiteer, market, "YES", str(Position.objects.get(user=profiteer).shares))
    buy(refunded, market, "NO", "15")
    market_resolve(market=market, user=staff, kind="annulled", reason="Ill-posed.")
    market_settle(market_id=market.pk)
    refund = positions_of(refunded)["NO"]
    assert refund["value"] == "15.000000"
    assert refund["profit"] == "0.000000"
    kept = positions_of(profiteer)["YES"]
    assert kept["value"] == "0.000000"
    assert Decimal(kept["profit"]) > 0
