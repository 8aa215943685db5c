"""Scoring math for one resolved market: pure numpy, no Django (tested on its own).

Definitions (the README states the same):

- Open period: from ``T0`` (the market's ``opens_at``) to ``T1`` (its ``closed_at`` or ``closes_at``, whichever is
  earlier); ``D = T1 - T0``.
- A trader's forecast is the probability vector right after their trade (``Trade.probabilities_after``), held from
  the trade until their own next trade or ``T1``. Trade times are clipped to ``[T0, T1]``; several trades of one
  trader at the same instant leave only the last one standing (the others hold for zero time).
- Coverage: the share of ``D`` during which the trader had a forecast.
- Resolution: a payout vector ``r`` (one entry per outcome, summing to 1). One winning outcome ``j`` is the one-hot
  vector ``e_j``; a probability split gives each outcome a fraction. Every score is the *expected* score under ``r``:
  ``score(p, r) = sum_j r_j * score(p, e_j)``, which for a single winner is the ordinary score.
- Probabilities are floored at ``PROBABILITY_FLOOR`` before taking a logarithm, so a price that underflowed to 0
  scores a large finite penalty rather than minus infinity.

Scores of a forecast ``p`` over ``N`` outcomes when outcome ``j`` happens:

- Brier: ``sum_i (p_i - [i == j])^2`` (the multi-category form: 0 is perfect, 2 the worst; for a binary market it is
  twice the one-sided ``(p_yes - o)^2``). Lower is better.
- Log: ``ln p_j`` (natural log; 0 is perfect, higher is better).
- Baseline: ``100 * ln(N * p_j) / ln N``: 0 for the uniform forecast, 100 for certainty on the right outcome.
- Peer: ``100 * (ln p_j - mean over the other forecasters present at that instant of ln q_j)``, i.e. 100 times the
  log of the ratio to the geometric mean of the others' forecasts. It is 0 at an instant when nobody else holds a
  forecast. At every instant the peer scores of the traders present sum to exactly 0.

Time averaging (Metaculus style):

- Baseline and peer are averaged over the whole open period, uncovered time counting as 0:
  ``(1/D) * integral over [T0, T1] of score(t) dt``. A trader who forecast for half the period gets at most half the
  credit (or half the penalty).
- Brier and log are averaged over the covered time only (counting uncovered time as 0 would reward absence with a
  perfect Brier): ``(1 / covered) * integral over the covered time``; undefined (NaN) when coverage is 0.

Calibration (time-weighted): every held forecast contributes, for each outcome ``i``, the weight ``duration / D`` to
the bucket of ``p_i`` (``NUMBER_OF_BUCKETS`` equal buckets of [0, 1], the last one closed). A bucket accumulates
the weight, the weight times ``r_i`` (what happened) and the weight times ``p_i`` (what was said); observed
frequency = weighted ``r_i`` / weight, mean forecast = weighted ``p_i`` / weight. The count is the number of held
forecasts (trade x outcome) with positive duration that fell in the bucket.

Everything is vectorised: the cost is O((trades + distinct instants) x outcomes), with no loop over traders.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PROBABILITY_FLOOR = 1e-12
NUMBER_OF_BUCKETS = 10

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MarketScores:
    """Scores of every trader (row ``u`` is trader index ``u``) in one market."""

    brier: FloatArray
    log: FloatArray
    baseline: FloatArray
    peer: FloatArray
    coverage: FloatArray
    # Calibration per trader and bucket, shape (traders, NUMBER_OF_BUCKETS).
    calibration_weight: FloatArray
    calibration_observed: FloatArray
    calibration_forecast: FloatArray
    calibration_count: IntArray


def _sum_by(groups: IntArray, weights: FloatArray, minlength: int) -> FloatArray:
    """Sum of the weights per group 0..minlength-1 (np.bincount, typed as the floats it returns)."""
    return np.bincount(groups, weights=weights, minlength=minlength).astype(np.float64, copy=False)


def brier_scores(probabilities: FloatArray) -> FloatArray:
    """Brier score of each forecast (rows) for each possible outcome (columns)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    return np.sum(p * p, axis=-1, keepdims=True) - 2.0 * p + 1.0


