"""The shapes of the price reads: a market summary (a list row), its detail and its maker state, together a
market snapshot, which the price cache (markets.cache) stores and every API price read serves.

TypedDicts, not classes: a snapshot is plain data that goes to Redis and back and into the API's serializers
as it is, and a dict pickles the same as before, so cached entries keep their format (markets.cache.FORMAT).
The selectors build them (markets.selectors.prices); nothing else does.
"""

from datetime import datetime
from decimal import Decimal
from typing import NotRequired, TypedDict


class OutcomeSummary(TypedDict):
    code: str
    label: str
    probability: float
    # Shares of this outcome held by traders (the maker's q).
    shares_outstanding: Decimal


class MarketSummary(TypedDict):
    """What a market list row shows."""

    slug: str
    question: str
    category: str
    kind: str
    status: str
    volume: Decimal
    opens_at: datetime | None
    closes_at: datetime
    created_at: datetime
    # When the probabilities last changed (the creation, before any trade).
    updated_at: datetime
    # Staff halted trading (an open market only); the reason is shown to traders.
    halted: bool
    halt_reason: str
    outcomes: list[OutcomeSummary]


class ResolutionSummary(TypedDict):
    kind: str
    outcome: str | None
    # Payout per share by outcome code; None when annulled.
    payouts: dict[str, str] | None
    reason: str
    state: str
    created_at: datetime


class ProposalSummary(TypedDict):
    """The market's live proposal (open to challenge, or challenged and awaiting staff)."""

    id: int
    kind: str
    outcome: str | None
    payouts: dict[str, str] | None
    reason: str
    source_url: str
    known_at: datetime | None
    state: str
    created_at: datetime
    challenge_until: datetime
    challenge_count: int


class MarketDetail(MarketSummary):
    """What the market detail endpoint shows."""

    description: str
    resolution_criteria: str
    liquidity: Decimal
    trader_count: int
    closed_at: datetime | None
    resolved_at: datetime | None
    resolution: ResolutionSummary | None
    proposal: ProposalSummary | None


class MakerOutcome(TypedDict):
    code: str
    index: int
    initial_probability: float
    shares_outstanding: Decimal


class MakerState(TypedDict):
    """What pricing needs (markets.pricing.price_trade): the LMSR's b and each outcome's q and opening price."""

    liquidity: Decimal
    outcomes: list[MakerOutcome]


class ChartSeries(TypedDict):
    label: str
    # One probability per time of the chart; None where the outcome did not exist yet.
    values: list[float | None]


class PriceChart(TypedDict):
    """The market page's chart, as uPlot takes it: times in unix seconds and one series per outcome."""

    t: list[int]
    series: list[ChartSeries]


class LiveOutcome(TypedDict):
    code: str
    label: str
    probability: float


class LivePrices(TypedDict):
    """What the market page's live fragment shows (cached per price version and range)."""

    outcomes: list[LiveOutcome]
    chart: PriceChart
    volume: str


class MarketSnapshot(TypedDict):
    id: int
    # The id of the market's latest price point: a new one means new prices (0 before any).
    version: int
    updated_at: datetime
    market: MarketDetail
    state: MakerState
    # Response bodies made from this snapshot when it was stored, with their ETags, by name
    # (markets.cache.snapshot_rendered): a cached read sends them as they are.
    rendered: NotRequired[dict[str, tuple[bytes, str]]]
