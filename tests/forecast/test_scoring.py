"""The pure scoring math against hand-computed values, and its properties."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast import scoring
from tests.hypothesis_profiles import examples

LN2 = math.log(2)


def test_single_forecasts_score_as_computed_by_hand():
    p = np.array([[0.7, 0.2, 0.1]])
    # Outcome 0 happens: (0.3^2 + 0.2^2 + 0.1^2) = 0.14.
    assert scoring.brier_scores(p)[0, 0] == pytest.approx(0.14)
    # Outcome 2 happens: 0.49 + 0.04 + 0.81 = 1.34.
    assert scoring.brier_scores(p)[0, 2] == pytest.approx(1.34)
    assert scoring.log_scores(p)[0, 1] == pytest.approx(math.log(0.2))
    assert scoring.baseline_scores(p)[0, 0] == pytest.approx(100 * math.log(2.1) / math.log(3))
    assert scoring.baseline_scores(np.array([[0.5, 0.5]]))[0, 0] == pytest.approx(0.0)


def test_peer_score_is_against_the_geometric_mean_of_the_others():
    p = np.array([[0.8, 0.2], [0.5, 0.5], [0.2, 0.8]])
    peer = scoring.peer_scores(p)
    others_of_first = math.sqrt(0.5 * 0.2)
    assert peer[0, 0] == pytest.approx(100 * math.log(0.8 / others_of_first))
    assert peer[:, 0].sum() == pytest.approx(0.0, abs=1e-9)
    assert scoring.peer_scores(p[:1]).tolist() == [[0.0, 0.0]]


def test_time_averaging_and_coverage_by_hand():
    # Open 0..10. Trader 0: 0.6 on YES from 0, 0.8 from 5. Trader 1: 0.3 from 2.
    # Trader 2 trades only at the close (time 20 is clipped to 10): no coverage at all. YES happens.
    s = scoring.score_market(
        opens_at=0,
        closes_at=10,
        traders=3,
        trader_index=[0, 1, 0, 2],
        times=[0, 2, 5, 20],
        probabilities=[[0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.5, 0.5]],
        payouts=[1, 0],
    )
    assert s.coverage.tolist() == pytest.approx([1.0, 0.8, 0.0])
    # Brier (multi-category: 2 (1 - p)^2 for binary) over covered time: (0.32 * 5 + 0.08 * 5) / 10.
    assert s.brier[0] == pytest.approx(0.2)
    assert s.brier[1] == pytest.approx(0.98)
    assert math.isnan(s.brier[2])
    assert s.log[0] == pytest.approx((math.log(0.6) + math.log(0.8)) / 2)
    # Baseline over the whole period, uncovered time as 0: 100 log2(2p).
    assert s.baseline[0] == pytest.approx((100 * math.log2(1.2) * 5 + 100 * math.log2(1.6) * 5) / 10)
    assert s.baseline[1] == pytest.approx(100 * math.log2(0.6) * 8 / 10)
    assert s.baseline[2] == 0.0
    # Peer: alone on [0, 2) scores 0; [2, 5) ln(0.6/0.3); [5, 10) ln(0.8/0.3).
    expected_peer = 100 * (3 * math.log(0.6 / 0.3) + 5 * math.log(0.8 / 0.3)) / 10
    assert s.peer[0] == pytest.approx(expected_peer)
    assert s.peer[1] == pytest.approx(-expected_peer)
    assert s.peer[2] == 0.0


def test_a_split_resolution_scores_the_expectation_under_the_payouts():
    split = scoring.score_market(
        opens_at=0, closes_at=1, traders=1, trader_index=[0], times=[0], probabilities=[[0.7, 0.3]], payouts=[0.4, 0.6]
    )
    yes = scoring.score_market(
        opens_at=0, closes_at=1, traders=1, trader_index=[0], times=[0], probabilities=[[0.7, 0.3]], payouts=[1, 0]
    )
    no = scoring.score_market(
        opens_at=0, closes_at=1, traders=1, trader_index=[0], times=[0], probabilities=[[0.7, 0.3]], payouts=[0, 1]
    )
    for field in ("brier", "log", "baseline"):
        combined = 0.4 * getattr(yes, field)[0] + 0.6 * getattr(no, field)[0]
        assert getattr(split, field)[0] == pytest.approx(combined)


def test_the_last_of_simultaneous_trades_is_the_forecast():
    s = scoring.score_market(
        opens_at=0,
        closes_at=4,
        traders=1,
        trader_index=[0, 0],
        times=[1, 1],
        probabilities=[[0.1, 0.9], [0.9, 0.1]],
        payouts=[1, 0],
    )
    assert s.coverage[0] == pytest.approx(0.75)
    assert s.brier[0] == pytest.approx(2 * 0.1**2)
    assert s.calibration_count.sum() == 2  # one held forecast, two outcomes


def test_calibration_buckets_are_time_weighted():
    s = scoring.score_market(
        opens_at=0,
        closes_at=10,
        traders=1,
        trader_index=[0, 0],
        times=[0, 4],
        probabilities=[[0.25, 0.75], [0.95, 0.05]],
        payouts=[1, 0],
    )
    weight = s.calibration_weight[0]
    assert weight[2] == pytest.approx(0.4)  # 0.25 held for 4 of 10
    assert weight[7] == pytest.approx(0.4)
    assert weight[9] == pytest.approx(0.6)
    assert weight[0] == pytest.approx(0.6)
    assert s.calibration_observed[0, 2] == pytest.approx(0.4)  # YES happened
    assert s.calibration_observed[0, 7] == 0.0
    assert s.calibration_forecast[0, 9] == pytest.approx(0.6 * 0.95)


def test_an_empty_open_period_is_refused():
    with pytest.raises(ValueError, match="empty"):
        scoring.score_market(
            opens_at=5, closes_at=5, traders=1, trader_index=[0], times=[5], probabilities=[[0.5, 0.5]], payouts=[1, 0]
        )


outcome_counts = st.integers(min_value=2, max_value=5)


@st.composite
def markets(draw):
    outcomes = draw(outcome_counts)
    traders = draw(st.integers(min_value=1, max_value=6))
    trades = draw(st.integers(min_value=1, max_value=25))
    raw = draw(
        st.lists(
            st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=outcomes, max_size=outcomes),
            min_size=trades,
            max_size=trades,
        )
    )
    probabilities = [[value / sum(row) for value in row] for row in raw]
    times = draw(st.lists(st.floats(min_value=0, max_value=100), min_size=trades, max_size=trades))
    who = draw(st.lists(st.integers(min_value=0, max_value=traders - 1), min_size=trades, max_size=trades))
    winner = draw(st.integers(min_value=0, max_value=outcomes - 1))
    payouts = [1.0 if index == winner else 0.0 for index in range(outcomes)]
    return outcomes, traders, who, times, probabilities, payouts


@settings(max_examples=examples(200), deadline=None)
@given(markets())
def test_peer_scores_sum_to_zero_and_scores_stay_in_range(market):
    outcomes, traders, who, times, probabilities, payouts = market
    s = scoring.score_market(
        opens_at=0,
        closes_at=100,
        traders=traders,
        trader_index=who,
        times=times,
        probabilities=probabilities,
        payouts=payouts,
    )
    assert abs(s.peer.sum()) < 1e-6 * max(1.0, np.abs(s.peer).sum())
    assert np.all((s.coverage >= 0) & (s.coverage <= 1 + 1e-12))
    covered = s.coverage > 0
    assert np.all((s.brier[covered] >= -1e-12) & (s.brier[covered] <= 2 + 1e-12))
    assert np.all(s.log[covered] <= 1e-12)
    assert np.all(s.baseline <= 100 + 1e-9)
    # Every held moment lands in exactly one bucket per outcome.
    assert s.calibration_weight.sum(axis=1) == pytest.approx(s.coverage * outcomes)


@settings(max_examples=examples(100), deadline=None)
@given(outcome_counts, st.integers(min_value=0, max_value=4), st.floats(min_value=0, max_value=50))
def test_the_uniform_forecast_has_baseline_zero(outcomes, winner, start):
    s = scoring.score_market(
        opens_at=0,
        closes_at=100,
        traders=1,
        trader_index=[0],
        times=[start],
        probabilities=[[1 / outcomes] * outcomes],
        payouts=[1.0 if index == winner % outcomes else 0.0 for index in range(outcomes)],
    )
    assert s.baseline[0] == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=examples(100), deadline=None)
@given(outcome_counts, st.integers(min_value=0, max_value=4))
def test_a_perfect_forecast_has_brier_zero_log_zero_and_baseline_hundred(outcomes, winner):
    winner %= outcomes
    certain = [1.0 if index == winner else 0.0 for index in range(outcomes)]
    s = scoring.score_market(
        opens_at=0, closes_at=1, traders=1, trader_index=[0], times=[0], probabilities=[certain], payouts=certain
    )
    assert s.brier[0] == pytest.approx(0.0)
    assert s.log[0] == pytest.approx(0.0)
    assert s.baseline[0] == pytest.approx(100.0)


@settings(max_examples=examples(100), deadline=None)
@given(markets())
def test_the_vectorised_peer_score_matches_a_direct_integration(market):
    _outcomes, traders, who, times, probabilities, payouts = market
    s = scoring.score_market(
        opens_at=0,
        closes_at=100,
        traders=traders,
        trader_index=who,
        times=times,
        probabilities=probabilities,
        payouts=payouts,
    )
    # Direct: sample the forecast of every trader on each elementary segment, score with peer_scores.
    order = sorted(range(len(who)), key=lambda k: (times[k], k))
    breaks = sorted({0.0, 100.0, *times})
    expected = np.zeros(traders)
    for left, right in itertools.pairwise(breaks):
        current: dict[int, list[float]] = {}
        for k in order:
            if times[k] <= left:
                current[who[k]] = probabilities[k]
        if not current:
            continue
        members = sorted(current)
        peer = scoring.peer_scores(np.array([current[m] for m in members])) @ np.array(payouts)
        for member, value in zip(members, peer, strict=True):
            expected[member] += value * (right - left) / 100
    assert s.peer == pytest.approx(expected, abs=1e-6)
