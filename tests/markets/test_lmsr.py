"""Tests for markets.lmsr: reference values, a 50-digit mpmath oracle, LMSR invariants, errors.

Pure math: no database and no Django (run with ``-p no:django``).

Tolerance: 1e-9 relative, or 1e-9 absolute in units of the liquidity b when the value is near 0
(money and shares scale with b; prices are dimensionless, so for them it is plain 1e-9).
"""

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf

from markets import lmsr
from tests.hypothesis_profiles import examples

DPS = 50
TOLERANCE = 1e-9
SETTINGS = settings(max_examples=examples(200), deadline=None, database=None)

Market = tuple[list[float], float, int]


def floats(low: float, high: float) -> st.SearchStrategy[float]:
    # Subnormal q, shares or amounts would lose bits in q / b before any LMSR math happens.
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


LIQUIDITY = floats(1e-2, 1e6)
# Everyday values plus the extremes the module promises to handle (|q/b|, |shares/b| <= 1e4).
SCALED = st.one_of(floats(-30, 30), floats(-1e4, 1e4), st.sampled_from([0.0, -1e4, 1e4]))
# Narrow enough that no price rounds to 0 or 1 (1 - e^-60 would already round to 1.0).
MODERATE = floats(-15, 15)
TRADE = st.one_of(floats(-30, 30), floats(-1e4, 1e4), floats(-1e-6, 1e-6))
PROBABILITY = st.floats(0, 1, exclude_min=True, exclude_max=True, allow_subnormal=False)


@st.composite
def markets(draw: st.DrawFn, scaled: st.SearchStrategy[float] = SCALED) -> Market:
    b = draw(LIQUIDITY)
    q = [x * b for x in draw(st.lists(scaled, min_size=2, max_size=5))]
    return q, b, draw(st.integers(0, len(q) - 1))


@st.composite
def opening_probabilities(draw: st.DrawFn) -> list[float]:
    weights = draw(st.lists(floats(1e-6, 1), min_size=2, max_size=5))
    total = math.fsum(weights)
    return [w / total for w in weights]


def assert_close(got: float, want: Any, scale: float = 1.0) -> None:
    want = float(want)
    assert math.isclose(got, want, rel_tol=TOLERANCE, abs_tol=TOLERANCE * scale), (got, want)


def bought(q: Sequence[float], outcome: int, shares: float) -> list[float]:
    after = list(q)
    after[outcome] += shares
    return after


# --- mpmath oracle: textbook formulas at 50 digits, rearranged only where they would cancel ---


P = ParamSpec("P")
R = TypeVar("R")


