"""Turns a trade request into exact credits and shares with the LMSR (markets.lmsr).

Reads only: no locks, no writes. The trade service calls it under the market lock; quotes and
previews call it on unlocked rows. Rounding is the house's: shares a buyer gets round down, shares a
seller gives round up, what is paid rounds up and what is received rounds down.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from accounts.money import ZERO, credits_to_pay, credits_to_receive, shares_down, shares_up
from markets import lmsr
from markets.errors import InvalidInput
from markets.models import Outcome, Trade

# Bounds that keep every number inside NUMERIC(20, 6) and every float exact to the quantum.
MAX_SHARES = Decimal("1000000000")
MAX_AMOUNT = Decimal("1000000000")
# Float pricing carries ~1e-16 relative error; this margin keeps rounding in the house's favour.
FLOAT_MARGIN = 1e-12


@dataclass(frozen=True)
class TradeQuote:
    outcome_code: str
    side: str
    shares: Decimal
    # Credits paid (buy) or received (sell), always positive.
    amount: Decimal
    probabilities_before: list[float]
    probabilities_after: list[float]

    @property
    def average_price(self) -> Decimal:
        return (self.amount / self.shares).quantize(Decimal("0.000001")) if self.shares else ZERO


def parse_positive_decimal(value: object, *, field: str, maximum: Decimal) -> Decimal:
    """A finite, positive number no larger than `maximum`, or InvalidInput naming the field."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput("Enter a number.", field=field)
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput("Enter a number.", field=field) from None
    if not number.is_finite():
        raise InvalidInput("Enter a finite number.", field=field)
    if number <= ZERO:
        raise InvalidInput("Enter a number greater than zero.", field=field)
    if number > maximum:
        raise InvalidInput(f"Enter a number no larger than {maximum:,}.", field=field)
    return number


def parse_probability(value: object, *, field: str = "probability") -> float:
    if isinstance(value, bool) or value is None:
        raise InvalidInput("Enter a probability between 0 and 1.", field=field)
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InvalidInput("Enter a probability between 0 and 1.", field=field) from None
    if not math.isfinite(number) or not 0.0 < number < 1.0:
        raise InvalidInput("Enter a probability strictly between 0 and 1.", field=field)
    if not 0.0001 <= number <= 0.9999:
        raise InvalidInput("Enter a probability between 0.01% and 99.99%.", field=field)
    return number


def lmsr_state(liquidity: float, outcomes: Sequence[Outcome]) -> list[float]:
    """The maker's q vector: the opening offsets b*ln(p0) plus the shares traders hold."""
    opening = lmsr.initial_state(liquidity, [outcome.initial_probability for outcome in outcomes])
    return [offset + float(outcome.shares_outstanding) for offset, outcome in zip(opening, outcomes, strict=True)]


def _pay(cost: float) -> Decimal:
    return credits_to_pay(cost + abs(cost) * FLOAT_MARGIN)


def _receive(proceeds: float) -> Decimal:
    return credits_to_receive(max(proceeds - abs(proceeds) * FLOAT_MARGIN, 0.0))


def quote_trade(
    *,
    liquidity: Decimal,
    outcomes: Sequence[Outcome],
    outcome_code: str,
    side: str,
    shares: object = None,
    amount: object = None,
    probability: object = None,
) -> TradeQuote:
    """Prices a buy or sell given by shares, by amount, or by target probability (exactly one)."""
    if side not in (Trade.Side.BUY, Trade.Side.SELL):
        raise InvalidInput("Choose buy or sell.", field="side")
    given = [
        name
        for name, value in (("shares", shares), ("amount", amount), ("probability", probability))
        if value not in (None, "")
    ]
    if len(given) != 1:
        raise InvalidInput("Give exactly one of shares, amount or probability.", field="shares")
    index = next((i for i, outcome in enumerate(outcomes) if outcome.code == outcome_code), None)
    if index is None:
        raise InvalidInput(f"Unknown outcome {outcome_code!r}.", field="outcome")

    b = float(liquidity)
    state = lmsr_state(b, outcomes)
    before = lmsr.prices(state, b)
    buying = side == Trade.Side.BUY

    if given == ["shares"]:
        requested = parse_positive_decimal(shares, field="shares", maximum=MAX_SHARES)
        quantity = shares_down(requested)
    elif given == ["amount"]:
        money = parse_positive_decimal(amount, field="amount", maximum=MAX_AMOUNT)
        if buying:
            quantity = shares_down(lmsr.shares_for_amount(state, b, index, float(money)))
            # Rounding the cost up may pass the amount by a quantum: give up shares until it fits.
            while quantity > ZERO and _pay(lmsr.trade_cost(state, b, index, float(quantity))) > money:
                quantity -= Decimal("0.000001")
        else:
            if float(money) >= lmsr.max_sale_proceeds(state, b, index):
                raise InvalidInput("No number of shares sold can pay that much.", field="amount")
            quantity = shares_up(-lmsr.shares_for_amount(state, b, index, -float(money)))
    else:
        target = parse_probability(probability)
        if buying and target <= before[index]:
            raise InvalidInput(
                "Buying raises the probability: choose a target above the current one, or sell.",
                field="probability",
            )
        if not buying and target >= before[index]:
            raise InvalidInput(
                "Selling lowers the probability: choose a target below the current one, or buy.",
                field="probability",
            )
        moved = lmsr.shares_for_probability(state, b, index, target)
        quantity = shares_down(moved) if buying else shares_up(-moved)

    if quantity <= ZERO:
        raise InvalidInput("That trade is too small.", field=given[0])
    if quantity > MAX_SHARES:
        raise InvalidInput(f"A trade can move at most {MAX_SHARES:,} shares.", field=given[0])

    signed = float(quantity) if buying else -float(quantity)
    cost = lmsr.trade_cost(state, b, index, signed)
    credits = _pay(cost) if buying else _receive(-cost)
    if credits <= ZERO:
        raise InvalidInput("That trade is too small to move any credits.", field=given[0])
    after_state = list(state)
    after_state[index] += signed
    return TradeQuote(
        outcome_code=outcome_code,
        side=side,
        shares=quantity,
        amount=credits,
        probabilities_before=before,
        probabilities_after=lmsr.prices(after_state, b),
    )
