"""Reads of the forecast app for pages and APIs. Each selector runs a fixed number of queries, whatever the
number of users or markets it returns: leaderboards and the site calibration are read from the tables the
rebuild task writes, never computed per request."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Avg, Count, Exists, F, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.shortcuts import get_object_or_404

from accounts.models import User
from forecast.models import LeaderboardEntry, MarketCalibration, MarketScore, SiteCalibration
from forecast.scoring import NUMBER_OF_BUCKETS
from markets.models import Market, Resolution, Trade

MAX_LEADERBOARD_PAGE = 200


@dataclass(frozen=True)
class LeaderboardPage:
    metric: str
    period: str
    entries: list[LeaderboardEntry]
    total: int
    built_at: datetime | None


@dataclass(frozen=True)
class CalibrationBucket:
    bucket: int
    lower: float
    upper: float
    # Time-weighted: share of open periods (summed over markets and outcomes) spent in this bucket.
    weight: float
    count: int
    mean_forecast: float | None
    observed: float | None


@dataclass(frozen=True)
class TrackRecord:
    markets: int
    profit: object
    mean_brier: float | None
    mean_log: float | None
    baseline: float
    peer: float
    mean_coverage: float | None


def leaderboard_page(*, metric: str, period: str, limit: int = 50, offset: int = 0) -> LeaderboardPage:
    """One page of a stored leaderboard, best first: two queries whatever the page size."""
    entries_query = LeaderboardEntry.objects.filter(metric=metric, period=period)
    entries = list(
        entries_query.select_related("user").order_by("rank", "user__username")[
            offset : offset + min(limit, MAX_LEADERBOARD_PAGE)
        ]
    )
    summary = entries_query.aggregate(total=Count("id"), built_at=Max("built_at"))
    return LeaderboardPage(
        metric=metric, period=period, entries=entries, total=summary["total"], built_at=summary["built_at"]
    )


# (bucket, weight, weight x outcome payout, weight x forecast, count), as summed over scored markets.
BucketSums = tuple[int, float, float, float, int]


def _buckets(rows: list[BucketSums]) -> list[CalibrationBucket]:
    by_bucket = {row[0]: row for row in rows}
    buckets = []
    for index in range(NUMBER_OF_BUCKETS):
        _, weight, observed, forecast, count = by_bucket.get(index, (index, 0.0, 0.0, 0.0, 0))
        buckets.append(
            CalibrationBucket(
                bucket=index,
                lower=index / NUMBER_OF_BUCKETS,
                upper=(index + 1) / NUMBER_OF_BUCKETS,
                weight=weight,
                count=count,
                mean_forecast=forecast / weight if weight > 0 else None,
                observed=observed / weight if weight > 0 else None,
            )
        )
    return buckets


def _visible_scores() -> QuerySet[MarketScore]:
    """Scores of markets that are resolved now: a re-resolution hides the old scores at once (the market goes
    back to resolving), before the settlement and the rescoring that replace them have run."""
    return MarketScore.objects.filter(market__status=Market.Status.RESOLVED)


def user_calibration(*, user: User) -> list[CalibrationBucket]:
    """The user's time-weighted calibration over all their scored markets: one GROUP BY query."""
    rows = list(
        MarketCalibration.objects.filter(user=user, market__status=Market.Status.RESOLVED)
        .values("bucket")
        .annotate(weight=Sum("weight"), observed=Sum("observed"), forecast=Sum("forecast"), total=Sum("count"))
        .order_by("bucket")
        .values_list("bucket", "weight", "observed", "forecast", "total")
    )
    return _buckets(rows)


def site_calibration() -> list[CalibrationBucket]:
    """The whole site's calibration, as last rebuilt."""
    return _buckets(list(SiteCalibration.objects.values_list("bucket", "weight", "observed", "forecast", "count")))


def user_by_username(*, username: str) -> User:
    return get_object_or_404(User, username=username, is_active=True)


def user_track_record(*, user: User) -> TrackRecord:
    summary = (
        _visible_scores()
        .filter(user=user)
        .aggregate(
            markets=Count("id"),
            profit=Sum("profit"),
            mean_brier=Avg("brier"),
            mean_log=Avg("log_score"),
            baseline=Sum("baseline"),
            peer=Sum("peer"),
            mean_coverage=Avg("coverage"),
        )
    )
    return TrackRecord(
        markets=summary["markets"],
        profit=summary["profit"] or 0,
        mean_brier=summary["mean_brier"],
        mean_log=summary["mean_log"],
        baseline=summary["baseline"] or 0.0,
        peer=summary["peer"] or 0.0,
        mean_coverage=summary["mean_coverage"],
    )


def user_ranks(*, user: User) -> dict[str, dict[str, LeaderboardEntry]]:
    """The user's entry on each leaderboard: {metric: {period: entry}}, one query."""
    ranks: dict[str, dict[str, LeaderboardEntry]] = {}
    for entry in LeaderboardEntry.objects.filter(user=user):
        ranks.setdefault(entry.metric, {})[entry.period] = entry
    return ranks


def user_scores(*, user: User, limit: int = 50) -> list[MarketScore]:
    """The user's scored markets, most recently resolved first, with the resolution: one query."""
    return list(
        _visible_scores()
        .filter(user=user)
        .select_related("market", "resolution", "resolution__outcome")
        .order_by("-resolved_at", "-market_id")[:limit]
    )


def market_current_resolution(*, market: Market) -> Resolution | None:
    return Resolution.objects.filter(market=market, is_current=True).select_related("outcome").first()


def market_scores(*, market: Market) -> QuerySet[MarketScore]:
    """Every trader's score in the market, best profit first, with usernames: one query when evaluated."""
    return (
        _visible_scores()
        .filter(market=market)
        .select_related("user")
        .annotate(username=F("user__username"))
        .order_by("-profit", "user__username")
    )


def markets_with_stale_scores(*, settled_before: datetime) -> list[int]:
    """Ids of settled markets whose scores do not match their current resolution: scores left from an
    earlier resolution, none for a resolved market that was traded, or some for an annulled one.
    Only settlements before `settled_before` count, so one whose scoring is simply still queued is left alone."""
    current = Resolution.objects.filter(market=OuterRef("pk"), is_current=True)
    scores = MarketScore.objects.filter(market=OuterRef("pk"))
    markets = (
        Market.objects.filter(
            status__in=(Market.Status.RESOLVED, Market.Status.ANNULLED),
            resolutions__is_current=True,
            resolutions__state=Resolution.State.SETTLED,
            resolutions__settled_at__lt=settled_before,
        )
        .annotate(
            current_id=Subquery(current.values("pk")[:1]),
            current_kind=Subquery(current.values("kind")[:1]),
            has_scores=Exists(scores),
            has_trades=Exists(Trade.objects.filter(market=OuterRef("pk"))),
        )
        .annotate(has_foreign_scores=Exists(scores.exclude(resolution_id=OuterRef("current_id"))))
    )
    # Mirrors forecast.services.market_score: only a traded market resolved to outcomes keeps scores.
    scored = Q(status=Market.Status.RESOLVED, has_trades=True) & ~Q(current_kind=Resolution.Kind.ANNULLED)
    stale = Q(has_foreign_scores=True) | (scored & Q(has_scores=False)) | (~scored & Q(has_scores=True))
    return list(markets.filter(stale).order_by("pk").values_list("pk", flat=True))
