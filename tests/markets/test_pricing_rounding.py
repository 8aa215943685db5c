"""Buying by amount: the shares are found with one rounding, never cost more than the amount, and are the most it
could buy (markets.pricing._shares_within)."""

from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from accounts.money import CREDIT_QUANTUM, shares_down
from markets import lmsr
from markets.pricing import _pay, _shares_within
from tests.hypothesis_profiles import examples

SETTINGS = settings(max_examples=examples(300), deadline=None, database=None)


def _largest_affordable(state: list[float], b: float, index: int, money: Decimal) -> Decimal:
    """The most shares whose rounded cost fits `money`, by search from the float inverse (the old loop)."""
    quantity = shares_down(lmsr.shares_for_amount(state, b, index, float(money)))
    while _pay(lmsr.trade_cost(state, b, index, float(quantity + CREDIT_QUANTUM))) <= money:
        quantity += CREDIT_QUANTUM
    while quantity > 0 and _pay(lmsr.trade_cost(state, b, index, float(quantity))) > money:
        quantity -= CREDIT_QUANTUM
    return quantity


@SETTINGS
@given(
    b=st.floats(min_value=1, max_value=100_000),
    q=st.lists(st.floats(min_value=-5_000, max_value=5_000), min_size=2, max_size=6),
    pick=st.integers(min_value=0, max_value=5),
    cents=st.integers(min_value=1, max_value=10**9),
)
@example(b=100.0, q=[0.0, 0.0], pick=0, cents=1_000)  # the reference trade: 10 credits buy 19.090282 YES
def test_the_shares_an_amount_buys_never_cost_more_than_it(b, q, pick, cents):
    index = pick % len(q)
    money = Decimal(cents) / 100
    quantity = _shares_within(q, b, index, money)
    if quantity > 0:
        assert _pay(lmsr.trade_cost(q, b, index, float(quantity))) <= money
    assert quantity == _largest_affordable(q, b, index, money)


def test_the_reference_amount_buys_the_reference_shares():
    assert _shares_within([0.0, 0.0], 100.0, 0, Decimal("10")) == Decimal("19.090282")
