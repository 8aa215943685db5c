"""Bad input to the trade request, the trading and market services: refused with InvalidInput naming the field,
nothing written."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Account, LedgerEntry, LedgerTransaction
from markets.errors import InvalidInput
from markets.models import IdempotencyKey, Market, Outcome, Position, PricePoint, Trade
from markets.services import market_create, trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

NATO = [
    ("RUTTE", "Mark Rutte"),
    ("KALLAS", "Kaja Kallas"),
    ("RINKEVICS", "Edgars Rinkēvičs"),
    ("IOHANNIS", "Klaus Iohannis"),
    ("OTHER", "Other"),
]


def rows() -> dict[str, object]:
    """Row counts and balances of everything a trade or a market creation writes."""
    return {
        "markets": Market.objects.count(),
        "outcomes": Outcome.objects.count(),
        "trades": Trade.objects.count(),
        "positions": list(Position.objects.order_by("pk").values_list("shares", "net_cost")),
        "transactions": LedgerTransaction.objects.count(),
        "entries": LedgerEntry.objects.count(),
        "accounts": list(Account.objects.order_by("pk").values_list("key", "balance")),
        "price_points": PricePoint.objects.count(),
        "idempotency_keys": IdempotencyKey.objects.count(),
        "shares_outstanding": list(Outcome.objects.order_by("pk").values_list("shares_outstanding", "probability")),
    }


@pytest.fixture
def market(make_market):
    return make_market("rutte-nato")


@pytest.fixture
def trader(make_user, market):
    """A trader holding 10 YES shares, so sells have something to refuse against."""
    user = make_user()
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    return user


# Numbers that are numbers: text that is not one ("abc", "12,5", full-width digits) never becomes a TradeRequest; the
# serializer and the form refuse it (tests/markets/test_ascii_numbers.py).
BAD_TRADES: list[tuple[str, dict[str, object]]] = [
    # (field named in the error, the request)
    ("shares", {"shares": "-1"}),
    ("shares", {"shares": "0"}),
    ("shares", {"shares": "NaN"}),
    ("shares", {"shares": "sNaN"}),
    ("shares", {"shares": float("nan")}),
    ("shares", {"shares": "inf"}),
    ("shares", {"shares": float("-inf")}),
    ("shares", {"shares": "1e30"}),
    ("shares", {"shares": "1000000001"}),
    ("shares", {"shares": "0.0000001"}),  # rounds down to no share at all
    ("amount", {"amount": "-5"}),
    ("amount", {"amount": "0"}),
    ("amount", {"amount": "NaN"}),
    ("amount", {"amount": "Infinity"}),
    ("amount", {"amount": "1e999"}),
    ("amount", {"amount": "0.0000001"}),
    ("probability", {"probability": "0"}),
    ("probability", {"probability": "1"}),
    ("probability", {"probability": "-0.2"}),
    ("probability", {"probability": "1.5"}),
    ("probability", {"probability": "nan"}),
    ("probability", {"probability": "inf"}),
    ("probability", {"probability": "0.00001"}),  # inside (0, 1) but beyond the 0.01% floor
    ("probability", {"probability": "0.3"}),  # buying cannot lower YES from 52% to 30%
    # Exactly one quantity: none, two or three at once are refused before anything is priced.
    ("shares", {}),
    ("shares", {"shares": "1", "amount": "1"}),
    ("shares", {"amount": "1", "probability": "0.6"}),
    ("shares", {"shares": "1", "amount": "1", "probability": "0.6"}),
    ("shares", {"shares": None, "amount": ""}),
    # Bounds.
    ("max_cost", {"shares": "1", "max_cost": "-1"}),
    ("max_cost", {"shares": "1", "max_cost": "0"}),
    ("max_cost", {"shares": "1", "max_cost": "NaN"}),
    ("max_cost", {"shares": "1", "max_cost": "inf"}),
    ("max_cost", {"shares": "1", "max_cost": "1e40"}),
    ("min_proceeds", {"shares": "1", "min_proceeds": "-1"}),
    ("min_proceeds", {"shares": "1", "min_proceeds": "NaN"}),
]


@pytest.mark.parametrize(("field", "request_"), BAD_TRADES)
def test_a_bad_buy_is_refused_naming_the_field_and_writes_nothing(market, trader, field, request_):
    before = rows()
    with pytest.raises(InvalidInput) as error:
        trade_execute(user=trader, market=market, request=trade_request("YES", "buy", **request_))
    assert error.value.field == field, error.value.message
    assert error.value.message
    assert rows() == before


@pytest.mark.parametrize(
    ("field", "request_"),
    [
        ("shares", {"shares": "-3"}),
        ("shares", {"shares": "NaN"}),
        ("amount", {"amount": "-1"}),
        ("amount", {"amount": "100"}),  # 10 shares, or a billion, never pay 100 at b=100 and 52%
        ("probability", {"probability": "0.9"}),  # selling cannot raise YES
        ("probability", {"probability": "0"}),
    ],
)
def test_a_bad_sell_is_refused_naming_the_field_and_writes_nothing(market, trader, field, request_):
    before = rows()
    with pytest.raises(InvalidInput) as error:
        trade_execute(user=trader, market=market, request=trade_request("YES", "sell", **request_))
    assert error.value.field == field, error.value.message
    assert rows() == before


@pytest.mark.parametrize("side", ["hold", "BUY", "", None, "short"])
def test_a_wrong_side_is_refused(market, trader, side):
    before = rows()
    with pytest.raises(InvalidInput) as error:
        trade_execute(user=trader, market=market, request=trade_request("YES", side, shares="1"))
    assert error.value.field == "side"
    assert rows() == before


@pytest.mark.parametrize("code", ["MAYBE", "yes", "", "RUTTE", "YES "])
def test_an_unknown_outcome_is_refused(market, trader, code):
    before = rows()
    with pytest.raises(InvalidInput) as error:
        trade_execute(user=trader, market=market, request=trade_request(code, "buy", shares="1"))
    assert error.value.field == "outcome"
    assert rows() == before


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_a_bad_idempotency_key_is_refused(market, trader, key):
    before = rows()
    with pytest.raises(InvalidInput) as error:
        trade_execute(user=trader, market=market, request=trade_request("YES", "buy", shares="1", idempotency_key=key))
    assert error.value.field == "Idempotency-Key"
    assert rows() == before


def test_a_good_trade_after_refusals_still_works(market, trader):
    """The refusals leave the market usable: nothing half-written blocks the next trade."""
    for bad in ["-1", "0", "NaN", "inf", "1e30"]:
        with pytest.raises(InvalidInput):
            trade_execute(user=trader, market=market, request=trade_request("YES", "buy", shares=bad))
    result = trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="5"))
    assert result.trade.amount <= Decimal("5")


def valid_market(**overrides: object) -> dict[str, object]:
    arguments: dict[str, object] = {
        "slug": "next-nato-secretary-general",
        "question": "Who will be the next NATO Secretary-General?",
        "kind": Market.Kind.MULTIPLE,
        "outcomes": NATO,
        "initial_probabilities": [0.45, 0.2, 0.1, 0.1, 0.15],
        "liquidity": "200",
        "closes_at": timezone.now() + timedelta(days=30),
    }
    arguments.update(overrides)
    return arguments


def test_the_valid_market_is_accepted():
    market = market_create(**valid_market())  # type: ignore[arg-type]
    assert market.outcomes.count() == 5


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("slug", {"slug": "Next NATO"}),
        ("slug", {"slug": "next--nato"}),
        ("slug", {"slug": "-next"}),
        ("slug", {"slug": "next-"}),
        ("slug", {"slug": ""}),
        ("slug", {"slug": "ü-nato"}),
        ("slug", {"slug": "a" * 121}),
        ("slug", {"slug": "rutte-nato"}),  # taken by the fixture's market
        ("question", {"question": "   "}),
        ("question", {"question": "?" * 301}),
        ("kind", {"kind": "ternary"}),
        ("outcomes", {"outcomes": [("RUTTE", "Mark Rutte")], "initial_probabilities": [1]}),
        ("outcomes", {"outcomes": [], "initial_probabilities": []}),
        ("outcomes", {"outcomes": [*NATO[:4], ("RUTTE", "Rutte again")]}),
        ("outcomes", {"outcomes": [*NATO[:4], ("other", "Other")]}),
        ("outcomes", {"outcomes": [*NATO[:4], ("OTHER GUY", "Other")]}),
        ("outcomes", {"outcomes": [*NATO[:4], ("X" * 33, "Other")]}),
        ("outcomes", {"outcomes": [*NATO[:4], ("OTHER", "   ")]}),
        ("outcomes", {"outcomes": [*NATO[:4], ("OTHER", "x" * 121)]}),
        ("outcomes", {"outcomes": [(f"O{i}", f"Option {i}") for i in range(51)], "initial_probabilities": None}),
        ("outcomes", {"kind": Market.Kind.BINARY, "outcomes": [("NO", "No"), ("YES", "Yes")]}),
        ("outcomes", {"kind": Market.Kind.BINARY, "outcomes": NATO}),
        ("initial_probabilities", {"initial_probabilities": [0.5, 0.2, 0.1, 0.1, 0.15]}),  # sums to 1.05
        ("initial_probabilities", {"initial_probabilities": [0.4, 0.2, 0.1, 0.1, 0.15]}),  # sums to 0.95
        ("initial_probabilities", {"initial_probabilities": [0.5, 0.5]}),  # one per outcome
        ("initial_probabilities", {"initial_probabilities": [1.2, -0.2, 0, 0, 0]}),
        ("initial_probabilities", {"initial_probabilities": [0.9995, 0.0005 / 4, 0.0005 / 4, 0.0005 / 4, 0.0005 / 4]}),
        ("initial_probabilities", {"initial_probabilities": ["nan", 0.25, 0.25, 0.25, 0.25]}),
        ("initial_probabilities", {"initial_probabilities": ["inf", 0.25, 0.25, 0.25, 0.25]}),
        ("initial_probabilities", {"initial_probabilities": ["half", 0.25, 0.25, 0.25, 0.25]}),
        ("liquidity", {"liquidity": "0"}),
        ("liquidity", {"liquidity": "-100"}),
        ("liquidity", {"liquidity": "0.00001"}),  # rounds to zero on the 0.0001 grid
        ("liquidity", {"liquidity": "NaN"}),
        ("liquidity", {"liquidity": "inf"}),
        ("liquidity", {"liquidity": "1e12"}),
        ("liquidity", {"liquidity": "lots"}),
        ("liquidity", {"liquidity": None}),
        ("closes_at", {"closes_at": timezone.now() - timedelta(minutes=1)}),
    ],
)
def test_a_bad_market_is_refused_naming_the_field_and_writes_nothing(market, field, overrides):
    before = rows()
    with pytest.raises(InvalidInput) as error:
        market_create(**valid_market(**overrides))  # type: ignore[arg-type]
    assert error.value.field == field, error.value.message
    assert rows() == before
