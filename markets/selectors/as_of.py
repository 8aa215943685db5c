"""Point-in-time reads: markets as they stood at a past moment (`as_of` on the market list, detail and quote).

Everything is rebuilt from rows that only ever grow, never from the market's current columns alone:

- probabilities: the latest price point at or before the moment (the stored floats, so a past price comes back
  exactly); the outcomes are those that vector covers (an outcome added later appends a longer one);
- shares outstanding, volume: the trades made by then that had not been voided by then. A voided trade counts
  at every moment between its trade and its voiding, as it did in the price then (the history shows those
  points too), and not after: the state at a moment is the state the market showed at that moment;
- texts (question, description, resolution criteria, category): the current ones, taken back through the
  revision history (the `before` of the first edit after the moment); close time and liquidity the same way
  through their events (close_moved, liquidity_added); halted from the last halt or resume by then;
- status: open until it closed, then resolving from the latest resolution recorded by then, resolved or
  annulled once that one settled; its resolution and any proposal live at the moment, as they stood.

Since every row read here is dated when it is written and never redated (voiding sets `voided_at` to its own
time, re-resolution adds a resolution and stamps the old one), the answer for a moment no longer changes once
every transaction that began before it has committed: the API caches such answers for long
(markets.apis.as_of).
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    DecimalField,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from accounts.money import ZERO
from markets.errors import InvalidInput
from markets.models import Market, MarketEvent, Outcome, PricePoint, Proposal, Resolution, Trade
from markets.selectors.markets import (
    HALTED_FILTER,
    ORDERINGS,
    PROPOSED_FILTER,
    Drafts,
    market_by_slug,
    markets_search,
)
from markets.snapshot import MakerState, MarketDetail, ProposalSummary, ResolutionSummary

TEXT_FIELDS = ("question", "description", "resolution_criteria", "category")
# The events that take a current value back to an earlier one when they happened after the moment.
REWINDING = (
    MarketEvent.Kind.EDITED,
    MarketEvent.Kind.CLOSE_MOVED,
    MarketEvent.Kind.LIQUIDITY_ADDED,
    MarketEvent.Kind.OUTCOME_ADDED,
)
# Those that changed the maker's opening offsets (markets.services.lifecycle).
REOFFSETTING = (MarketEvent.Kind.LIQUIDITY_ADDED, MarketEvent.Kind.OUTCOME_ADDED)
HALTING = (MarketEvent.Kind.HALTED, MarketEvent.Kind.RESUMED)
MONEY: "DecimalField[Decimal, Decimal]" = DecimalField(max_digits=20, decimal_places=6)


def market_opened_at(market: Market) -> datetime:
    """From when a market has a past to read."""
    return market.opens_at or market.created_at


def _before_opening(market: Market) -> InvalidInput:
    opened = market_opened_at(market)
    return InvalidInput(f"{market.slug} opened at {opened.isoformat()}: give an as_of from then on.", field="as_of")


def _with_outcomes() -> QuerySet[Market]:
    return Market.objects.prefetch_related(Prefetch("outcomes", queryset=Outcome.objects.order_by("index")))


def market_as_of(*, slug: str, moment: datetime) -> tuple[MarketDetail, MakerState] | None:
    """The public market with this slug as it stood at `moment`, and its maker then (for quotes); None if there
    is none (drafts included), and InvalidInput naming as_of for a moment before it opened."""
    try:
        market = market_by_slug(slug=slug, drafts=Drafts.HIDDEN, queryset=_with_outcomes())
    except Market.DoesNotExist:
        return None
    if moment < market_opened_at(market):
        raise _before_opening(market)
    (found,) = _as_of(markets=[market], moment=moment)
    return found


def markets_as_of_query(
    *, moment: datetime, status: str | None = None, category: str | None = None, search: str | None = None
) -> QuerySet[Market]:
    """The public markets that had opened by `moment`; `status` (a status, "halted" or "proposed") and the volume
    they are ordered by (as_of_ordering) are those at `moment`, `search` and `category` match today's texts."""
    markets = markets_search(
        drafts=Drafts.HIDDEN, search=search or "", category=category or "", queryset=_with_outcomes()
    ).filter(Q(opens_at__lte=moment) | Q(opens_at__isnull=True, created_at__lte=moment))
    resolution = Resolution.objects.filter(market=OuterRef("pk"), created_at__lte=moment).order_by("-created_at", "-id")
    halt = MarketEvent.objects.filter(market=OuterRef("pk"), created_at__lte=moment, kind__in=HALTING).order_by(
        "-created_at", "-id"
    )
    volume = (
        Trade.objects.filter(_standing(moment), market=OuterRef("pk"))
        .values("market")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    markets = markets.annotate(
        resolution_kind=Subquery(resolution.values("kind")[:1]),
        resolution_settled_at=Subquery(resolution.values("settled_at")[:1]),
        halt_kind=Subquery(halt.values("kind")[:1]),
        volume_as_of=Coalesce(Subquery(volume, output_field=MONEY), ZERO, output_field=MONEY),
    ).annotate(
        status_as_of=Case(
            When(resolution_kind__isnull=True, closed_at__lte=moment, then=Value(Market.Status.CLOSED)),
            When(resolution_kind__isnull=True, then=Value(Market.Status.OPEN)),
            When(
                resolution_settled_at__lte=moment,
                resolution_kind=Resolution.Kind.ANNULLED,
                then=Value(Market.Status.ANNULLED),
            ),
            When(resolution_settled_at__lte=moment, then=Value(Market.Status.RESOLVED)),
            default=Value(Market.Status.RESOLVING),
            output_field=CharField(),
        )
    )
    if status == HALTED_FILTER:
        return markets.filter(status_as_of=Market.Status.OPEN, halt_kind=MarketEvent.Kind.HALTED)
    if status == PROPOSED_FILTER:
        return markets.filter(Exists(_proposals_live(moment).filter(market=OuterRef("pk"))))
    return markets.filter(status_as_of=status) if status else markets


def as_of_ordering(name: str) -> tuple[str, ...]:
    """ORDERINGS for markets_as_of_query: the volume at the moment in place of today's."""
    return tuple(field.replace("volume", "volume_as_of") for field in ORDERINGS[name])


def markets_as_of(*, markets: Sequence[Market], moment: datetime) -> list[MarketDetail]:
    """Each market (opened at or before `moment`, outcomes prefetched in index order) as it stood at `moment`,
    in a fixed number of queries whatever the number of markets."""
    return [detail for detail, _maker in _as_of(markets=markets, moment=moment)]


def _as_of(*, markets: Sequence[Market], moment: datetime) -> list[tuple[MarketDetail, MakerState]]:
    ids = [market.pk for market in markets]
    if not ids:
        return []
    points = _price_points(ids, moment)
    traded = _traded(ids, moment)
    traders = _trader_counts(ids, moment)
    rewinds, halts = _events(ids, moment)
    resolutions = _resolutions(ids, moment)
    proposals = _proposals(ids, moment)
    found = []
    for market in markets:
        point = points.get(market.pk)
        if point is None:  # no price yet: it had not opened
            raise _before_opening(market)
        found.append(
            _detail(
                market=market,
                moment=moment,
                point=point,
                traded=traded.get(market.pk, {}),
                trader_count=traders.get(market.pk, 0),
                rewinds=rewinds.get(market.pk, []),
                halt=halts.get(market.pk),
                resolution=resolutions.get(market.pk),
                proposal=proposals.get(market.pk),
            )
        )
    return found


def _price_points(ids: list[int], moment: datetime) -> dict[int, PricePoint]:
    latest = (
        PricePoint.objects.filter(market_id__in=ids, created_at__lte=moment)
        .order_by("market_id", "-created_at", "-id")
        .distinct("market_id")
        .only("market_id", "probabilities", "created_at")
    )
    return {point.market_id: point for point in latest}


def _standing(moment: datetime) -> Q:
    """Trades made by `moment` and not voided by then."""
    return Q(created_at__lte=moment) & (Q(voided_at__isnull=True) | Q(voided_at__gt=moment))


def _traded(ids: list[int], moment: datetime) -> dict[int, dict[int, tuple[Decimal, Decimal]]]:
    """Per market and outcome: (shares held by traders, credits traded) over the trades standing at `moment`."""
    signed = Case(When(side=Trade.Side.BUY, then=F("shares")), default=-F("shares"), output_field=MONEY)
    rows = (
        Trade.objects.filter(_standing(moment), market_id__in=ids)
        .values("market_id", "outcome_id")
        .annotate(shares=Coalesce(Sum(signed), ZERO, output_field=MONEY), volume=Sum("amount"))
        .order_by()
    )
    traded: dict[int, dict[int, tuple[Decimal, Decimal]]] = defaultdict(dict)
    for row in rows:
        traded[row["market_id"]][row["outcome_id"]] = (row["shares"], row["volume"])
    return traded


def _trader_counts(ids: list[int], moment: datetime) -> dict[int, int]:
    """Who had traded by `moment` (a voided trader had held a position then, as the current count keeps them)."""
    rows = (
        Trade.objects.filter(market_id__in=ids, created_at__lte=moment)
        .values("market_id")
        .annotate(count=Count("user_id", distinct=True))
        .order_by()
    )
    return {row["market_id"]: row["count"] for row in rows}


def _events(ids: list[int], moment: datetime) -> tuple[dict[int, list[MarketEvent]], dict[int, MarketEvent]]:
    """The events after `moment` that changed a current value (oldest first), and the last halt or resume by then."""
    events = MarketEvent.objects.filter(
        Q(created_at__gt=moment, kind__in=REWINDING) | Q(created_at__lte=moment, kind__in=HALTING),
        market_id__in=ids,
    ).order_by("created_at", "id")
    rewinds: dict[int, list[MarketEvent]] = defaultdict(list)
    halts: dict[int, MarketEvent] = {}
    for event in events:
        if event.kind in HALTING:
            halts[event.market_id] = event
        else:
            rewinds[event.market_id].append(event)
    return rewinds, halts


def _resolutions(ids: list[int], moment: datetime) -> dict[int, Resolution]:
    """The resolution in force at `moment`: the latest recorded by then (a later one supersedes it)."""
    latest = (
        Resolution.objects.filter(market_id__in=ids, created_at__lte=moment)
        .select_related("outcome")
        .order_by("market_id", "-created_at", "-id")
        .distinct("market_id")
    )
    return {resolution.market_id: resolution for resolution in latest}


def _proposals_live(moment: datetime) -> QuerySet[Proposal]:
    """The proposals live at `moment`: made by then, and neither decided nor turned into a resolution by then."""
    ended = Coalesce("decided_at", "resolution__created_at")
    return (
        Proposal.objects.filter(created_at__lte=moment)
        .annotate(ended_at=ended)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=moment))
    )


