"""Reads for the markets list: a filtered, sorted page of markets with everything a card shows,
in a fixed number of queries however many markets the page holds."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.paginator import Page, Paginator
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.db.models.functions import Trunc
from django.utils import timezone

from markets.models import Market, Outcome, PricePoint, Proposal
from markets.selectors.markets import HALTED_FILTER, ORDERINGS, PROPOSED_FILTER, Drafts, markets_search
from markets.selectors.results import MarketResult, market_results

PAGE_SIZE = 20
# The website's sorts, each one of the API's orderings (markets.selectors.markets.ORDERINGS).
SORTS = {
    "volume": "-volume",
    "newest": "-created_at",
    "closing": "closes_at",
}
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "open": (Market.Status.OPEN,),
    HALTED_FILTER: (Market.Status.OPEN,),
    "closed": (Market.Status.CLOSED, Market.Status.RESOLVING),
    # A resolution proposed: its challenge window running, or challenged and awaiting staff (the market is closed).
    PROPOSED_FILTER: (Market.Status.CLOSED,),
    "resolved": (Market.Status.RESOLVED, Market.Status.ANNULLED),
    "annulled": (Market.Status.ANNULLED,),
}
SPARKLINE_WINDOW = timedelta(days=7)
CHANGE_WINDOW = timedelta(hours=24)
LEADING_OPTIONS = 3


@dataclass
class MarketCard:
    market: Market
    outcomes: list[Outcome]
    # The probability shown on the card: YES for a binary market, the leader otherwise.
    headline: Outcome
    change_24h: float
    leading: list[Outcome] = field(default_factory=list)
    sparkline: list[float] = field(default_factory=list)
    # A settled market's result: the card shows it and what each share paid, not the last price.
    result: MarketResult | None = None
    # The live resolution proposal, for the card's "Proposed" badge (markets/_proposal_badge.html).
    proposal: Proposal | None = None


def market_list(
    *, drafts: Drafts, search: str = "", category: str = "", status: str = "", sort: str = "volume"
) -> QuerySet[Market]:
    """The API's market list query (markets_search, ORDERINGS), with open markets first: the page's own choice."""
    markets = markets_search(
        drafts=drafts,
        search=search,
        category=category,
        statuses=STATUS_FILTERS.get(status, ()),
        halted=status == HALTED_FILTER,
        proposed=status == PROPOSED_FILTER,
    )
    open_first = Case(When(status=Market.Status.OPEN, then=Value(0)), default=Value(1), output_field=IntegerField())
    ordering = ORDERINGS[SORTS.get(sort, SORTS["volume"])]
    return markets.annotate(open_first=open_first).order_by("open_first", *ordering)


def _probabilities_at(market_ids: list[int], moment: datetime) -> dict[int, list[float]]:
    """Each market's probability vector as it stood at `moment` (its last point at or before it)."""
    rows = (
        PricePoint.objects.filter(market_id__in=market_ids, created_at__lte=moment)
        .order_by("market_id", "-created_at", "-id")
        .distinct("market_id")
        .values_list("market_id", "probabilities")
    )
    return dict(rows)


def _sparklines(market_ids: list[int], since: datetime) -> dict[int, list[list[float]]]:
    """Hourly closing probability vectors since `since` (PostgreSQL DISTINCT ON keeps the last per hour)."""
    rows = (
        PricePoint.objects.filter(market_id__in=market_ids, created_at__gt=since)
        .annotate(bucket=Trunc("created_at", "hour"))
        .order_by("market_id", "bucket", "-created_at", "-id")
        .distinct("market_id", "bucket")
        .values_list("market_id", "bucket", "probabilities")
    )
    series: dict[int, list[list[float]]] = defaultdict(list)
    for market_id, _bucket, probabilities in rows:
        series[market_id].append(probabilities)
    return series


def market_cards(markets: list[Market], *, now: datetime | None = None) -> list[MarketCard]:
    """Cards for a page of markets: five queries for the whole page (outcomes, the prices a day ago and
    at the sparkline's start, sparklines, live proposals), and a sixth when the page holds settled markets
    (their results)."""
    now = now or timezone.now()
    if not markets:
        return []
    ids = [market.pk for market in markets]
    outcomes_by_market: dict[int, list[Outcome]] = defaultdict(list)
    for outcome in Outcome.objects.filter(market_id__in=ids).order_by("market_id", "index"):
        outcomes_by_market[outcome.market_id].append(outcome)
    day_ago = _probabilities_at(ids, now - CHANGE_WINDOW)
    week_start = _probabilities_at(ids, now - SPARKLINE_WINDOW)
    recent = _sparklines(ids, now - SPARKLINE_WINDOW)
    results = market_results(markets=markets, outcomes=outcomes_by_market)
    proposals = {
        proposal.market_id: proposal
        for proposal in Proposal.objects.filter(market_id__in=ids, state__in=Proposal.LIVE_STATES).select_related(
            "outcome"
        )
    }

    cards = []
    for market in markets:
        outcomes = outcomes_by_market.get(market.pk, [])
        if not outcomes:
            continue
        headline = outcomes[0] if market.is_binary else max(outcomes, key=lambda outcome: outcome.probability)
        index = headline.index
        # A vector from before an outcome was added lacks it: the outcome's change counts from zero.
        before = day_ago.get(market.pk) or [outcome.initial_probability for outcome in outcomes]
        before_headline = before[index] if index < len(before) else 0.0
        vectors = ([week_start[market.pk]] if market.pk in week_start else []) + recent.get(market.pk, [])
        line = [vector[index] for vector in vectors if index < len(vector)] + [headline.probability]
        cards.append(
            MarketCard(
                market=market,
                outcomes=outcomes,
                headline=headline,
                change_24h=headline.probability - before_headline,
                leading=sorted(outcomes, key=lambda outcome: -outcome.probability)[:LEADING_OPTIONS],
                sparkline=line,
                result=results.get(market.pk),
                proposal=proposals.get(market.pk),
            )
        )
    return cards


def market_list_page(
    *,
    search: str = "",
    category: str = "",
    status: str = "",
    sort: str = "volume",
    page_number: int | str | None = 1,
    drafts: Drafts = Drafts.HIDDEN,
) -> tuple[Page, list[MarketCard]]:
    markets = market_list(drafts=drafts, search=search, category=category, status=status, sort=sort)
    page = Paginator(markets, PAGE_SIZE).get_page(page_number)
    return page, market_cards(list(page.object_list))
