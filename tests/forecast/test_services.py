"""Scoring and leaderboard services on real PostgreSQL, with markets traded, resolved and settled by the
real markets services."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from forecast import selectors, services, tasks
from forecast.models import LeaderboardEntry, MarketCalibration, MarketScore, SiteCalibration
from markets.models import Market, Payout, Trade
from markets.services import market_resolve, trade_execute
from tests.factories import trade_request
from tests.forecast.conftest import DAY, reference_scores

pytestmark = pytest.mark.django_db

SCORE_FIELDS = (
    "user_id",
    "resolution_id",
    "resolved_at",
    "payout",
    "net_cost",
    "profit",
    "brier",
    "log_score",
    "baseline",
    "peer",
    "coverage",
    "trades",
)


def score_rows(market):
    return list(MarketScore.objects.filter(market=market).order_by("user_id").values_list(*SCORE_FIELDS))


def expected_money(scenario, per_share):
    """Profit from the trades alone: payout of the final shares minus (paid - received)."""
    money = {}
    for name, user in scenario.traders.items():
        shares = {"YES": Decimal(0), "NO": Decimal(0)}
        net_cost = Decimal(0)
        for trade in Trade.objects.filter(user=user).select_related("outcome"):
            sign = 1 if trade.side == "buy" else -1
            shares[trade.outcome.code] += sign * trade.shares
            net_cost += sign * trade.amount
        payout = (shares["YES"] * per_share[0] + shares["NO"] * per_share[1]).quantize(
            Decimal("0.000001"), rounding="ROUND_FLOOR"
        )
        money[name] = (payout, net_cost, payout - net_cost)
    return money


def assert_scores_match(scenario, payouts):
    expected = reference_scores(scenario, payouts)
    money = expected_money(scenario, [Decimal(str(p)) for p in payouts])
    rows = {row.user.username.split("-")[0]: row for row in MarketScore.objects.filter(market=scenario.market)}
    assert set(rows) == set(scenario.traders)
    for name, row in rows.items():
        want = expected[name]
        assert row.coverage == pytest.approx(want["coverage"], rel=1e-12)
        assert row.brier == pytest.approx(want["brier"], rel=1e-9)
        assert row.log_score == pytest.approx(want["log"], rel=1e-9)
        assert row.baseline == pytest.approx(want["baseline"], rel=1e-9)
        assert row.peer == pytest.approx(want["peer"], rel=1e-9, abs=1e-9)
        assert (row.payout, row.net_cost, row.profit) == money[name]
    assert sum(row.peer for row in rows.values()) == pytest.approx(0.0, abs=1e-9)


def test_scores_equal_independently_computed_values(traded_market):
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at + DAY)  # closed late: the period still ends at closes_at
    result = services.market_score(market_id=scenario.market.pk)
    assert result.scored == 3
    assert_scores_match(scenario, [1.0, 0.0])
    alice = MarketScore.objects.get(market=scenario.market, user=scenario.traders["alice"])
    assert alice.coverage == pytest.approx(7 / 8)
    assert alice.trades == 2
    # Payouts agree with what settlement actually paid.
    paid = dict(Payout.objects.filter(market=scenario.market).values_list("user_id", "amount"))
    assert {row.user_id: row.payout for row in MarketScore.objects.filter(market=scenario.market)} == paid


def test_an_early_close_ends_the_open_period(traded_market):
    scenario = traded_market()
    closed = scenario.opens_at + 7 * DAY + timedelta(hours=12)
    scenario.closes_at = closed
    scenario.resolve(outcome="NO", at=closed)
    services.market_score(market_id=scenario.market.pk)
    assert_scores_match(scenario, [0.0, 1.0])


def test_a_split_resolution_scores_the_expected_value(traded_market):
    scenario = traded_market()
    scenario.resolve(kind="split", split=["0.25", "0.75"], at=scenario.closes_at)
    services.market_score(market_id=scenario.market.pk)
    assert_scores_match(scenario, [0.25, 0.75])


def test_rescoring_gives_identical_rows(traded_market):
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at)
    services.market_score(market_id=scenario.market.pk)
    first = score_rows(scenario.market)
    calibration = list(
        MarketCalibration.objects.filter(market=scenario.market)
        .order_by("user_id", "bucket")
        .values_list("user_id", "bucket", "weight", "observed", "forecast", "count")
    )
    again = services.market_score(market_id=scenario.market.pk)
    assert again.removed == 3
    assert score_rows(scenario.market) == first
    assert (
        list(
            MarketCalibration.objects.filter(market=scenario.market)
            .order_by("user_id", "bucket")
            .values_list("user_id", "bucket", "weight", "observed", "forecast", "count")
        )
        == calibration
    )
    assert len(calibration) > 0


def test_re_resolution_rescores_and_annulment_removes_scores(traded_market):
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at)
    services.market_score(market_id=scenario.market.pk)
    yes_rows = score_rows(scenario.market)

    scenario.resolve(outcome="NO", at=scenario.closes_at + DAY)
    services.market_score(market_id=scenario.market.pk)
    no_rows = score_rows(scenario.market)
    assert no_rows != yes_rows
    assert_scores_match(scenario, [0.0, 1.0])
    current = scenario.market.resolutions.get(is_current=True)
    assert {row[1] for row in no_rows} == {current.pk}

    scenario.resolve(kind="annulled", at=scenario.closes_at + 2 * DAY)
    assert scenario.market.status == Market.Status.ANNULLED
    result = services.market_score(market_id=scenario.market.pk)
    assert (result.scored, result.removed) == (0, 3)
    assert not MarketScore.objects.filter(market=scenario.market).exists()
    assert not MarketCalibration.objects.filter(market=scenario.market).exists()


def test_a_market_back_in_resolving_keeps_no_stale_scores(traded_market):
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at)
    services.market_score(market_id=scenario.market.pk)
    market_resolve(
        market=scenario.market,
        user=scenario.staff,
        kind="outcome",
        outcome_code="NO",
        reason="Oops.",
        now=scenario.closes_at,
    )
    # Before settlement and rescoring run, reads and rebuilt boards already ignore the old scores.
    alice = scenario.traders["alice"]
    assert selectors.user_track_record(user=alice).markets == 0
    assert selectors.user_scores(user=alice) == []
    assert all(bucket.count == 0 for bucket in selectors.user_calibration(user=alice))
    assert list(selectors.market_scores(market=scenario.market)) == []
    assert services.leaderboards_rebuild() == 0
    assert not SiteCalibration.objects.exists()
    assert services.market_score(market_id=scenario.market.pk).scored == 0
    assert not MarketScore.objects.filter(market=scenario.market).exists()


def test_an_unknown_or_unresolved_market_scores_nothing(traded_market):
    scenario = traded_market()
    assert services.market_score(market_id=scenario.market.pk).scored == 0
    assert services.market_score(market_id=10**9).scored == 0


def test_scoring_queries_do_not_grow_with_the_number_of_traders(traded_market, make_user):
    def count_queries(scenario):
        scenario.resolve(outcome="YES", at=scenario.closes_at)
        with CaptureQueriesContext(connection) as queries:
            services.market_score(market_id=scenario.market.pk)
        return len(queries)

    small = traded_market("small")
    large = traded_market("large")
    for index in range(6):
        trade_execute(
            user=make_user(f"extra{index}"),
            market=large.market,
            request=trade_request("YES", "buy", shares="1"),
            now=large.opens_at + timedelta(hours=index + 1),
        )
    assert count_queries(large) == count_queries(small)


def test_leaderboards_rank_by_each_metric_and_period(traded_market, settings):
    settings.FORECASTLE_BRIER_MIN_MARKETS = 1
    old = traded_market("old", opens_at=scenario_start(days_ago=120))
    old.resolve(outcome="YES", at=old.closes_at)  # settled 112 days ago: only on the all-time boards
    recent = traded_market("recent")
    recent.resolve(outcome="NO", at=recent.closes_at)
    for scenario in (old, recent):
        services.market_score(market_id=scenario.market.pk)

    written = services.leaderboards_rebuild()
    assert written == LeaderboardEntry.objects.count() == 4 * 6 + 4 * 3

    profit_all = list(
        LeaderboardEntry.objects.filter(metric="profit", period="all").order_by("rank").values_list("user_id", "value")
    )
    expected = sorted(
        ((row.user_id, row.profit) for row in MarketScore.objects.all()), key=lambda pair: pair[1], reverse=True
    )
    assert [value for _, value in profit_all] == [value for _, value in expected]
    recent_users = {user.pk for user in recent.traders.values()}
    assert set(LeaderboardEntry.objects.filter(period="30d").values_list("user_id", flat=True)) == recent_users
    brier = list(LeaderboardEntry.objects.filter(metric="brier", period="all").order_by("rank"))
    assert [entry.value for entry in brier] == sorted(entry.value for entry in brier)
    assert brier[0].rank == 1
    assert SiteCalibration.objects.count() > 0
    site_weight = sum(row.weight for row in SiteCalibration.objects.all())
    assert site_weight == pytest.approx(sum(row.weight for row in MarketCalibration.objects.all()))

    # Rebuilding again replaces rather than duplicates; the Brier minimum filters.
    settings.FORECASTLE_BRIER_MIN_MARKETS = 2
    services.leaderboards_rebuild()
    assert not LeaderboardEntry.objects.filter(metric="brier").exists()
    assert LeaderboardEntry.objects.filter(metric="profit", period="all").count() == 6


def scenario_start(*, days_ago: int):
    return timezone.now() - timedelta(days=days_ago)


def test_the_task_scores_and_queues_one_rebuild(traded_market, monkeypatch, django_capture_on_commit_callbacks):
    cache.delete(tasks.REBUILD_PENDING_KEY)
    queued = []
    monkeypatch.setattr(tasks.leaderboards_rebuild, "delay", lambda: queued.append(1))
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.market_score(scenario.market.pk) == 3
        assert tasks.market_score(scenario.market.pk) == 3
    assert queued == [1]  # the second request found one already pending
    assert tasks.leaderboards_rebuild() == LeaderboardEntry.objects.count()
    assert cache.get(tasks.REBUILD_PENDING_KEY) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_scoring_runs_leave_one_consistent_set_of_rows(traded_market):
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at)
    services.market_score(market_id=scenario.market.pk)
    expected = score_rows(scenario.market)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            services.market_score(market_id=scenario.market.pk)
        except BaseException as error:  # reported below: a thread's exception would otherwise vanish
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert score_rows(scenario.market) == expected
