"""Reads for the market page and its live-price fragment.

The live fragment is polled every few seconds by every open market page, so its data is cached
in Django's cache keyed by the market and its latest price point: a trade writes a new point,
which changes the key, so a cached value is never stale. If the cache is down the page still
renders from the database.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Trunc
from django.utils import timezone

from accounts.models import User
from accounts.money import ZERO, position_value
from config.core.cache import cache_get, cache_set
from markets.models import Market, Outcome, Payout, Position, PricePoint, Resolution, Trade
from markets.selectors.markets import Drafts, market_by_slug
from markets.selectors.prices import standing_price_points
from markets.snapshot import LivePrices, PriceChart

RANGES: dict[str, timedelta | None] = {
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
    "1m": timedelta(days=30),
    "all": None,
}
DEFAULT_RANGE = "1w"
RECENT_TRADES = 15
# Short, because the chart's time window slides even when nobody trades.
LIVE_CACHE_SECONDS = 30


def market_page_get(*, slug: str, drafts: Drafts, with_outcomes: bool = True) -> Market:
    """The market with `last_point_id`, the version of its prices (raises Market.DoesNotExist).

    The live fragment asks without outcomes: on a cache hit it needs this one query only.
    """
    markets = Market.objects.annotate(
        last_point_id=Subquery(PricePoint.objects.filter(market_id=OuterRef("pk")).order_by("-id").values("id")[:1])
    )
    if with_outcomes:
        markets = markets.prefetch_related("outcomes")
    return market_by_slug(slug=slug, drafts=drafts, queryset=markets)


def market_version(*, market_id: int) -> int | None:
    return PricePoint.objects.filter(market_id=market_id).order_by("-id").values_list("id", flat=True).first()


def _bucket(span: timedelta) -> str:
    if span <= timedelta(days=2):
        return "minute"
    if span <= timedelta(days=45):
        return "hour"
    return "day"


def market_chart(*, market: Market, outcomes: list[Outcome], range_key: str, now: datetime) -> PriceChart:
    """Price history per outcome for uPlot: {"t": [unix seconds], "series": [{label, values}]}.

    One point per minute/hour/day bucket (the last in it), a first point carrying the price at
    the start of the range and a last point at the current price, so the line spans the range.
    """
    end = now if market.status == Market.Status.OPEN else min(now, market.closed_at or market.closes_at)
    opened = market.opens_at or market.created_at
    window = RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    start = max(opened, end - window) if window else opened
    start = min(start, end)
    # Voided trades' points are not history (markets.selectors.prices.standing_price_points).
    points = standing_price_points().filter(market_id=market.pk)
    first = points.filter(created_at__lte=start).order_by("-created_at", "-id").values_list("probabilities", flat=True)
    opening = first.first() or [outcome.initial_probability for outcome in outcomes]
    rows = list(
        points.filter(created_at__gt=start, created_at__lte=end)
        .annotate(bucket=Trunc("created_at", _bucket(end - start)))
        .order_by("bucket", "-created_at", "-id")
        .distinct("bucket")
        .values_list("bucket", "created_at", "probabilities")
    )
    times = [int(start.timestamp())] + [int(moment.timestamp()) for _, moment, _ in rows] + [int(end.timestamp())]
    vectors = [opening] + [vector for _, _, vector in rows] + [[outcome.probability for outcome in outcomes]]
    return {
        "t": times,
        "series": [
            {
                "label": outcome.label,
                "values": [
                    round(vector[outcome.index], 6) if outcome.index < len(vector) else None for vector in vectors
                ],
            }
            for outcome in outcomes
        ],
    }


def _live_data(market: Market, range_key: str, now: datetime) -> LivePrices:
    outcomes = list(market.outcomes.all())
    return {
        "outcomes": [
            {"code": outcome.code, "label": outcome.label, "probability": outcome.probability} for outcome in outcomes
        ],
        "chart": market_chart(market=market, outcomes=outcomes, range_key=range_key, now=now),
        "volume": str(market.volume),
    }


def market_live(*, market: Market, range_key: str, now: datetime | None = None) -> LivePrices:
    """Prices and chart data of the live fragment, from the cache when it is there."""
    now = now or timezone.now()
    range_key = range_key if range_key in RANGES else DEFAULT_RANGE
    version = getattr(market, "last_point_id", None)
    if version is None:
        version = market_version(market_id=market.pk)
    key = f"market-live:v1:{market.pk}:{version}:{market.status}:{range_key}"
    # With the cache down, a miss and a dropped write (config/core/cache.py): the page renders from the database.
    cached: LivePrices | None = cache_get(key)
    if cached is not None:
        return cached
    data = _live_data(market, range_key, now)
    cache_set(key, data, timeout=LIVE_CACHE_SECONDS)
    return data


def market_recent_trades(*, market: Market, limit: int = RECENT_TRADES) -> QuerySet[Trade]:
    return (
        Trade.objects.filter(market_id=market.pk)
        .select_related("outcome", "user")
        .order_by("-created_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class PositionView:
    outcome: Outcome
    shares: Decimal
    net_cost: Decimal
    # What the shares would fetch at the current probability (a share pays 1 if its outcome wins).
    value: Decimal

    @property
    def profit(self) -> Decimal:
        return self.value - self.net_cost


def market_user_positions(*, market: Market, user: User, outcomes: list[Outcome]) -> list[PositionView]:
    """The user's positions in this market, valued at the outcomes' current probabilities."""
    by_id = {outcome.pk: outcome for outcome in outcomes}
    positions = Position.objects.filter(market_id=market.pk, user_id=user.pk).exclude(shares=ZERO, net_cost=ZERO)
    views = []
    for position in positions.order_by("outcome__index"):
        outcome = by_id[position.outcome_id]
        value = position_value(position.shares, outcome.probability)
        views.append(PositionView(outcome=outcome, shares=position.shares, net_cost=position.net_cost, value=value))
    return views


def user_shares_held(*, user: User, outcome: Outcome) -> Decimal:
    """The shares of `outcome` the user holds now (zero when none)."""
    shares = Position.objects.filter(user_id=user.pk, outcome_id=outcome.pk).values_list("shares", flat=True).first()
    return shares if shares is not None else ZERO


def market_user_payout(*, resolution: Resolution, user: User) -> Decimal:
    """What the settlement of `resolution` paid the user: zero for a losing (or absent) trader."""
    amount = Payout.objects.filter(resolution=resolution, user_id=user.pk).values_list("amount", flat=True).first()
    return amount if amount is not None else ZERO


def market_resolutions(*, market: Market) -> list[Resolution]:
    """Every resolution of the market, newest first, with who recorded it and the winning outcome."""
    return list(
        Resolution.objects.filter(market=market).select_related("created_by", "outcome").order_by("-created_at", "-pk")
    )