def _proposals(ids: list[int], moment: datetime) -> dict[int, Proposal]:
    """Each market's proposal live at `moment` (_proposals_live)."""
    live = (
        _proposals_live(moment)
        .filter(market_id__in=ids)
        .select_related("outcome")
        .annotate(
            challenge_count=Count("challenges", filter=Q(challenges__created_at__lte=moment)),
        )
        .order_by("market_id", "-created_at", "-id")
    )
    proposals: dict[int, Proposal] = {}
    for proposal in live:
        proposals.setdefault(proposal.market_id, proposal)
    return proposals


def _rewound(market: Market, rewinds: Iterable[MarketEvent]) -> dict[str, Any]:
    """The market's texts, close time and liquidity before the given events (oldest first): the first event
    after the moment that changed a value holds the value it had at the moment."""
    values: dict[str, Any] = {}
    for event in rewinds:
        data = event.data or {}
        if event.kind == MarketEvent.Kind.EDITED:
            for name, change in data.get("changes", {}).items():
                values.setdefault(name, change["before"])
        elif event.kind == MarketEvent.Kind.CLOSE_MOVED and data.get("from"):
            values.setdefault("closes_at", datetime.fromisoformat(data["from"]))
        elif event.kind == MarketEvent.Kind.LIQUIDITY_ADDED and data.get("liquidity_from"):
            values.setdefault("liquidity", Decimal(data["liquidity_from"]))
    current = {name: getattr(market, name) for name in (*TEXT_FIELDS, "closes_at", "liquidity")}
    return {**current, **values}


