"""Rolled-up price candles: the history read gives exactly what computing every bucket from the price
points gives, before, between and after roll-ups, however the points arrive, and after voiding takes the
points of late trades out of the history."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from config.celery import app as celery_app
from markets.models import Market, PriceCandle, PriceCandleWatermark, PricePoint, Trade
from markets.selectors.market_page import market_chart
from markets.selectors.prices import BUCKET_ORIGIN, INTERVALS, price_candles, standing_price_points
from markets.services import candles_roll_up, market_resolve, market_settle, trade_execute
from tests.conftest import MakeMarket
from tests.factories import trade_request
from tests.hypothesis_profiles import examples

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # not on a day boundary, so day buckets are cut too

# The history query as it was before candles were rolled up: every bucket from the price points (those of
# voided trades left out). It is the oracle the rolled-up read must match exactly.
ON_THE_FLY_SQL = """
WITH standing AS (
    SELECT pp.* FROM markets_pricepoint pp
    LEFT JOIN markets_trade t ON t.id = pp.trade_id
    WHERE pp.market_id = %(market)s AND t.voided_at IS NULL
),
points AS (
    SELECT date_bin(%(step)s, pp.created_at, %(origin)s) AS bucket,
           pp.created_at, pp.id, element.ordinality - 1 AS idx, element.value::float8 AS p
    FROM standing pp
    CROSS JOIN LATERAL jsonb_array_elements_text(pp.probabilities) WITH ORDINALITY AS element(value, ordinality)
    WHERE pp.created_at >= %(start)s AND pp.created_at < %(end)s
),
candles AS (
    SELECT bucket, idx,
           (array_agg(p ORDER BY created_at, id))[1] AS open,
           max(p) AS high,
           min(p) AS low,
           (array_agg(p ORDER BY created_at DESC, id DESC))[1] AS close
    FROM points GROUP BY bucket, idx
),
prior AS (
    SELECT element.ordinality - 1 AS idx, element.value::float8 AS p
    FROM (
        SELECT probabilities FROM standing
        WHERE created_at < %(start)s
        ORDER BY created_at DESC, id DESC LIMIT 1
    ) last_point
    CROSS JOIN LATERAL jsonb_array_elements_text(last_point.probabilities) WITH ORDINALITY AS element(value, ordinality)
),
buckets AS (
    SELECT generate_series(
        date_bin(%(step)s, %(start)s, %(origin)s), %(end)s - interval '1 microsecond', %(step)s
    ) AS bucket
),
grid AS (
    SELECT b.bucket, i.idx, c.open, c.high, c.low, c.close,
           count(c.close) OVER (PARTITION BY i.idx ORDER BY b.bucket) AS run
    FROM buckets b
    CROSS JOIN generate_series(0, %(outcomes)s - 1) AS i(idx)
    LEFT JOIN candles c ON c.bucket = b.bucket AND c.idx = i.idx
),
filled AS (
    SELECT g.bucket, g.idx, g.open, g.high, g.low,
           COALESCE(first_value(g.close) OVER (PARTITION BY g.idx, g.run ORDER BY g.bucket), pr.p) AS carried
    FROM grid g LEFT JOIN prior pr ON pr.idx = g.idx
)
SELECT bucket, idx, COALESCE(open, carried), COALESCE(high, carried), COALESCE(low, carried), carried
FROM filled
WHERE carried IS NOT NULL
ORDER BY idx, bucket
"""

Window = tuple[str, datetime, datetime]


def on_the_fly(*, market: Market, outcomes: int, interval: str, start: datetime, end: datetime) -> list[Any]:
    parameters: dict[str, Any] = {
        "step": INTERVALS[interval],
        "origin": BUCKET_ORIGIN,
        "market": market.pk,
        "start": start,
        "end": end,
        "outcomes": outcomes,
    }
    with connection.cursor() as cursor:
        cursor.execute(ON_THE_FLY_SQL, parameters)
        return list(cursor.fetchall())


def assert_reads_match(markets: list[tuple[Market, int]], windows: list[Window]) -> None:
    for market, outcomes in markets:
        for interval, start, end in windows:
            read = price_candles(market_id=market.pk, outcome_count=outcomes, interval=interval, start=start, end=end)
            expected = on_the_fly(market=market, outcomes=outcomes, interval=interval, start=start, end=end)
            assert read == expected, (market.slug, interval, start, end)


def assert_rows_match_points() -> None:
    """Every stored candle is its bucket computed from the points (compared to the last bit)."""
    for row in PriceCandle.objects.all():
        outcomes = len(row.close)
        step = INTERVALS[row.interval]
        expected = on_the_fly(
            market=row.market,
            outcomes=outcomes,
            interval=row.interval,
            start=row.bucket_start,
            end=row.bucket_start + step,
        )
        assert [(bucket, idx) for bucket, idx, *_ in expected] == [(row.bucket_start, i) for i in range(outcomes)]
        assert [list(values) for values in zip(*[e[2:] for e in expected], strict=True)] == [
            row.open,
            row.high,
            row.low,
            row.close,
        ]
        assert (
            row.point_count
            == standing_price_points()
            .filter(market=row.market, created_at__gte=row.bucket_start, created_at__lt=row.bucket_start + step)
            .count()
        )


def candle_rows() -> list[tuple[Any, ...]]:
    return list(
        PriceCandle.objects.order_by("market_id", "interval", "bucket_start").values_list(
            "market_id", "interval", "bucket_start", "open", "high", "low", "close", "point_count"
        )
    )


def open_market(make_market: MakeMarket, slug: str, outcomes: int) -> Market:
    """A market opened at BASE, the origin of the points' times (YES/NO when binary, O0... otherwise)."""
    return make_market(
        slug, outcomes=None if outcomes == 2 else outcomes, now=BASE, closes_at=BASE + timedelta(days=60)
    )


