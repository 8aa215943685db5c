"""Hanson's logarithmic market scoring rule (LMSR), pure math.

The market maker holds a share vector q (one entry per outcome) and liquidity b > 0.
The cost function is C(q) = b * ln(sum_i exp(q_i / b)); a trade q -> q' costs C(q') - C(q),
prices are the softmax p_i = exp(q_i / b) / sum_j exp(q_j / b), and the maker's worst-case
loss is b * ln(1 / min p0) for opening probabilities p0.
"""

import math
from collections.abc import Sequence

__all__ = [
    "cost",
    "initial_state",
    "max_sale_proceeds",
    "prices",
    "shares_for_amount",
    "shares_for_probability",
    "trade_cost",
    "worst_case_loss",
]

_LN2 = math.log(2.0)
_PROBABILITY_SUM_TOLERANCE = 1e-9

# Notation: x = q / b. A trade on outcome i only ever depends on z, the log-odds of i
# against all the other outcomes together, because the others keep their ratios. With
# log p_i = -softplus(-z) and log(1 - p_i) = -softplus(z), every formula below is evaluated
# in the log domain so that exp() is only ever applied to non-positive numbers.


def _softplus(u: float) -> float:
    """ln(1 + e^u) without overflow."""
    return u + math.log1p(math.exp(-u)) if u > 0 else math.log1p(math.exp(u))


def _log1mexp(a: float) -> float:
    """ln(1 - e^a) for a < 0; the branch point -ln 2 keeps both halves accurate (Maechler)."""
    return math.log(-math.expm1(a)) if a > -_LN2 else math.log1p(-math.exp(a))


def _logaddexp(a: float, c: float) -> float:
    high, low = (a, c) if a >= c else (c, a)
    return high + math.log1p(math.exp(low - high))


def _logsumexp(x: Sequence[float]) -> float:
    # log1p of the non-maximal terms keeps precision when one outcome dominates.
    top = max(range(len(x)), key=x.__getitem__)
    rest = math.fsum(math.exp(v - x[top]) for j, v in enumerate(x) if j != top)
    return x[top] + math.log1p(rest)


def _check_b(b: float) -> None:
    if not math.isfinite(b) or b <= 0:
        raise ValueError(f"liquidity b must be a finite number > 0, got {b!r}")


def _finite_ratio(name: str, value: float, b: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    ratio = value / b
    if not math.isfinite(ratio):
        raise ValueError(f"{name}/b overflows ({value!r}/{b!r})")
    return ratio


def _scaled(q: Sequence[float], b: float) -> list[float]:
    _check_b(b)
    if len(q) < 2:
        raise ValueError(f"a market needs at least 2 outcomes, got {len(q)}")
    return [_finite_ratio(f"q[{j}]", v, b) for j, v in enumerate(q)]


def _log_odds(q: Sequence[float], b: float, outcome: int) -> float:
    x = _scaled(q, b)
    if isinstance(outcome, bool) or not isinstance(outcome, int) or not 0 <= outcome < len(x):
        raise ValueError(f"outcome must be an integer in [0, {len(x)}), got {outcome!r}")
    return x[outcome] - _logsumexp(x[:outcome] + x[outcome + 1 :])


def _check_probabilities(probabilities: Sequence[float]) -> None:
    if len(probabilities) < 2:
        raise ValueError(f"a market needs at least 2 outcomes, got {len(probabilities)}")
    for p in probabilities:
        if not (math.isfinite(p) and 0 < p < 1):
            raise ValueError(f"initial probabilities must lie strictly in (0, 1), got {p!r}")
    total = math.fsum(probabilities)
    if abs(total - 1) > _PROBABILITY_SUM_TOLERANCE:
        raise ValueError(f"initial probabilities must sum to 1, got {total!r}")


def initial_state(b: float, probabilities: Sequence[float]) -> list[float]:
    """Share vector that opens the market at `probabilities` with C(q0) = 0."""
    _check_b(b)
    _check_probabilities(probabilities)
    return [b * math.log(p) for p in probabilities]


def cost(q: Sequence[float], b: float) -> float:
    """C(q) = b * ln(sum_i exp(q_i / b))."""
    return b * _logsumexp(_scaled(q, b))


def prices(q: Sequence[float], b: float) -> list[float]:
    """Instantaneous prices (probabilities) of every outcome; they sum to 1."""
    x = _scaled(q, b)
    top = max(x)
    weights = [math.exp(v - top) for v in x]
    total = math.fsum(weights)
    return [w / total for w in weights]


def trade_cost(q: Sequence[float], b: float, outcome: int, shares: float) -> float:
    """C(q + shares * e_outcome) - C(q): > 0 is paid by the trader, < 0 is paid to them."""
    z = _log_odds(q, b, outcome)
    d = _finite_ratio("shares", shares, b)
    # The result is b * ln(1 + p * expm1(d)); see the module comment for the log domain.
    if d == 0:
        return 0.0
    if d > 0:
        return b * _softplus(d + _log1mexp(-d) - _softplus(-z))
    log_a = _log1mexp(d) - _softplus(-z)
    if log_a < -_LN2:
        return b * math.log1p(-math.exp(log_a))
    # 1 - a would cancel; add the two positive parts (1 - p) + p * e^d instead.
    return b * _logaddexp(-_softplus(z), d - _softplus(-z))


def max_sale_proceeds(q: Sequence[float], b: float, outcome: int) -> float:
    """Supremum of what selling `outcome` can pay: b * ln(1 / (1 - p_outcome)), never reached."""
    return b * _softplus(_log_odds(q, b, outcome))


def shares_for_amount(q: Sequence[float], b: float, outcome: int, amount: float) -> float:
    """Shares bought by spending `amount` (> 0), or sold to receive -`amount` (< 0)."""
    z = _log_odds(q, b, outcome)
    m = _finite_ratio("amount", amount, b)
    # Inverse of trade_cost: shares = b * ln(1 + expm1(m) / p).
    if m == 0:
        return 0.0
    if m > 0:
        return b * _softplus(m + _log1mexp(-m) + _softplus(-z))
    limit = b * _softplus(z)
    w = -_softplus(z) - m  # ln((1 - p) / e^m), negative iff the sale is possible
    if -amount >= limit or w >= 0:
        raise ValueError(
            f"cannot receive {-amount!r} by selling outcome {outcome}: selling pays strictly less than {limit!r}"
        )
    log_a = _log1mexp(m) + _softplus(-z)
    if log_a < -_LN2:
        return b * math.log1p(-math.exp(log_a))
    return b * (m + _log1mexp(w) + _softplus(-z))


def shares_for_probability(q: Sequence[float], b: float, outcome: int, probability: float) -> float:
    """Shares of `outcome` to buy (> 0) or sell (< 0) so that its price becomes `probability`."""
    z = _log_odds(q, b, outcome)
    if not (math.isfinite(probability) and 0 < probability < 1):
        raise ValueError(f"target probability must lie strictly in (0, 1), got {probability!r}")
    return b * (math.log(probability) - math.log1p(-probability) - z)


def worst_case_loss(b: float, probabilities: Sequence[float]) -> float:
    """Largest loss of a maker opened at `probabilities`: b * ln(1 / min p0)."""
    _check_b(b)
    _check_probabilities(probabilities)
    return -b * math.log(min(probabilities))
