"""Writes of the forecast app: score a settled market, rebuild the leaderboards and the site calibration.

Every write here recomputes derived rows from the source of truth (trades, positions, payouts and the current
resolution) and replaces them in one transaction, so running a service twice, or after any sequence of
resolutions, re-resolutions and annulments, leaves exactly the rows the current state implies.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.money import ZERO, credits_to_receive
from forecast import scoring
from forecast.metrics import scoring_observed
from forecast.models import LeaderboardEntry, MarketCalibration, MarketScore, SiteCalibration
from markets.locks import market_lock
from markets.models import Market, Payout, Position, Resolution, Trade

LEADERBOARD_WINDOW = timedelta(days=30)
# Serialises leaderboard rebuilds (an arbitrary constant key for pg_advisory_xact_lock).
REBUILD_LOCK_KEY = 4_151_202_605


@dataclass(frozen=True)
class MarketScoreResult:
    market_id: int
    # Score rows now stored for the market (0 when it is not resolved, or annulled).
    scored: int
    # Rows removed first (the previous scoring of the market).
    removed: int


def _payouts_by_user(*, market: Market, resolution: Resolution, per_share: list[Decimal]) -> dict[int, Decimal]:
    """What each trader received: the settlement's own payout rows when it has paid, otherwise
    sum_i shares_i x payout_i rounded down to the credit quantum, exactly as settlement computes it."""
    if resolution.state == Resolution.State.SETTLED:
        paid = dict(Payout.objects.filter(resolution=resolution).values_list("user_id", "amount"))
        if paid:
            return paid
    raw: dict[int, Decimal] = defaultdict(Decimal)
    for user_id, index, shares in Position.objects.filter(market=market).values_list(
        "user_id", "outcome__index", "shares"
    ):
        raw[user_id] += shares * per_share[index]
    return {user_id: credits_to_receive(amount) for user_id, amount in raw.items()}


def _open_period(market: Market, resolution: Resolution | None = None) -> tuple[datetime, datetime] | None:
    """From the opening to the close, or to the moment the answer became known if that came first: a forecast
    made once the answer was known is not a forecast (its trade was voided, markets.services.voiding)."""
    if market.opens_at is None:
        return None
    end = min(market.closed_at or market.closes_at, market.closes_at)
    if resolution is not None and resolution.known_at is not None:
        end = min(end, resolution.known_at)
    return (market.opens_at, end) if end > market.opens_at else None


@scoring_observed
def market_score(*, market_id: int) -> MarketScoreResult:
    """Scores every trader of a resolved market from its current resolution, replacing any earlier scores.

    A market that is not (or no longer) resolved, or was annulled, keeps no scores. The market row lock
    serialises this with settlement and with a concurrent run of itself.
    """
    with transaction.atomic():
        market = market_lock(market_id=market_id, missing_ok=True)
        if market is None:
            return MarketScoreResult(market_id=market_id, scored=0, removed=0)
        removed, _ = MarketScore.objects.filter(market=market).delete()
        MarketCalibration.objects.filter(market=market).delete()
        resolution = Resolution.objects.filter(market=market, is_current=True).first()
        period = _open_period(market, resolution)
        if (
            market.status != Market.Status.RESOLVED
            or resolution is None
            or resolution.kind == Resolution.Kind.ANNULLED
            or not resolution.payouts
            or period is None
        ):
            return MarketScoreResult(market_id=market_id, scored=0, removed=removed)
        scored = _score_rows(market=market, resolution=resolution, period=period)
    return MarketScoreResult(market_id=market_id, scored=scored, removed=removed)


def padded(probabilities: list[float], outcomes: int) -> list[float]:
    """A probability vector with zeros for the outcomes added after it was recorded."""
    return list(probabilities) + [0.0] * (outcomes - len(probabilities))


def _score_rows(*, market: Market, resolution: Resolution, period: tuple[datetime, datetime]) -> int:
    per_share = [Decimal(str(value)) for value in resolution.payouts or []]
    trades = list(
        Trade.objects.filter(market=market, voided_at__isnull=True)
        .order_by("created_at", "id")
        .values_list("user_id", "created_at", "probabilities_after")
    )
    if not trades:
        return 0
    user_ids = sorted({user_id for user_id, _, _ in trades})
    index_of = {user_id: index for index, user_id in enumerate(user_ids)}
    start, end = period
    scores = scoring.score_market(
        opens_at=0.0,
        closes_at=(end - start).total_seconds(),
        traders=len(user_ids),
        trader_index=[index_of[user_id] for user_id, _, _ in trades],
        times=[(created_at - start).total_seconds() for _, created_at, _ in trades],
        # A forecast made before staff added an outcome gave that outcome nothing (docs/trading.md).
        probabilities=[padded(probabilities, len(per_share)) for _, _, probabilities in trades],
        payouts=[float(value) for value in per_share],
    )
    trade_counts = np.bincount([index_of[user_id] for user_id, _, _ in trades], minlength=len(user_ids))
    net_costs = dict(
        Position.objects.filter(market=market)
        .values("user_id")
        .annotate(total=Sum("net_cost"))
        .values_list("user_id", "total")
    )
    payouts = _payouts_by_user(market=market, resolution=resolution, per_share=per_share)
    resolved_at = market.resolved_at or resolution.settled_at or resolution.created_at

    rows = []
    for index, user_id in enumerate(user_ids):
        payout = payouts.get(user_id, ZERO)
        net_cost = net_costs.get(user_id) or ZERO
        rows.append(
            MarketScore(
                market=market,
                user_id=user_id,
                resolution=resolution,
                resolved_at=resolved_at,
                payout=payout,
                net_cost=net_cost,
                profit=payout - net_cost,
                brier=_finite_or_none(scores.brier[index]),
                log_score=_finite_or_none(scores.log[index]),
                baseline=float(scores.baseline[index]),
                peer=float(scores.peer[index]),
                coverage=min(float(scores.coverage[index]), 1.0),
                trades=int(trade_counts[index]),
            )
        )
    MarketScore.objects.bulk_create(rows)
    cells = np.argwhere(scores.calibration_count > 0)
    MarketCalibration.objects.bulk_create(
        MarketCalibration(
            market=market,
            user_id=user_ids[index],
            bucket=int(bucket),
            weight=float(scores.calibration_weight[index, bucket]),
            observed=float(scores.calibration_observed[index, bucket]),
            forecast=float(scores.calibration_forecast[index, bucket]),
            count=int(scores.calibration_count[index, bucket]),
        )
        for index, bucket in cells
    )
    return len(rows)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


# metric -> (SQL aggregate over forecast_marketscore, ORDER BY direction, HAVING condition).
# Fixed strings, never input: they are interpolated into the rebuild statement.
_LEADERBOARD_SQL: dict[str, tuple[str, str, str]] = {
    LeaderboardEntry.Metric.PROFIT: ("SUM(s.profit)", "DESC", "TRUE"),
    LeaderboardEntry.Metric.BASELINE: ("SUM(s.baseline)", "DESC", "TRUE"),
    LeaderboardEntry.Metric.PEER: ("SUM(s.peer)", "DESC", "TRUE"),
    LeaderboardEntry.Metric.BRIER: ("AVG(s.brier)", "ASC", "COUNT(s.brier) >= %(min_markets)s"),
}


def leaderboards_rebuild(*, now: datetime | None = None) -> int:
    """Rebuilds every leaderboard (metric x period) and the site calibration from the score rows, set-based:
    one INSERT ... SELECT with RANK() per board. Returns the number of leaderboard rows written.

    Only markets still resolved count: one moved back to resolving by a re-resolution drops out at once, before
    its rescoring has run. Profit, baseline and peer rank by their sum over the trader's scored markets (so taking
    part in more markets counts, as on Metaculus); Brier ranks by the mean over the markets where the trader held
    a forecast, once there are FORECASTLE_BRIER_MIN_MARKETS of them. Ties share a rank. The 30-day boards count
    markets resolved in the 30 days before `now`.
    """
    now = now or timezone.now()
    entries = LeaderboardEntry._meta.db_table
    score_table = MarketScore._meta.db_table
    market_table = Market._meta.db_table
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REBUILD_LOCK_KEY])
        LeaderboardEntry.objects.all().delete()
        for period, since in (
            (LeaderboardEntry.Period.ALL, None),
            (LeaderboardEntry.Period.LAST_30_DAYS, now - LEADERBOARD_WINDOW),
        ):
            for metric, (aggregate, direction, having) in _LEADERBOARD_SQL.items():
                value = f"ROUND(({aggregate})::numeric, 6)"
                count = "COUNT(s.brier)" if metric == LeaderboardEntry.Metric.BRIER else "COUNT(*)"
                cursor.execute(
                    f"""INSERT INTO {entries} (metric, period, user_id, rank, value, markets, built_at)
                        SELECT %(metric)s, %(period)s, user_id, RANK() OVER (ORDER BY value {direction}), value,
                               markets, %(now)s
                        FROM (
                          SELECT s.user_id, {value} AS value, {count} AS markets
                          FROM {score_table} s
                          JOIN {market_table} m ON m.id = s.market_id AND m.status = %(resolved)s
                          WHERE %(since)s::timestamptz IS NULL OR s.resolved_at >= %(since)s::timestamptz
                          GROUP BY s.user_id
                          HAVING {having}
                        ) per_user
                        WHERE value IS NOT NULL""",  # noqa: S608
                    {
                        "metric": str(metric),
                        "period": str(period),
                        "now": now,
                        "since": since,
                        "min_markets": settings.FORECASTLE_BRIER_MIN_MARKETS,
                        "resolved": Market.Status.RESOLVED,
                    },
                )
                written += cursor.rowcount
        SiteCalibration.objects.all().delete()
        calibration = MarketCalibration._meta.db_table
        cursor.execute(
            f"""INSERT INTO {SiteCalibration._meta.db_table} (bucket, weight, observed, forecast, count, built_at)
                SELECT c.bucket, SUM(c.weight), SUM(c.observed), SUM(c.forecast), SUM(c.count), %(now)s
                FROM {calibration} c
                JOIN {market_table} m ON m.id = c.market_id AND m.status = %(resolved)s
                GROUP BY c.bucket""",  # noqa: S608
            {"now": now, "resolved": Market.Status.RESOLVED},
        )
    return written