def _status(market: Market, moment: datetime, resolution: Resolution | None) -> str:
    if resolution is not None:
        if resolution.settled_at is not None and resolution.settled_at <= moment:
            annulled = resolution.kind == Resolution.Kind.ANNULLED
            return Market.Status.ANNULLED if annulled else Market.Status.RESOLVED
        return Market.Status.RESOLVING
    if market.closed_at is not None and market.closed_at <= moment:
        return Market.Status.CLOSED
    return Market.Status.OPEN


def _resolution_data(resolution: Resolution, codes: list[str], moment: datetime) -> ResolutionSummary:
    settled = resolution.settled_at is not None and resolution.settled_at <= moment
    return {
        "kind": resolution.kind,
        "outcome": resolution.outcome.code if resolution.outcome else None,
        "payouts": dict(zip(codes, resolution.payouts, strict=False)) if resolution.payouts else None,
        "reason": resolution.reason,
        "state": Resolution.State.SETTLED if settled else Resolution.State.PENDING,
        "created_at": resolution.created_at,
    }


def _proposal_data(proposal: Proposal, codes: list[str]) -> ProposalSummary:
    challenges = getattr(proposal, "challenge_count", 0)
    return {
        "id": proposal.pk,
        "kind": proposal.kind,
        "outcome": proposal.outcome.code if proposal.outcome else None,
        "payouts": dict(zip(codes, proposal.payouts, strict=False)) if proposal.payouts else None,
        "reason": proposal.reason,
        "source_url": proposal.source_url,
        "known_at": proposal.known_at,
        "state": Proposal.State.CHALLENGED if challenges else Proposal.State.OPEN,
        "created_at": proposal.created_at,
        "challenge_until": proposal.challenge_until,
        "challenge_count": challenges,
    }


