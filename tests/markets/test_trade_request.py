"""The trade request: checked once when built, fingerprinted for idempotency, priced as a forecast."""

from decimal import Decimal

import pytest

from markets.errors import InvalidInput
from markets.trade_request import TradeRequest
from tests.factories import trade_request


def test_a_request_is_immutable():
    request = TradeRequest(outcome="YES", side="buy", shares=Decimal("1"))
    with pytest.raises(AttributeError):
        request.shares = Decimal("2")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"side": "buy"}, "shares"),
        ({"side": "buy", "shares": "1", "amount": "1"}, "shares"),
        ({"side": "hold", "shares": "1"}, "side"),
        ({"side": None, "amount": "1"}, "side"),  # a forecast is a probability
        ({"side": "buy", "probability": "0.99999"}, "probability"),
        ({"side": "buy", "amount": "1", "max_cost": "0"}, "max_cost"),
        ({"side": "buy", "amount": "1", "min_proceeds": "-1"}, "min_proceeds"),
        ({"side": "buy", "amount": "1", "idempotency_key": "k" * 256}, "Idempotency-Key"),
    ],
)
def test_an_ill_formed_request_cannot_be_built(fields, field):
    side = fields.pop("side")
    with pytest.raises(InvalidInput) as error:
        trade_request("YES", side, **fields)
    assert error.value.field == field


def test_a_zero_min_proceeds_is_a_bound():
    assert trade_request("YES", "sell", shares="1", min_proceeds="0").min_proceeds == 0


def test_the_fingerprint_names_the_request_and_the_market_not_the_key_or_the_spelling():
    first = trade_request("YES", "buy", amount="10", idempotency_key="a")
    assert first.fingerprint(market_id=1) == trade_request(
        "YES", "buy", amount="10.000", idempotency_key="b"
    ).fingerprint(market_id=1)
    others = [
        first.fingerprint(market_id=2),
        trade_request("NO", "buy", amount="10").fingerprint(market_id=1),
        trade_request("YES", "sell", amount="10").fingerprint(market_id=1),
        trade_request("YES", "buy", shares="10").fingerprint(market_id=1),
        trade_request("YES", "buy", amount="10", max_cost="10").fingerprint(market_id=1),
        trade_request("YES", "buy", amount="10", min_proceeds="10").fingerprint(market_id=1),
    ]
    assert len({first.fingerprint(market_id=1), *others}) == 7