def add_points(market: Market, points: list[tuple[int, list[float]]]) -> None:
    """Price points at BASE + seconds, in the given order (so ids need not follow times)."""
    PricePoint.objects.bulk_create(
        PricePoint(market=market, probabilities=probabilities, created_at=BASE + timedelta(seconds=seconds))
        for seconds, probabilities in points
    )


def probability_vectors(outcomes: int) -> st.SearchStrategy[list[float]]:
    weights = st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=outcomes, max_size=outcomes)
    return weights.map(lambda w: [x / sum(w) for x in w])


SPAN = 2 * 86400  # the points fall in two days (so three day buckets) after BASE

point_paths = st.integers(min_value=2, max_value=3).flatmap(
    lambda outcomes: st.tuples(
        st.just(outcomes),
        st.lists(st.tuples(st.integers(0, SPAN), probability_vectors(outcomes)), max_size=25),
        # After the first roll-up: more points, anywhere in time (a trade dated in the past lands in an
        # already rolled bucket), some in the minute of the last point.
        st.lists(st.tuples(st.integers(0, SPAN), probability_vectors(outcomes)), max_size=10),
    )
)

# Widths in buckets keep the 1m windows small; offsets in seconds cut buckets at both ends.
windows = st.lists(
    st.tuples(
        st.sampled_from(list(INTERVALS)),
        st.integers(-3600, SPAN + 3600),
        st.integers(1, 400),
        st.integers(0, 59),
    ).map(
        lambda w: (
            w[0],
            BASE + timedelta(seconds=w[1]),
            BASE + timedelta(seconds=w[1]) + INTERVALS[w[0]] * w[2] + timedelta(seconds=w[3]),
        )
    ),
    min_size=4,
    max_size=8,
)


@pytest.mark.slow
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    paths=st.lists(point_paths, min_size=1, max_size=3),
    windows=windows,
    first_run=st.integers(0, SPAN + 3600),
    second_run=st.integers(0, 2 * 86400),
)
def test_rolled_up_read_equals_the_on_the_fly_candles(make_market, paths, windows, first_run, second_run):
    with transaction.atomic():
        markets = []
        for number, (outcomes, before, _after) in enumerate(paths):
            market = open_market(make_market, f"path-{number}", outcomes)
            add_points(market, before)
            markets.append((market, outcomes))
        # Every interval over the whole span too, so the roll-up's rows are read in full buckets.
        windows = [*windows, *((interval, BASE, BASE + timedelta(seconds=SPAN + 1)) for interval in ("1h", "1d"))]

        now = BASE + timedelta(seconds=first_run)
        candles_roll_up(now=now)
        assert_rows_match_points()
        assert_reads_match(markets, windows)

        for (market, _outcomes), (_, _before, after) in zip(markets, paths, strict=True):
            add_points(market, after)
        assert_reads_match(markets, windows)  # fresh points in rolled buckets are read from the points

        candles_roll_up(now=now + timedelta(seconds=second_run))
        assert_rows_match_points()
        assert_reads_match(markets, windows)
        transaction.set_rollback(True)


def binary_market_with_points(make_market: MakeMarket, slug: str = "rolled") -> Market:
    market = open_market(make_market, slug, 2)
    add_points(
        market,
        [(seconds, [p, 1 - p]) for seconds, p in [(30, 0.6), (400, 0.55), (4000, 0.7), (90000, 0.2), (90030, 0.3)]],
    )
    return market