def _detail(
    *,
    market: Market,
    moment: datetime,
    point: PricePoint,
    traded: dict[int, tuple[Decimal, Decimal]],
    trader_count: int,
    rewinds: list[MarketEvent],
    halt: MarketEvent | None,
    resolution: Resolution | None,
    proposal: Proposal | None,
) -> tuple[MarketDetail, MakerState]:
    probabilities: list[float] = list(point.probabilities)
    outcomes: list[Outcome] = list(market.outcomes.all())[: len(probabilities)]
    codes = [outcome.code for outcome in outcomes]
    values = _rewound(market, rewinds)
    status = _status(market, moment, resolution)
    halted = status == Market.Status.OPEN and halt is not None and halt.kind == MarketEvent.Kind.HALTED
    settled = status in (Market.Status.RESOLVED, Market.Status.ANNULLED)
    shares = [traded.get(outcome.pk, (ZERO, ZERO))[0] for outcome in outcomes]
    detail: MarketDetail = {
        "slug": market.slug,
        "question": values["question"],
        "category": values["category"],
        "kind": market.kind,
        "status": status,
        "volume": sum((volume for _shares, volume in traded.values()), ZERO),
        "opens_at": market.opens_at,
        "closes_at": values["closes_at"],
        "created_at": market.created_at,
        "updated_at": point.created_at,
        "halted": halted,
        "halt_reason": halt.reason if halted and halt is not None else "",
        "outcomes": [
            {
                "code": outcome.code,
                "label": outcome.label,
                "probability": probability,
                "shares_outstanding": held,
            }
            for outcome, probability, held in zip(outcomes, probabilities, shares, strict=True)
        ],
        "description": values["description"],
        "resolution_criteria": values["resolution_criteria"],
        "liquidity": values["liquidity"],
        "trader_count": trader_count,
        "closed_at": market.closed_at if market.closed_at is not None and market.closed_at <= moment else None,
        "resolved_at": resolution.settled_at if settled and resolution is not None else None,
        "resolution": _resolution_data(resolution, codes, moment) if resolution is not None else None,
        "proposal": _proposal_data(proposal, codes) if proposal is not None else None,
    }
    if any(event.kind in REOFFSETTING for event in rewinds):
        return detail, maker_from_prices(detail)
    # Today's opening offsets were the offsets then: the maker's own q then, so a quote is the one given then.
    maker: MakerState = {
        "liquidity": detail["liquidity"],
        "outcomes": [
            {
                "code": outcome.code,
                "index": outcome.index,
                "initial_probability": outcome.initial_probability,
                "shares_outstanding": held,
            }
            for outcome, held in zip(outcomes, shares, strict=True)
        ],
    }
    return detail, maker


def maker_from_prices(market: MarketDetail) -> MakerState:
    """A maker with the prices and b of `market`: offsets b ln p_i and no shares.

    An LMSR trade's cost depends only on b and the prices (buying d of outcome i costs b ln(1 + p_i (e^(d/b) - 1))),
    so this prices every trade as the maker's q did (to float rounding) when liquidity or an outcome was added
    since the moment and the opening offsets then are no longer at hand."""
    return {
        "liquidity": market["liquidity"],
        "outcomes": [
            {
                "code": outcome["code"],
                "index": index,
                "initial_probability": outcome["probability"],
                "shares_outstanding": ZERO,
            }
            for index, outcome in enumerate(market["outcomes"])
        ],
    }
