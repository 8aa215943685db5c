"""Prices a trade request (markets.trade_request) with the LMSR (markets.lmsr): exact credits and shares.

Reads only: no locks, no writes. The trade service calls it under the market lock; quotes and
previews call it on unlocked rows or a cached snapshot. The request arrives parsed and checked; what is
checked here depends on the market: the outcome, which way a target moves, and the size once rounded.
Rounding is the house's: shares a buyer gets round down, shares a seller gives round up, what is paid
rounds up and what is received rounds down.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from accounts.money import (
    CREDIT_QUANTUM,
    ZERO,
    average_price,
    credits_to_pay,
    credits_to_receive,
    shares_down,
    shares_up,
)
from markets import lmsr
from markets.errors import InvalidInput
from markets.models import Outcome, Trade
from markets.trade_request import MAX_SHARES, TradeRequest

# Float pricing carries ~1e-16 relative error; this margin keeps rounding in the house's favour.
FLOAT_MARGIN = 1e-12


@dataclass(frozen=True)
class TradeQuote:
    # What is traded: for a forecast, the outcome and side pricing chose (see price_trade).
    outcome_code: str
    side: str
    shares: Decimal
    # Credits paid (buy) or received (sell), always positive.
    amount: Decimal
    probabilities_before: list[float]
    probabilities_after: list[float]

    @property
    def average_price(self) -> Decimal:
        return average_price(self.amount, self.shares)


def lmsr_state(liquidity: float, outcomes: Sequence[Outcome]) -> list[float]:
    """The maker's q vector: the opening offsets b*ln(p0) plus the shares traders hold."""
    opening = lmsr.initial_state(liquidity, [outcome.initial_probability for outcome in outcomes])
    return [offset + float(outcome.shares_outstanding) for offset, outcome in zip(opening, outcomes, strict=True)]


def _pay(cost: float) -> Decimal:
    return credits_to_pay(cost + abs(cost) * FLOAT_MARGIN)


def _receive(proceeds: float) -> Decimal:
    return credits_to_receive(max(proceeds - abs(proceeds) * FLOAT_MARGIN, 0.0))


def _shares_within(state: list[float], b: float, index: int, money: Decimal) -> Decimal:
    """The most shares `money` buys once their cost is rounded up by `_pay`, in one rounding.

    `money` is on the quantum, so `_pay(cost) <= money` exactly when `cost * (1 + FLOAT_MARGIN) <= money`: the
    float inverse of that bound, rounded down, is the answer. The inverse is exact to about 1e-15 of the shares,
    under one quantum up to MAX_SHARES, so the only correction ever needed is a single quantum.
    """
    quantity = shares_down(lmsr.shares_for_amount(state, b, index, float(money) / (1.0 + FLOAT_MARGIN)))
    if quantity > ZERO and _pay(lmsr.trade_cost(state, b, index, float(quantity))) > money:
        quantity -= CREDIT_QUANTUM
    return quantity


def _forecast(before: list[float], index: int, target: float) -> tuple[int, str, float]:
    """(outcome index, side, target) of the trade that moves outcome `index` to the forecast `target`.

    Above the price it buys the outcome. Below it, on a two-outcome market, it buys the other outcome up
    to 1 - target, which moves this one down to target: a forecaster need not hold shares to disagree.
    On a larger market it sells the outcome (which needs shares to sell).
    """
    if before[index] < target:
        return index, Trade.Side.BUY, target
    if len(before) == 2:
        return 1 - index, Trade.Side.BUY, 1 - target
    return index, Trade.Side.SELL, target