def log_scores(probabilities: FloatArray) -> FloatArray:
    """Log score of each forecast (rows) for each possible outcome (columns)."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, 1.0))


def baseline_scores(probabilities: FloatArray) -> FloatArray:
    """Baseline score (against the uniform forecast) of each forecast for each possible outcome."""
    outcomes = np.shape(probabilities)[-1]
    return 100.0 * (log_scores(probabilities) + np.log(outcomes)) / np.log(outcomes)


def peer_scores(probabilities: FloatArray) -> FloatArray:
    """Peer score of each of several simultaneous forecasts (rows) for each possible outcome: 0 when alone."""
    logs = log_scores(probabilities)
    count = logs.shape[0]
    if count < 2:
        return np.zeros_like(logs)
    others_mean = (logs.sum(axis=0, keepdims=True) - logs) / (count - 1)
    return 100.0 * (logs - others_mean)


def score_market(
    *,
    opens_at: float,
    closes_at: float,
    traders: int,
    trader_index: Sequence[int] | IntArray,
    times: Sequence[float] | FloatArray,
    probabilities: Sequence[Sequence[float]] | FloatArray,
    payouts: Sequence[float] | FloatArray,
) -> MarketScores:
    """Scores every trader of one market; see the module docstring for the definitions.

    ``trader_index[k]``, ``times[k]`` (seconds, any origin) and ``probabilities[k]`` describe trade ``k``; trades
    at the same instant are taken in the order given. ``payouts`` is the resolution's payout vector.
    """
    start, end = float(opens_at), float(closes_at)
    duration = end - start
    if not duration > 0:
        raise ValueError("the open period is empty")
    r = np.asarray(payouts, dtype=np.float64)
    outcomes = r.shape[0]
    if outcomes < 2:
        raise ValueError("a market has at least two outcomes")
    who = np.asarray(trader_index, dtype=np.int64)
    when = np.clip(np.asarray(times, dtype=np.float64), start, end)
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1, outcomes)
    if not (who.shape[0] == when.shape[0] == p.shape[0]):
        raise ValueError("trader_index, times and probabilities differ in length")
    if who.size and (who.min() < 0 or who.max() >= traders):
        raise ValueError("trader_index out of range")

    # Order by trader, then time, then the given order: each forecast holds until the next row of the same trader.
    sequence = np.arange(who.shape[0])
    order = np.lexsort((sequence, when, who))
    who, when, p = who[order], when[order], p[order]
    same_trader_next = np.zeros(who.shape[0], dtype=bool)
    same_trader_next[:-1] = who[1:] == who[:-1]
    until = np.full(who.shape[0], end)
    until[:-1] = np.where(same_trader_next[:-1], when[1:], end)
    held = until - when
    # Forecasts replaced at the instant they were made (or made at the close) hold for no time and count nowhere.
    kept = held > 0
    who, when, until, held, p = who[kept], when[kept], until[kept], held[kept], p[kept]

    r_column = r.reshape(outcomes, 1)
    brier = (brier_scores(p) @ r_column).ravel()
    logs = log_scores(p)
    log_expected = (logs @ r_column).ravel()
    baseline = (baseline_scores(p) @ r_column).ravel()

    covered = _sum_by(who, weights=held, minlength=traders)
    with np.errstate(invalid="ignore", divide="ignore"):
        brier_mean = np.where(covered > 0, _sum_by(who, weights=held * brier, minlength=traders) / covered, np.nan)
        log_mean = np.where(covered > 0, _sum_by(who, weights=held * log_expected, minlength=traders) / covered, np.nan)
    baseline_mean = _sum_by(who, weights=held * baseline, minlength=traders) / duration
    peer_mean = _peer_integrals(when, until, logs, r, start, end, who, traders) / duration

    weight_bucket = _calibration(who, held / duration, p, r, traders)
    return MarketScores(
        brier=brier_mean,
        log=log_mean,
        baseline=baseline_mean,
        peer=peer_mean,
        coverage=covered / duration,
        calibration_weight=weight_bucket[0],
        calibration_observed=weight_bucket[1],
        calibration_forecast=weight_bucket[2],
        calibration_count=weight_bucket[3].astype(np.int64),
    )


def _peer_integrals(
    starts: FloatArray,
    ends: FloatArray,
    logs: FloatArray,
    r: FloatArray,
    start: float,
    end: float,
    who: IntArray,
    traders: int,
) -> FloatArray:
    """Per trader, the integral over time of the expected peer score.

    The instants where anyone's forecast starts or stops cut the period into segments; within a segment the set of
    forecasters is fixed, with n members whose log forecasts sum to L. A member with log forecast l scores
    100 * (l - (L - l) / (n - 1)) = 100 * (l * n / (n - 1) - L / (n - 1)), so with prefix sums over segments of
    dt * n / (n - 1) and dt * L / (n - 1) (only where n >= 2) each forecast's integral costs O(outcomes).
    """
    breaks = np.unique(np.concatenate([starts, ends, [start, end]]))
    first = np.searchsorted(breaks, starts)
    last = np.searchsorted(breaks, ends)
    segments = breaks.shape[0] - 1
    outcomes = logs.shape[1]

    present_change = np.zeros(segments + 1, dtype=np.int64)
    np.add.at(present_change, first, 1)
    np.add.at(present_change, last, -1)
    present = np.cumsum(present_change)[:segments]
    log_change = np.zeros((segments + 1, outcomes))
    np.add.at(log_change, first, logs)
    np.subtract.at(log_change, last, logs)
    log_total = np.cumsum(log_change, axis=0)[:segments]

    dt = np.diff(breaks)
    shared = present >= 2
    denominator = np.where(shared, present - 1, 1)
    own_weight = np.where(shared, dt * present / denominator, 0.0)
    others_weight = np.where(shared[:, None], dt[:, None] * log_total / denominator[:, None], 0.0)
    own_prefix = np.concatenate([[0.0], np.cumsum(own_weight)])
    others_prefix = np.vstack([np.zeros((1, outcomes)), np.cumsum(others_weight, axis=0)])

    per_outcome = 100.0 * (
        logs * (own_prefix[last] - own_prefix[first])[:, None] - (others_prefix[last] - others_prefix[first])
    )
    return _sum_by(who, weights=per_outcome @ r, minlength=traders)


def _calibration(
    who: IntArray, weight: FloatArray, p: FloatArray, r: FloatArray, traders: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per trader and bucket: weight, weight x outcome payout, weight x forecast, count of held forecasts."""
    outcomes = p.shape[1]
    clipped = np.clip(p, 0.0, 1.0)
    bucket = np.minimum((clipped * NUMBER_OF_BUCKETS).astype(np.int64), NUMBER_OF_BUCKETS - 1)
    cell = (who[:, None] * NUMBER_OF_BUCKETS + bucket).ravel()
    w = np.repeat(weight, outcomes)
    size = traders * NUMBER_OF_BUCKETS
    shape = (traders, NUMBER_OF_BUCKETS)
    totals = _sum_by(cell, weights=w, minlength=size).reshape(shape)
    observed = _sum_by(cell, weights=w * np.tile(r, who.shape[0]), minlength=size).reshape(shape)
    forecast = _sum_by(cell, weights=w * clipped.ravel(), minlength=size).reshape(shape)
    count = _sum_by(cell, weights=(w > 0).astype(np.float64), minlength=size).reshape(shape)
    return totals, observed, forecast, count