def high_precision(function: Callable[P, R]) -> Callable[P, R]:
    """Evaluate `function` at DPS digits (mpmath's own workdps decorator is untyped)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with mp.workdps(DPS):
            return function(*args, **kwargs)

    return wrapper


def _state(q: Sequence[float], b: float, outcome: int) -> tuple[list[Any], Any, Any]:
    x = [mpf(v) / mpf(b) for v in q]
    weights = [mp.exp(v) for v in x]
    rest = mp.fsum(weights[:outcome] + weights[outcome + 1 :])
    return x, mp.fsum(weights), rest


@high_precision
def ref_cost(q: Sequence[float], b: float) -> Any:
    _, total, _ = _state(q, b, 0)
    return mpf(b) * mp.log(total)


@high_precision
def ref_prices(q: Sequence[float], b: float) -> list[Any]:
    x, total, _ = _state(q, b, 0)
    return [mp.exp(v) / total for v in x]


@high_precision
def ref_trade_cost(q: Sequence[float], b: float, outcome: int, shares: float) -> Any:
    x, total, rest = _state(q, b, outcome)
    d = mpf(shares) / mpf(b)
    a = mp.exp(x[outcome]) / total * mp.expm1(d)
    # Even 50 digits cannot absorb 1 + a when a ~ -1 and the terms are e^-10000 apart.
    if abs(a) < 0.5:
        return mpf(b) * mp.log1p(a)
    return mpf(b) * (mp.log(rest + mp.exp(x[outcome] + d)) - mp.log(total))


@high_precision
def ref_shares_for_amount(q: Sequence[float], b: float, outcome: int, amount: float) -> Any:
    x, total, rest = _state(q, b, outcome)
    m = mpf(amount) / mpf(b)
    a = mp.expm1(m) * total / mp.exp(x[outcome])
    if abs(a) < 0.5:
        return mpf(b) * mp.log1p(a)
    # S * e^m - (S - e_i), regrouped so that only the cancellation inherent to a sale remains.
    return mpf(b) * (mp.log(mp.exp(x[outcome] + m) + rest * mp.expm1(m)) - x[outcome])


@high_precision
def ref_shares_for_probability(q: Sequence[float], b: float, outcome: int, probability: float) -> Any:
    x, _, rest = _state(q, b, outcome)
    t = mpf(probability)
    return mpf(b) * (mp.log(t) - mp.log1p(-t) + mp.log(rest) - x[outcome])


@high_precision
def ref_max_sale_proceeds(q: Sequence[float], b: float, outcome: int) -> Any:
    x, total, rest = _state(q, b, outcome)
    p = mp.exp(x[outcome]) / total
    return mpf(b) * (mp.log(total) - mp.log(rest) if p > 0.5 else -mp.log1p(-p))


# --- reference values -------------------------------------------------------------------------


def test_reference_prices_three_outcomes() -> None:
    got = lmsr.prices([10, 20, 23], 10)
    assert got == pytest.approx([0.135362, 0.367953, 0.496685], abs=1e-6)


def test_reference_binary_buy_ten_yes() -> None:
    assert lmsr.trade_cost([0, 0], 100, 0, 10) == pytest.approx(5.124948, abs=1e-6)
    assert lmsr.prices([10, 0], 100)[0] == pytest.approx(0.524979, abs=1e-6)


def test_reference_binary_spend_ten() -> None:
    assert lmsr.shares_for_amount([0, 0], 100, 0, 10) == pytest.approx(19.090283, abs=1e-6)


def test_reference_values_match_mpmath() -> None:
    with mp.workdps(DPS):
        yes = mp.exp(mpf(10) / 100)
        assert_close(lmsr.trade_cost([0, 0], 100, 0, 10), 100 * mp.log((yes + 1) / 2))
        assert_close(lmsr.prices([10, 0], 100)[0], yes / (yes + 1))
        assert_close(lmsr.shares_for_amount([0, 0], 100, 0, 10), 100 * mp.log(2 * yes - 1))


# --- agreement with the mpmath oracle ---------------------------------------------------------

EXTREME_TRADES = [
    ([1e4, -1e4], 1.0, 0, -1e4),
    ([1e4, -1e4], 1.0, 1, 1e4),
    ([1e4, -1e4], 1.0, 1, -1e4),
    ([0.0, 0.0], 1.0, 0, 1e-300),
    ([1e6, 0.0, -1e6], 100.0, 2, 1e6),
    ([1e4, 1e4, 1e4], 1.0, 1, -1e4),
    ([-1e4, 1e4, 1e4 - 1e-9], 1.0, 0, 2e4),
]


@SETTINGS
@given(markets())
def test_cost_matches_mpmath(market: Market) -> None:
    q, b, _ = market
    assert_close(lmsr.cost(q, b), ref_cost(q, b), b)


@SETTINGS
@given(markets())
def test_prices_match_mpmath(market: Market) -> None:
    q, b, _ = market
    for got, want in zip(lmsr.prices(q, b), ref_prices(q, b), strict=True):
        assert_close(got, want)


@pytest.mark.parametrize(("q", "b", "outcome", "shares"), EXTREME_TRADES)
def test_trade_cost_matches_mpmath_at_extremes(q: list[float], b: float, outcome: int, shares: float) -> None:
    assert_close(lmsr.trade_cost(q, b, outcome, shares), ref_trade_cost(q, b, outcome, shares), b)


@SETTINGS
@given(markets(), TRADE)
def test_trade_cost_matches_mpmath(market: Market, scaled_shares: float) -> None:
    q, b, i = market
    shares = scaled_shares * b
    assert_close(lmsr.trade_cost(q, b, i, shares), ref_trade_cost(q, b, i, shares), b)


@SETTINGS
@given(markets(), st.one_of(floats(0, 30), floats(0, 1e4), floats(0, 1e-6)))
@example(([1e4, -1e4], 1.0, 1), 1e4)
@example(([-1e4, 1e4, 0.0], 3.0, 0), 1e-12)
def test_buying_with_an_amount_matches_mpmath(market: Market, scaled_amount: float) -> None:
    q, b, i = market
    amount = scaled_amount * b
    assert_close(lmsr.shares_for_amount(q, b, i, amount), ref_shares_for_amount(q, b, i, amount), b)


@SETTINGS
@given(markets(), st.one_of(floats(1e-12, 0.999), floats(0.9, 0.999)))
@example(([1e4, -1e4], 1.0, 0), 0.999)
@example(([1e4, 1e4 - 1.0], 1.0, 1), 0.5)
def test_selling_for_an_amount_matches_mpmath(market: Market, fraction: float) -> None:
    q, b, i = market
    amount = -fraction * float(ref_max_sale_proceeds(q, b, i))
    assume(abs(amount / b) >= 1e-300)  # outcome so unlikely that its sale value underflows
    assert_close(lmsr.shares_for_amount(q, b, i, amount), ref_shares_for_amount(q, b, i, amount), b)


@SETTINGS
@given(markets(), PROBABILITY)
@example(([1e4, -1e4], 1.0, 1), 1 - 2**-53)
@example(([1e4, -1e4], 1.0, 0), 1e-300)
def test_shares_for_probability_matches_mpmath(market: Market, probability: float) -> None:
    q, b, i = market
    assert_close(
        lmsr.shares_for_probability(q, b, i, probability),
        ref_shares_for_probability(q, b, i, probability),
        b,
    )


@SETTINGS
@given(markets())
def test_max_sale_proceeds_matches_mpmath(market: Market) -> None:
    q, b, i = market
    assert_close(lmsr.max_sale_proceeds(q, b, i), ref_max_sale_proceeds(q, b, i), b)


# --- LMSR invariants ---------------------------------------------------------------------------


@SETTINGS
@given(markets(MODERATE))
def test_prices_are_a_distribution(market: Market) -> None:
    q, b, _ = market
    p = lmsr.prices(q, b)
    assert all(0 < v < 1 for v in p)
    assert math.fsum(p) == pytest.approx(1, abs=1e-12)


@SETTINGS
@given(markets())
def test_prices_stay_a_distribution_at_extremes(market: Market) -> None:
    q, b, _ = market
    p = lmsr.prices(q, b)
    assert all(0 <= v <= 1 for v in p)
    assert math.fsum(p) == pytest.approx(1, abs=1e-12)


@SETTINGS
@given(markets(), TRADE, TRADE)
def test_trades_are_path_independent(market: Market, first: float, second: float) -> None:
    q, b, i = market
    d1, d2 = first * b, second * b
    step1 = lmsr.trade_cost(q, b, i, d1)
    step2 = lmsr.trade_cost(bought(q, i, d1), b, i, d2)
    at_once = lmsr.trade_cost(q, b, i, d1 + d2)
    assert math.isclose(step1 + step2, at_once, abs_tol=TOLERANCE * max(abs(step1), abs(step2), b))


@SETTINGS
@given(LIQUIDITY, st.data())
def test_one_share_of_every_outcome_costs_exactly_one(b: float, data: st.DataObject) -> None:
    # Integer holdings keep q + 1 exact, so only the LMSR arithmetic is under test.
    bound = int(1e4 * b)
    q = data.draw(st.lists(st.integers(-bound, bound).map(float), min_size=2, max_size=5))
    total = 0.0
    for outcome in range(len(q)):
        total += lmsr.trade_cost(q, b, outcome, 1.0)
        q = bought(q, outcome, 1.0)
    assert total == pytest.approx(1, abs=TOLERANCE)


@SETTINGS
@given(
    LIQUIDITY,
    opening_probabilities(),
    st.lists(st.tuples(st.integers(0, 4), floats(-50, 50)), max_size=20),
)
def test_maker_never_loses_more_than_worst_case(b: float, p0: list[float], trades: list[tuple[int, float]]) -> None:
    q0 = lmsr.initial_state(b, p0)
    q, collected = list(q0), 0.0
    for outcome, scaled_shares in trades:
        outcome %= len(q)
        collected += lmsr.trade_cost(q, b, outcome, scaled_shares * b)
        q = bought(q, outcome, scaled_shares * b)
    slack = TOLERANCE * (b + sum(abs(s) * b for _, s in trades))
    for winner in range(len(q)):
        loss = (q[winner] - q0[winner]) - collected
        assert loss <= lmsr.worst_case_loss(b, p0) + slack


def test_worst_case_loss_is_approached_when_the_long_shot_wins() -> None:
    b, p0 = 50.0, [0.7, 0.2, 0.1]
    q0 = lmsr.initial_state(b, p0)
    shares = 1e4 * b
    loss = shares - lmsr.trade_cost(q0, b, 2, shares)
    assert loss == pytest.approx(lmsr.worst_case_loss(b, p0), rel=1e-12)
    assert lmsr.worst_case_loss(b, p0) == pytest.approx(b * math.log(10), rel=1e-15)


@SETTINGS
@given(LIQUIDITY, st.integers(2, 10))
def test_worst_case_loss_at_uniform_is_b_ln_n(b: float, n: int) -> None:
    assert lmsr.worst_case_loss(b, [1 / n] * n) == pytest.approx(b * math.log(n), rel=1e-12)


@SETTINGS
@given(LIQUIDITY, opening_probabilities())
def test_initial_state_opens_at_the_chosen_prices_for_free(b: float, p0: list[float]) -> None:
    q0 = lmsr.initial_state(b, p0)
    assert lmsr.cost(q0, b) == pytest.approx(0, abs=TOLERANCE * b)
    for got, want in zip(lmsr.prices(q0, b), p0, strict=True):
        assert_close(got, want)


@SETTINGS
@given(markets(), TRADE)
def test_selling_undoes_buying(market: Market, scaled_shares: float) -> None:
    q, b, i = market
    shares = scaled_shares * b
    there = lmsr.trade_cost(q, b, i, shares)
    back = lmsr.trade_cost(bought(q, i, shares), b, i, -shares)
    assert math.isclose(back, -there, rel_tol=TOLERANCE, abs_tol=TOLERANCE * b)


@SETTINGS
@given(markets(), st.one_of(floats(0, 30), floats(0, 1e4), floats(0, 1e-6)))
def test_bought_shares_round_trip_through_their_cost(market: Market, scaled_shares: float) -> None:
    # Buys only: for large sales the proceeds saturate and barely depend on the share count.
    q, b, i = market
    shares = scaled_shares * b
    paid = lmsr.trade_cost(q, b, i, shares)
    assume(abs(paid / b) >= 1e-300)  # a long shot's price can underflow to nothing at all
    assert_close(lmsr.shares_for_amount(q, b, i, paid), shares, b)


@SETTINGS
@given(markets(), st.booleans(), st.one_of(floats(0, 30), floats(0, 1e4)), floats(0, 0.999))
def test_amount_round_trips_through_shares(
    market: Market, sell: bool, scaled_amount: float, sale_fraction: float
) -> None:
    q, b, i = market
    if sell:  # sized against what selling could ever pay
        amount = -sale_fraction * lmsr.max_sale_proceeds(q, b, i)
        assume(amount == 0 or abs(amount / b) >= 1e-300)
    else:
        amount = scaled_amount * b
    shares = lmsr.shares_for_amount(q, b, i, amount)
    assert shares == 0 if amount == 0 else (shares > 0) == (amount > 0)
    assert_close(lmsr.trade_cost(q, b, i, shares), amount, b)


@SETTINGS
@given(markets(), PROBABILITY)
def test_probability_round_trips_through_shares(market: Market, probability: float) -> None:
    q, b, i = market
    shares = lmsr.shares_for_probability(q, b, i, probability)
    assert_close(lmsr.prices(bought(q, i, shares), b)[i], probability)


@SETTINGS
@given(markets(MODERATE), floats(1e-6, 1 - 1e-6))
def test_moving_one_price_keeps_the_others_in_proportion(market: Market, probability: float) -> None:
    q, b, i = market
    before = lmsr.prices(q, b)
    after = lmsr.prices(bought(q, i, lmsr.shares_for_probability(q, b, i, probability)), b)
    for j in range(len(q)):
        if j != i:
            assert_close(after[j] * (1 - before[i]), before[j] * (1 - probability))


@SETTINGS
@given(markets(MODERATE))
def test_max_sale_proceeds_is_the_limit_of_selling(market: Market) -> None:
    q, b, i = market
    limit = lmsr.max_sale_proceeds(q, b, i)
    assert_close(-lmsr.trade_cost(q, b, i, -1e3 * b), limit, b)
    assert lmsr.shares_for_amount(q, b, i, -limit * (1 - 1e-6)) < 0
    with pytest.raises(ValueError, match="cannot receive"):
        lmsr.shares_for_amount(q, b, i, -limit)


# --- validation ---------------------------------------------------------------------------------

BINARY = [0.0, 0.0]
HALVES = [0.5, 0.5]

WITH_B: list[Callable[[float], object]] = [
    lambda b: lmsr.initial_state(b, HALVES),
    lambda b: lmsr.cost(BINARY, b),
    lambda b: lmsr.prices(BINARY, b),
    lambda b: lmsr.trade_cost(BINARY, b, 0, 1.0),
    lambda b: lmsr.shares_for_amount(BINARY, b, 0, 1.0),
    lambda b: lmsr.shares_for_probability(BINARY, b, 0, 0.5),
    lambda b: lmsr.worst_case_loss(b, HALVES),
    lambda b: lmsr.max_sale_proceeds(BINARY, b, 0),
]
WITH_Q: list[Callable[[list[float]], object]] = [
    lambda q: lmsr.cost(q, 1.0),
    lambda q: lmsr.prices(q, 1.0),
    lambda q: lmsr.trade_cost(q, 1.0, 0, 1.0),
    lambda q: lmsr.shares_for_amount(q, 1.0, 0, 1.0),
    lambda q: lmsr.shares_for_probability(q, 1.0, 0, 0.5),
    lambda q: lmsr.max_sale_proceeds(q, 1.0, 0),
]
WITH_OUTCOME: list[Callable[[Any], object]] = [
    lambda i: lmsr.trade_cost(BINARY, 1.0, i, 1.0),
    lambda i: lmsr.shares_for_amount(BINARY, 1.0, i, 1.0),
    lambda i: lmsr.shares_for_probability(BINARY, 1.0, i, 0.5),
    lambda i: lmsr.max_sale_proceeds(BINARY, 1.0, i),
]
WITH_OPENING: list[Callable[[list[float]], object]] = [
    lambda p: lmsr.initial_state(1.0, p),
    lambda p: lmsr.worst_case_loss(1.0, p),
]


@pytest.mark.parametrize("call", WITH_B)
@pytest.mark.parametrize("b", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_rejects_bad_liquidity(call: Callable[[float], object], b: float) -> None:
    with pytest.raises(ValueError, match="liquidity b"):
        call(b)


@pytest.mark.parametrize("call", WITH_Q)
@pytest.mark.parametrize("q", [[], [0.0]])
def test_rejects_fewer_than_two_outcomes(call: Callable[[list[float]], object], q: list[float]) -> None:
    with pytest.raises(ValueError, match="at least 2 outcomes"):
        call(q)


@pytest.mark.parametrize("call", WITH_OPENING)
@pytest.mark.parametrize("p0", [[], [0.5]])
def test_rejects_fewer_than_two_opening_probabilities(call: Callable[[list[float]], object], p0: list[float]) -> None:
    with pytest.raises(ValueError, match="at least 2 outcomes"):
        call(p0)


@pytest.mark.parametrize("call", WITH_Q)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rejects_non_finite_shares_vector(call: Callable[[list[float]], object], bad: float) -> None:
    with pytest.raises(ValueError, match=r"q\[1\] must be finite"):
        call([0.0, bad])


def test_rejects_q_over_b_overflow() -> None:
    with pytest.raises(ValueError, match="overflows"):
        lmsr.cost([1e308, 0.0], 1e-10)


@pytest.mark.parametrize("call", WITH_OUTCOME)
@pytest.mark.parametrize("outcome", [-1, 2, 10, 1.0, True, "0"])
def test_rejects_outcome_out_of_range(call: Callable[[Any], object], outcome: Any) -> None:
    with pytest.raises(ValueError, match="outcome must be an integer"):
        call(outcome)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rejects_non_finite_shares(bad: float) -> None:
    with pytest.raises(ValueError, match="shares must be finite"):
        lmsr.trade_cost(BINARY, 1.0, 0, bad)


def test_rejects_shares_over_b_overflow() -> None:
    with pytest.raises(ValueError, match="overflows"):
        lmsr.trade_cost(BINARY, 1e-10, 0, 1e308)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rejects_non_finite_amount(bad: float) -> None:
    with pytest.raises(ValueError, match="amount must be finite"):
        lmsr.shares_for_amount(BINARY, 1.0, 0, bad)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.1, math.nan, math.inf, -math.inf])
def test_rejects_target_probability_outside_open_interval(bad: float) -> None:
    with pytest.raises(ValueError, match="target probability"):
        lmsr.shares_for_probability(BINARY, 1.0, 0, bad)


@pytest.mark.parametrize("call", WITH_OPENING)
@pytest.mark.parametrize("p0", [[0.0, 1.0], [1.0, 0.0], [-0.5, 1.5], [math.nan, 0.5], [0.5, math.inf]])
def test_rejects_opening_probabilities_outside_open_interval(
    call: Callable[[list[float]], object], p0: list[float]
) -> None:
    with pytest.raises(ValueError, match=r"strictly in \(0, 1\)"):
        call(p0)


@pytest.mark.parametrize("call", WITH_OPENING)
@pytest.mark.parametrize("p0", [[0.5, 0.6], [0.3, 0.3, 0.3], [0.5, 0.5 + 2e-9]])
def test_rejects_opening_probabilities_not_summing_to_one(
    call: Callable[[list[float]], object], p0: list[float]
) -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        call(p0)


def test_accepts_opening_probabilities_within_tolerance() -> None:
    assert lmsr.initial_state(1.0, [0.5, 0.5 + 5e-10])[0] == pytest.approx(math.log(0.5))


@pytest.mark.parametrize(
    ("q", "b", "outcome", "amount"),
    [
        (BINARY, 1.0, 0, -math.log(2)),  # exactly the supremum: would need infinitely many shares
        (BINARY, 1.0, 0, -1.0),
        ([0.0, 1e4], 1.0, 0, -1e-300),  # a long shot so extreme that selling pays nothing
        ([1e4, -1e4, 0.0], 2.0, 1, -1e9),
    ],
)
def test_rejects_amount_that_selling_cannot_pay(q: list[float], b: float, outcome: int, amount: float) -> None:
    with pytest.raises(ValueError, match="cannot receive"):
        lmsr.shares_for_amount(q, b, outcome, amount)