def test_the_read_serves_completed_buckets_from_the_rolled_up_rows(make_market):
    """Not just equal by accident: a row changed behind the roll-up's back shows in the read."""
    market = binary_market_with_points(make_market)
    assert candles_roll_up(now=BASE + timedelta(days=3)) > 0
    bucket = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    PriceCandle.objects.filter(market=market, interval="1h", bucket_start=bucket).update(high=[0.99, 0.01])
    read = price_candles(
        market_id=market.pk, outcome_count=2, interval="1h", start=bucket, end=bucket + INTERVALS["1h"]
    )
    assert read[0][3] == 0.99
    # A window cutting that bucket computes it from the points instead.
    cut = price_candles(market_id=market.pk, outcome_count=2, interval="1h", start=BASE, end=bucket + INTERVALS["1h"])
    assert cut[0][3] == 0.6


def test_only_completed_buckets_are_written_and_the_open_one_follows_later(make_market):
    market = binary_market_with_points(make_market)
    now = BASE + timedelta(seconds=90040)  # inside the minute of the last two points
    candles_roll_up(now=now)
    assert not PriceCandle.objects.filter(bucket_start__gt=now - INTERVALS["1m"]).exists()
    day = PriceCandleWatermark.objects.get(market=market, interval="1d")
    assert day.pending_from == datetime(2026, 3, 3, tzinfo=UTC)
    assert not PriceCandle.objects.filter(interval="1d", bucket_start=day.pending_from).exists()
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    assert_reads_match([(market, 2)], [(interval, midnight, midnight + timedelta(days=2)) for interval in INTERVALS])

    candles_roll_up(now=datetime(2026, 3, 4, tzinfo=UTC))  # no new point, but the day completed
    assert PriceCandle.objects.get(market=market, interval="1d", bucket_start=day.pending_from).point_count == 2
    assert PriceCandleWatermark.objects.get(market=market, interval="1d").pending_from is None
    assert_rows_match_points()


def test_a_second_run_changes_nothing(make_market):
    binary_market_with_points(make_market, "a")
    binary_market_with_points(make_market, "b")
    now = BASE + timedelta(days=3)
    written = candles_roll_up(now=now)
    first = candle_rows()
    assert written == len(first) > 0
    assert candles_roll_up(now=now) == 0
    assert candle_rows() == first
    # Forgetting the watermarks recomputes every bucket, to the same rows.
    PriceCandleWatermark.objects.all().delete()
    assert candles_roll_up(now=now) == len(first)
    assert candle_rows() == first


def test_trades_after_a_roll_up_are_rolled_up_by_the_next(make_market, make_user):
    market = open_market(make_market, "traded", 2)
    user = make_user()
    trade_execute(
        user=user, market=market, request=trade_request("YES", "buy", shares="10"), now=BASE + timedelta(hours=1)
    )
    now = BASE + timedelta(days=1)
    candles_roll_up(now=now)
    before = candle_rows()
    # A trade dated in the past (as demo data does) lands in the hour and the day already rolled up.
    trade_execute(
        user=user, market=market, request=trade_request("NO", "buy", shares="25"), now=BASE + timedelta(minutes=35)
    )
    day = datetime(2026, 3, 2, tzinfo=UTC)
    windows = [(interval, day, day + timedelta(days=1)) for interval in INTERVALS]
    assert_reads_match([(market, 2)], windows)
    assert candles_roll_up(now=now) == 4  # its bucket in each interval
    assert candle_rows() != before
    assert_rows_match_points()
    assert_reads_match([(market, 2)], windows)


