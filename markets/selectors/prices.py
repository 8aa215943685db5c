"""Reads of prices: markets with their current probabilities, price history and candles.

Market snapshots (a market, its outcomes and the maker's state) are read through the Redis cache
(markets.cache) and rebuilt after every trade commit; history is cached per market version. Every
function also works with Redis down: a cache miss simply reads PostgreSQL.
"""

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar

from django.db import connection
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from markets import cache as price_cache
from markets.errors import InvalidInput
from markets.models import Market, Outcome, PricePoint, Proposal, Resolution
from markets.selectors.markets import (
    HALTED_FILTER,
    PROPOSED_FILTER,
    Drafts,
    market_by_slug,
    markets_search,
    markets_visible,
)
from markets.snapshot import (
    MakerState,
    MarketDetail,
    MarketSnapshot,
    MarketSummary,
    ProposalSummary,
    ResolutionSummary,
)

T = TypeVar("T")

INTERVALS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
# Bounds that keep one history response small and its query cheap.
MAX_BUCKETS = 2000
MAX_POINTS = 5000
# Candles are aligned to this origin (a Monday at midnight UTC), so the same bucket is the same everywhere.
BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)


def _latest_price_point() -> QuerySet[PricePoint]:
    return PricePoint.objects.filter(market=OuterRef("pk")).order_by("-created_at", "-id")


def _with_prices() -> QuerySet[Market]:
    """Markets with their outcomes and the time of their last price change (no filter yet)."""
    return Market.objects.prefetch_related(Prefetch("outcomes", queryset=Outcome.objects.order_by("index"))).annotate(
        price_updated_at=Subquery(_latest_price_point().values("created_at")[:1])
    )


def markets_query(
    *, status: str | None = None, category: str | None = None, search: str | None = None
) -> QuerySet[Market]:
    """Public markets (never drafts) with their prices, filtered as every market list is (markets_search);
    `status` is a market status, "halted" (open, trading halted by staff) or "proposed" (a live resolution
    proposal)."""
    halted = status == HALTED_FILTER
    proposed = status == PROPOSED_FILTER
    return markets_search(
        drafts=Drafts.HIDDEN,
        search=search or "",
        category=category or "",
        statuses=[status] if status and not (halted or proposed) else (),
        halted=halted,
        proposed=proposed,
        queryset=_with_prices(),
    )


def _resolution_data(market: Market, outcomes: list[Outcome]) -> ResolutionSummary | None:
    """The market's current resolution (resolving, resolved or annulled), else None."""
    resolution = Resolution.objects.filter(market=market, is_current=True).select_related("outcome").first()
    return _resolution_summary(resolution, outcomes)


def _resolution_summary(resolution: Resolution | None, outcomes: list[Outcome]) -> ResolutionSummary | None:
    if resolution is None:
        return None
    codes = [outcome.code for outcome in outcomes]
    return {
        "kind": resolution.kind,
        "outcome": resolution.outcome.code if resolution.outcome else None,
        "payouts": dict(zip(codes, resolution.payouts, strict=False)) if resolution.payouts else None,
        "reason": resolution.reason,
        "state": resolution.state,
        "created_at": resolution.created_at,
    }


def _live_proposals() -> QuerySet[Proposal]:
    return (
        Proposal.objects.filter(state__in=Proposal.LIVE_STATES)
        .select_related("outcome")
        .annotate(challenge_count=Count("challenges"))
    )


def _proposal_data(market: Market, outcomes: list[Outcome]) -> ProposalSummary | None:
    """The market's live proposal (open to challenge or awaiting a decision), else None."""
    return _proposal_summary(_live_proposals().filter(market=market).first(), outcomes)


def _proposal_summary(proposal: Proposal | None, outcomes: list[Outcome]) -> ProposalSummary | None:
    if proposal is None:
        return None
    codes = [outcome.code for outcome in outcomes]
    return {
        "id": proposal.pk,
        "kind": proposal.kind,
        "outcome": proposal.outcome.code if proposal.outcome else None,
        "payouts": dict(zip(codes, proposal.payouts, strict=False)) if proposal.payouts else None,
        "reason": proposal.reason,
        "source_url": proposal.source_url,
        "known_at": proposal.known_at,
        "state": proposal.state,
        "created_at": proposal.created_at,
        "challenge_until": proposal.challenge_until,
        "challenge_count": getattr(proposal, "challenge_count", 0),
    }


def _snapshot_markets() -> QuerySet[Market]:
    """Markets with what a snapshot needs besides their resolution and proposal (their trader count is a column)."""
    return _with_prices().annotate(version=Subquery(_latest_price_point().values("id")[:1]))