def price_trade(*, request: TradeRequest, liquidity: Decimal, outcomes: Sequence[Outcome]) -> TradeQuote:
    """Prices the request against the maker's state given by `liquidity` and the outcomes' rows."""
    index = next((i for i, outcome in enumerate(outcomes) if outcome.code == request.outcome), None)
    if index is None:
        raise InvalidInput(f"Unknown outcome {request.outcome!r}.", field="outcome")

    b = float(liquidity)
    state = lmsr_state(b, outcomes)
    before = lmsr.prices(state, b)
    field = request.quantity_field

    if request.shares is not None:
        assert request.side is not None  # TradeRequest: a forecast is a probability
        side = request.side
        buying = side == Trade.Side.BUY
        quantity = shares_down(request.shares)
    elif request.amount is not None:
        assert request.side is not None
        side = request.side
        buying = side == Trade.Side.BUY
        money = request.amount
        if buying:
            quantity = _shares_within(state, b, index, money)
        else:
            if float(money) >= lmsr.max_sale_proceeds(state, b, index):
                raise InvalidInput("No number of shares sold can pay that much.", field="amount")
            quantity = shares_up(-lmsr.shares_for_amount(state, b, index, -float(money)))
    else:
        assert request.probability is not None
        target = float(request.probability)
        if request.side is None:
            index, side, target = _forecast(before, index, target)
        else:
            side = request.side
        buying = side == Trade.Side.BUY
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
        raise InvalidInput("That trade is too small.", field=field)
    if quantity > MAX_SHARES:
        raise InvalidInput(f"A trade can move at most {MAX_SHARES:,} shares.", field=field)

    signed = float(quantity) if buying else -float(quantity)
    cost = lmsr.trade_cost(state, b, index, signed)
    credits = _pay(cost) if buying else _receive(-cost)
    if credits <= ZERO:
        raise InvalidInput("That trade is too small to move any credits.", field=field)
    after_state = list(state)
    after_state[index] += signed
    return TradeQuote(
        outcome_code=outcomes[index].code,
        side=side,
        shares=quantity,
        amount=credits,
        probabilities_before=before,
        probabilities_after=lmsr.prices(after_state, b),
    )


def limit_fill_shares(
    *, state: list[float], b: float, index: int, side: str, limit: float, budget: Decimal | None
) -> Decimal:
    """Shares a limit order trades against the maker at `state`: as many as take outcome `index`'s price to its
    `limit` and no further (rounded toward the limit's safe side), within its `budget` (credits a buy may spend,
    once its cost is rounded up; shares a sell may sell; None: no budget). Zero when the price is not past the
    limit by a share's quantum."""
    target = lmsr.shares_for_probability(state, b, index, limit)
    quantity = shares_down(target) if side == Trade.Side.BUY else shares_down(-target)
    if quantity > ZERO and budget is not None:
        quantity = min(quantity, _shares_within(state, b, index, budget) if side == Trade.Side.BUY else budget)
    # Rounding down keeps the price on the order's side of its limit; a float error of one ulp could not.
    while quantity > ZERO and _past_limit(state, b, index, side, limit, quantity):
        quantity -= CREDIT_QUANTUM
    return max(quantity, ZERO)


def _past_limit(state: list[float], b: float, index: int, side: str, limit: float, quantity: Decimal) -> bool:
    moved = list(state)
    moved[index] += float(quantity) if side == Trade.Side.BUY else -float(quantity)
    price = lmsr.prices(moved, b)[index]
    return price > limit if side == Trade.Side.BUY else price < limit


def price_limit_fill(
    *, state: list[float], b: float, outcomes: Sequence[Outcome], index: int, side: str, limit: float, budget: Decimal
) -> TradeQuote | None:
    """The trade a limit order makes at `state` (limit_fill_shares, priced with the house's rounding), or None when
    it trades nothing: the price is not past its limit, or what is left of its budget moves no credits."""
    quantity = limit_fill_shares(state=state, b=b, index=index, side=side, limit=limit, budget=budget)
    if quantity <= ZERO:
        return None
    buying = side == Trade.Side.BUY
    signed = float(quantity) if buying else -float(quantity)
    cost = lmsr.trade_cost(state, b, index, signed)
    amount = _pay(cost) if buying else _receive(-cost)
    if amount <= ZERO or (buying and amount > budget):
        return None
    after_state = list(state)
    after_state[index] += signed
    return TradeQuote(
        outcome_code=outcomes[index].code,
        side=side,
        shares=quantity,
        amount=amount,
        probabilities_before=lmsr.prices(state, b),
        probabilities_after=lmsr.prices(after_state, b),
    )