def test_voided_trades_leave_the_candles_rolled_up_or_not(make_market, make_user):
    market = open_market(make_market, "voided", 2)
    staff = make_user("resolver", is_staff=True)
    ana, ben = make_user("ana"), make_user("ben")
    for minutes, user, code in ((10, ana, "YES"), (20, ben, "NO"), (30, ana, "YES")):
        trade_execute(
            user=user,
            market=market,
            request=trade_request(code, "buy", shares="30"),
            now=BASE + timedelta(minutes=minutes),
        )
    known_at = BASE + timedelta(minutes=40)
    # Late: a big move within the hour that holds known_at, and in the next hours.
    for minutes in (45, 95, 200):
        trade_execute(
            user=ben,
            market=market,
            request=trade_request("NO", "buy", shares="80"),
            now=BASE + timedelta(minutes=minutes),
        )
    day = datetime(2026, 3, 2, tzinfo=UTC)
    windows = [(interval, day, day + timedelta(days=1)) for interval in INTERVALS]
    candles_roll_up(now=BASE + timedelta(days=1))
    rolled_before = candle_rows()

    with mock.patch("markets.services.resolution.settlement_enqueue"):
        market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="r", known_at=known_at)
    settled = market_settle(market_id=market.pk, now=BASE + timedelta(days=1, hours=1))
    assert settled is not None
    assert settled.voided_trades == 3
    # At once (the stale candles dropped, served from the points) and after the next roll-up.
    assert_reads_match([(market, 2)], windows)
    assert candle_rows() != rolled_before
    candles_roll_up(now=BASE + timedelta(days=2))
    assert_rows_match_points()
    assert_reads_match([(market, 2)], windows)
    hour = price_candles(market_id=market.pk, outcome_count=2, interval="1h", start=day, end=day + timedelta(days=1))
    standing = [
        trade.probabilities_after[0]
        for trade in Trade.objects.filter(market=market, voided_at__isnull=True).order_by("created_at")
    ]
    yes_lows = [low for _bucket, idx, _open, _high, low, _close in hour if idx == 0]
    assert min(yes_lows) >= min(standing) - 1e-12  # no candle dips to a voided trade's price

    raw = APIClient().get(f"/api/v1/markets/{market.slug}/history/", {"interval": "raw"})
    assert raw.status_code == 200, raw.content
    yes = [point["probability"] for point in raw.json()["series"][0]["points"]]
    # The opening, the three standing trades, and the prices restored by the voiding (the same as the last).
    assert yes == pytest.approx([0.5, *standing, standing[-1]])
    # The market page's chart too: the opening price, the standing trades, the restored prices and the current
    # ones (minute buckets over the day and a bit).
    market.refresh_from_db()
    outcomes = list(market.outcomes.order_by("index"))
    chart = market_chart(market=market, outcomes=outcomes, range_key="all", now=BASE + timedelta(days=1, hours=2))
    assert chart["series"][0]["values"] == pytest.approx([0.5, *standing, standing[-1], standing[-1]], abs=1e-6)


def test_market_ids_limit_the_roll_up(make_market):
    rolled = binary_market_with_points(make_market, "one")
    skipped = binary_market_with_points(make_market, "two")
    candles_roll_up(now=BASE + timedelta(days=3), market_ids=[rolled.pk])
    assert PriceCandle.objects.filter(market=rolled).exists()
    assert not PriceCandle.objects.filter(market=skipped).exists()


def test_the_history_api_answers_the_same_before_and_after_a_roll_up(make_market, isolated_cache):
    market = binary_market_with_points(make_market, "rutte-nato")
    client = APIClient()
    queries = [
        {"interval": interval, "start": "2026-03-02T09:31:10Z", "end": "2026-03-04T00:00:00Z"}
        for interval in ("5m", "1h", "1d")
    ] + [{"interval": "1m", "start": "2026-03-03T09:00:00Z", "end": "2026-03-03T10:00:30Z"}]

    def bodies() -> list[bytes]:
        # A cache of its own, so the second round is computed again rather than read from the first.
        isolated_cache()
        responses = [client.get(f"/api/v1/markets/{market.slug}/history/", query) for query in queries]
        assert all(response.status_code == 200 for response in responses)
        return [response.content for response in responses]

    before = bodies()
    assert candles_roll_up(now=BASE + timedelta(days=3)) > 0
    assert bodies() == before


def test_the_beat_schedule_runs_a_registered_roll_up_task(make_market):
    tasks = [str(entry["task"]) for entry in django_settings.CELERY_BEAT_SCHEDULE.values()]
    [task] = [task for task in tasks if "candles" in task]
    celery_app.loader.import_default_modules()
    assert task in celery_app.tasks
    binary_market_with_points(make_market)
    assert celery_app.tasks[task].apply().get() > 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_roll_ups_leave_one_correct_set_of_candles(make_market):
    markets = [binary_market_with_points(make_market, f"busy-{number}") for number in range(6)]
    now = BASE + timedelta(days=3)
    barrier = threading.Barrier(2)
    written: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            written.append(candles_roll_up(now=now))
        except BaseException as error:  # reported to the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = candle_rows()
    # Each bucket written once between the two runs, and no run's work lost.
    assert sum(written) == len(rows)
    assert_rows_match_points()
    assert candles_roll_up(now=now) == 0
    windows = [(interval, BASE, BASE + timedelta(days=2)) for interval in ("5m", "1h", "1d")]
    assert_reads_match([(market, 2) for market in markets], windows)