def _snapshot_of(
    market: Market, resolution: ResolutionSummary | None, proposal: ProposalSummary | None
) -> MarketSnapshot:
    return market_snapshot_from(
        market=market,
        outcomes=list(market.outcomes.all()),
        version=getattr(market, "version", None) or 0,
        updated_at=getattr(market, "price_updated_at", None) or market.created_at,
        trader_count=market.trader_count,
        resolution=resolution,
        proposal=proposal,
    )


def market_snapshots_build(*, market_ids: Collection[int]) -> list[MarketSnapshot]:
    """market_snapshot_build for many markets in four queries however many they are (drafts and unknown ids
    are left out): a batch of markets changed in one transaction (proposals finalized together)."""
    markets = list(
        markets_visible(drafts=Drafts.HIDDEN, queryset=_snapshot_markets())
        .filter(pk__in=list(market_ids))
        .order_by("pk")
    )
    ids = [market.pk for market in markets]
    resolutions = {
        resolution.market_id: resolution
        for resolution in Resolution.objects.filter(market_id__in=ids, is_current=True).select_related("outcome")
    }
    proposals = {proposal.market_id: proposal for proposal in _live_proposals().filter(market_id__in=ids)}
    snapshots = []
    for market in markets:
        outcomes = list(market.outcomes.all())
        snapshots.append(
            _snapshot_of(
                market,
                _resolution_summary(resolutions.get(market.pk), outcomes),
                _proposal_summary(proposals.get(market.pk), outcomes),
            )
        )
    return snapshots


def market_snapshot_build(*, market_id: int | None = None, slug: str | None = None) -> MarketSnapshot | None:
    """A public market as plain data (what the detail endpoint and quotes need), from the database."""
    markets = _snapshot_markets()
    try:
        if market_id is not None:
            market = markets_visible(drafts=Drafts.HIDDEN, queryset=markets).get(pk=market_id)
        else:
            market = market_by_slug(slug=slug or "", drafts=Drafts.HIDDEN, queryset=markets)
    except Market.DoesNotExist:
        return None
    outcomes = list(market.outcomes.all())
    return _snapshot_of(market, _resolution_data(market, outcomes), _proposal_data(market, outcomes))


def market_snapshot_from(
    *,
    market: Market,
    outcomes: list[Outcome],
    version: int,
    updated_at: datetime,
    trader_count: int,
    resolution: ResolutionSummary | None,
    proposal: ProposalSummary | None = None,
) -> MarketSnapshot:
    """The snapshot of a market from rows already in hand (the database rebuild and the trade both use it)."""
    summary = market_summary(market, outcomes)
    summary["updated_at"] = updated_at
    detail: MarketDetail = {
        **summary,
        "description": market.description,
        "resolution_criteria": market.resolution_criteria,
        "liquidity": market.liquidity,
        "trader_count": trader_count,
        "closed_at": market.closed_at,
        "resolved_at": market.resolved_at,
        "resolution": resolution,
        "proposal": proposal,
    }
    state: MakerState = {
        "liquidity": market.liquidity,
        "outcomes": [
            {
                "code": outcome.code,
                "index": outcome.index,
                "initial_probability": outcome.initial_probability,
                "shares_outstanding": outcome.shares_outstanding,
            }
            for outcome in outcomes
        ],
    }
    return {"id": market.pk, "version": version, "updated_at": updated_at, "market": detail, "state": state}


def market_summary(market: Market, outcomes: list[Outcome]) -> MarketSummary:
    """What a market list row shows: the market and each outcome's current probability."""
    return {
        "slug": market.slug,
        "question": market.question,
        "category": market.category,
        "kind": market.kind,
        "status": market.status,
        "volume": market.volume,
        "opens_at": market.opens_at,
        "closes_at": market.closes_at,
        "created_at": market.created_at,
        "updated_at": getattr(market, "price_updated_at", None) or market.created_at,
        "halted": market.is_halted,
        "halt_reason": market.halt_reason,
        "outcomes": [
            {
                "code": outcome.code,
                "label": outcome.label,
                "probability": outcome.probability,
                "shares_outstanding": outcome.shares_outstanding,
            }
            for outcome in outcomes
        ],
    }


def market_snapshot(*, slug: str) -> MarketSnapshot | None:
    """The market's snapshot from the cache, or from the database (and then cached); None if unknown."""
    key = price_cache.snapshot_key(slug)
    cached: MarketSnapshot | None = price_cache.cache_get(key)
    if cached is not None:
        return cached
    snapshot = market_snapshot_build(slug=slug)
    if snapshot is not None:
        snapshot = price_cache.snapshot_rendered(snapshot)
        price_cache.cache_set(key, snapshot, only_if_absent=True)
    return snapshot


def state_outcomes(state: MakerState) -> list[Outcome]:
    """Unsaved Outcome rows carrying a maker state (a snapshot's), for pricing a quote without the database."""
    return [
        Outcome(
            code=row["code"],
            index=row["index"],
            initial_probability=row["initial_probability"],
            shares_outstanding=row["shares_outstanding"],
            probability=0.0,
        )
        for row in state["outcomes"]
    ]


class PricePointData(TypedDict):
    time: datetime
    probability: float


class CandleData(TypedDict):
    time: datetime
    open: float
    high: float
    low: float
    close: float


class PriceSeries(TypedDict):
    code: str
    label: str
    points: list[PricePointData]
    candles: list[CandleData]


class PriceHistory(TypedDict):
    """One market's history per outcome, as the history endpoint serializes it."""

    market: str
    interval: str
    start: datetime
    end: datetime | None
    series: list[PriceSeries]


@dataclass(frozen=True)
class HistoryWindow:
    interval: str  # "raw" or a key of INTERVALS
    start: datetime
    # None: up to the latest point (raw points only; candles always end on a bucket boundary).
    end: datetime | None


def history_bucket_end(*, interval: str, now: datetime) -> datetime:
    """The end of the candle bucket `now` falls in: where an open-ended candle window ends."""
    step = INTERVALS[interval]
    return BUCKET_ORIGIN + ((now - BUCKET_ORIGIN) // step + 1) * step


def history_window(
    *,
    snapshot: MarketSnapshot,
    interval: str,
    start: datetime | None,
    end: datetime | None,
    now: datetime | None = None,
) -> HistoryWindow:
    """The time range a history request covers, with defaults and bounds applied.

    Open-ended windows are made stable (up to the latest point, or to the end of the current
    bucket) so the same request maps to the same cache entry until a trade or a new bucket.
    """
    now = now or timezone.now()
    opened = snapshot["market"]["opens_at"] or snapshot["market"]["created_at"]
    if interval == "raw":
        start = start or opened
        if end is not None and start >= end:
            raise InvalidInput("The start must be before the end.", field="start")
        return HistoryWindow(interval=interval, start=start, end=end)
    step = INTERVALS[interval]
    if end is None:
        end = history_bucket_end(interval=interval, now=now)
    start = start or max(opened, end - step * MAX_BUCKETS)
    if start >= end:
        raise InvalidInput("The start must be before the end.", field="start")
    if (end - start) / step > MAX_BUCKETS:
        raise InvalidInput(
            f"That range holds more than {MAX_BUCKETS} {interval} candles; narrow it or use a longer interval.",
            field="start",
        )
    return HistoryWindow(interval=interval, start=start, end=end)


def standing_price_points() -> QuerySet[PricePoint]:
    """Price points that still stand: those of voided trades are left out (the trade was undone, its price never
    counted), as in every history read: the chart, raw points, and candles (the `NOT EXISTS` on voided trades in
    CANDLES_SQL and in the roll-up, markets.services.candles)."""
    return PricePoint.objects.filter(Q(trade__isnull=True) | Q(trade__voided_at__isnull=True))


def price_points(*, market_id: int, start: datetime, end: datetime | None) -> list[tuple[datetime, list[float]]]:
    """Every probability vector recorded in [start, end) that still stands, oldest first (the latest MAX_POINTS)."""
    points = standing_price_points().filter(market_id=market_id, created_at__gte=start)
    if end is not None:
        points = points.filter(created_at__lt=end)
    rows = points.order_by("-created_at", "-id").values_list("created_at", "probabilities")[:MAX_POINTS]
    return [(created_at, list(probabilities)) for created_at, probabilities in reversed(rows)]


# One statement. Whole buckets of the window from its first full bucket up to the roll-up's reach come
# from the rolled-up candles (markets.services.candles); the points are bucketed with date_bin only for
# the rest: the partial bucket at the start, and everything from the first bucket the roll-up has not
# finished (still open when it ran, or holding a point written since, perhaps dated in the past) to
# the end. Then every bucket of the range is laid out, with the last close carried forward into empty
# ones (starting from the last price before the range). The result is exactly that of bucketing every
# point on the fly. Points of voided trades are left out throughout (standing_price_points); voiding drops the
# rolled-up candles it made stale (markets.services.candles.candles_invalidate).
CANDLES_SQL = """
WITH mark AS (
    SELECT last_point_id, pending_from FROM markets_pricecandlewatermark
    WHERE market_id = %(market)s AND "interval" = %(interval)s
),
head AS (
    SELECT date_bin(%(step)s, %(start)s - interval '1 microsecond', %(origin)s) + %(step)s AS full_start
),
bounds AS (
    SELECT head.full_start,
           CASE WHEN mark.last_point_id IS NULL THEN head.full_start
                ELSE GREATEST(head.full_start, LEAST(
                    date_bin(%(step)s, %(end)s, %(origin)s),
                    COALESCE(mark.pending_from, 'infinity'),
                    COALESCE((
                        -- Ordered by id so the (market, id) index finds the few points past the watermark.
                        SELECT date_bin(%(step)s, min(newer.created_at), %(origin)s) FROM (
                            SELECT created_at FROM markets_pricepoint
                            WHERE market_id = %(market)s AND id > mark.last_point_id AND created_at >= head.full_start
                            ORDER BY id
                        ) newer
                    ), 'infinity')
                ))
           END AS served_end
    FROM head LEFT JOIN mark ON true
),
rolled AS (
    SELECT c.bucket_start AS bucket, u.ordinality - 1 AS idx, u.open, u.high, u.low, u.close
    FROM markets_pricecandle c
    CROSS JOIN LATERAL unnest(c.open, c.high, c.low, c.close) WITH ORDINALITY AS u(open, high, low, close, ordinality)
    WHERE c.market_id = %(market)s AND c."interval" = %(interval)s
      AND c.bucket_start >= (SELECT full_start FROM bounds) AND c.bucket_start < (SELECT served_end FROM bounds)
),
unrolled AS (
    SELECT pp.created_at, pp.id, pp.probabilities FROM markets_pricepoint pp
    WHERE pp.market_id = %(market)s
      AND pp.created_at >= %(start)s AND pp.created_at < LEAST((SELECT full_start FROM bounds), %(end)s)
      AND NOT EXISTS (
          SELECT 1 FROM markets_trade voided WHERE voided.id = pp.trade_id AND voided.voided_at IS NOT NULL
      )
    UNION ALL
    SELECT pp.created_at, pp.id, pp.probabilities FROM markets_pricepoint pp
    WHERE pp.market_id = %(market)s
      AND pp.created_at >= (SELECT served_end FROM bounds) AND pp.created_at < %(end)s
      AND NOT EXISTS (
          SELECT 1 FROM markets_trade voided WHERE voided.id = pp.trade_id AND voided.voided_at IS NOT NULL
      )
),
points AS (
    SELECT date_bin(%(step)s, pp.created_at, %(origin)s) AS bucket,
           pp.created_at, pp.id, element.ordinality - 1 AS idx, element.value::float8 AS p
    FROM unrolled pp
    CROSS JOIN LATERAL jsonb_array_elements_text(pp.probabilities) WITH ORDINALITY AS element(value, ordinality)
),
candles AS (
    SELECT bucket, idx, open, high, low, close FROM rolled
    UNION ALL
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
        SELECT pp.probabilities FROM markets_pricepoint pp
        WHERE pp.market_id = %(market)s AND pp.created_at < %(start)s
          AND NOT EXISTS (
              SELECT 1 FROM markets_trade voided WHERE voided.id = pp.trade_id AND voided.voided_at IS NOT NULL
          )
        ORDER BY pp.created_at DESC, pp.id DESC LIMIT 1
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


def price_candles(
    *, market_id: int, outcome_count: int, interval: str, start: datetime, end: datetime
) -> list[tuple[datetime, int, float, float, float, float]]:
    """(bucket start, outcome index, open, high, low, close) for each bucket in [start, end) and outcome;
    rolled-up candles where they are current, price points elsewhere, the same result either way."""
    with connection.cursor() as cursor:
        parameters: dict[str, Any] = {
            "interval": interval,
            "step": INTERVALS[interval],
            "origin": BUCKET_ORIGIN,
            "market": market_id,
            "start": start,
            "end": end,
            "outcomes": outcome_count,
        }
        cursor.execute(CANDLES_SQL, parameters)
        return list(cursor.fetchall())


def price_history(*, snapshot: MarketSnapshot, window: HistoryWindow, render: Callable[[PriceHistory], T]) -> T:
    """Per outcome: raw points, or candles, passed through `render` (the history API caches what it renders)."""
    market = snapshot["market"]

    def build() -> PriceHistory:
        series: list[PriceSeries] = [
            {"code": outcome["code"], "label": outcome["label"], "points": [], "candles": []}
            for outcome in market["outcomes"]
        ]
        market_id = snapshot["id"]
        if window.interval == "raw":
            for created_at, probabilities in price_points(market_id=market_id, start=window.start, end=window.end):
                for entry, probability in zip(series, probabilities, strict=False):
                    entry["points"].append({"time": created_at, "probability": probability})
        else:
            assert window.end is not None  # history_window always closes candle windows
            for bucket, index, open_, high, low, close in price_candles(
                market_id=market_id,
                outcome_count=len(series),
                interval=window.interval,
                start=window.start,
                end=window.end,
            ):
                series[index]["candles"].append(
                    {"time": bucket, "open": open_, "high": high, "low": low, "close": close}
                )
        return {
            "market": market["slug"],
            "interval": window.interval,
            "start": window.start,
            "end": window.end,
            "series": series,
        }

    return render(build())
