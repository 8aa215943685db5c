"""Reads for the portfolio page: positions valued at current prices, profit split into realised
and unrealised (average-cost basis), trade history, and positions in finished markets."""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.paginator import Page, Paginator

from accounts.models import User
from accounts.money import ZERO, average_price, credits, position_value
from accounts.selectors import user_balance
from markets.models import Market, Outcome, Payout, Position, Resolution, Trade

TRADES_PER_PAGE = 25
FINISHED = (Market.Status.RESOLVED, Market.Status.ANNULLED)
# The long texts of a market, which the portfolio never shows: not loaded once per position and trade row.
UNSHOWN_MARKET_TEXT = ("market__description", "market__resolution_criteria")


@dataclass
class PortfolioPosition:
    market: Market
    outcome: Outcome
    shares: Decimal
    net_cost: Decimal
    # Cost of the shares still held, on the average-cost method.
    cost_basis: Decimal
    realised: Decimal
    value: Decimal

    @property
    def unrealised(self) -> Decimal:
        return self.value - self.cost_basis

    @property
    def average_price(self) -> Decimal:
        return average_price(self.cost_basis, self.shares)


@dataclass
class FinishedMarket:
    """A resolved or annulled market the user traded in, with what its settlement paid them."""

    market: Market
    resolution: Resolution | None
    # None until the settlement has paid (a Payout row of the current, settled resolution).
    payout: Decimal | None
    positions: list[PortfolioPosition] = field(default_factory=list)

    @property
    def net_cost(self) -> Decimal:
        return sum((position.net_cost for position in self.positions), ZERO)

    @property
    def profit(self) -> Decimal | None:
        return None if self.payout is None else self.payout - self.net_cost


@dataclass
class Portfolio:
    balance: Decimal
    open_positions: list[PortfolioPosition] = field(default_factory=list)
    closed_out_positions: list[PortfolioPosition] = field(default_factory=list)
    finished_markets: list[FinishedMarket] = field(default_factory=list)

    @property
    def positions_value(self) -> Decimal:
        return sum((position.value for position in self.open_positions), ZERO)

    @property
    def realised(self) -> Decimal:
        running = self.open_positions + self.closed_out_positions
        settled = sum((group.profit or ZERO for group in self.finished_markets), ZERO)
        return sum((position.realised for position in running), ZERO) + settled

    @property
    def unrealised(self) -> Decimal:
        return sum((position.unrealised for position in self.open_positions), ZERO)

    @property
    def net_worth(self) -> Decimal:
        return self.balance + self.positions_value


def _cost_basis(user: User) -> dict[int, tuple[Decimal, Decimal]]:
    """Per outcome: (cost of the shares still held, profit realised by sales), average-cost method.

    Replays the user's trades in one query; a sale releases the average cost of the shares sold.
    """
    held: dict[int, Decimal] = defaultdict(Decimal)
    basis: dict[int, Decimal] = defaultdict(Decimal)
    realised: dict[int, Decimal] = defaultdict(Decimal)
    # A voided trade was undone by compensating entries (markets.services.voiding): as if it never happened.
    trades = Trade.objects.filter(user_id=user.pk, voided_at__isnull=True).order_by("created_at", "id")
    for outcome_id, side, shares, amount in trades.values_list("outcome_id", "side", "shares", "amount"):
        if side == Trade.Side.BUY:
            held[outcome_id] += shares
            basis[outcome_id] += amount
            continue
        released = credits(basis[outcome_id] * shares / held[outcome_id]) if held[outcome_id] else ZERO
        realised[outcome_id] += amount - released
        basis[outcome_id] -= released
        held[outcome_id] -= shares
    return {outcome_id: (basis[outcome_id], realised[outcome_id]) for outcome_id in held}


def finished_market_settlements(*, user: User, market_ids: list[int]) -> dict[int, tuple[Resolution, Decimal | None]]:
    """Per finished market: its current resolution and what its settlement paid the user.

    The payout is None while the resolution awaits settlement (the settlement task writes Payout rows).
    """
    resolutions = {
        resolution.market_id: resolution
        for resolution in Resolution.objects.filter(market_id__in=market_ids, is_current=True).select_related("outcome")
    }
    paid = dict(
        Payout.objects.filter(user_id=user.pk, market_id__in=market_ids, resolution__is_current=True).values_list(
            "market_id", "amount"
        )
    )
    return {
        market_id: (resolution, paid.get(market_id, ZERO) if resolution.state == Resolution.State.SETTLED else None)
        for market_id, resolution in resolutions.items()
    }


def portfolio_get(*, user: User) -> Portfolio:
    """Everything on the portfolio page but the trade history, in at most six queries."""
    portfolio = Portfolio(balance=user_balance(user=user))
    positions = (
        Position.objects.filter(user_id=user.pk)
        .exclude(shares=ZERO, net_cost=ZERO)
        .select_related("market", "outcome")
        .defer(*UNSHOWN_MARKET_TEXT)
        .order_by("market__closes_at", "market_id", "outcome__index")
    )
    rows = list(positions)
    if not rows:
        return portfolio
    bases = _cost_basis(user)
    finished_ids = sorted({row.market_id for row in rows if row.market.status in FINISHED})
    settlements = finished_market_settlements(user=user, market_ids=finished_ids) if finished_ids else {}
    finished: dict[int, FinishedMarket] = {}
    for row in rows:
        cost_basis, realised = bases.get(row.outcome_id, (row.net_cost, ZERO))
        is_finished = row.market.status in FINISHED
        value = ZERO if is_finished else position_value(row.shares, row.outcome.probability)
        entry = PortfolioPosition(
            market=row.market,
            outcome=row.outcome,
            shares=row.shares,
            net_cost=row.net_cost,
            cost_basis=cost_basis,
            realised=realised,
            value=value,
        )
        if is_finished:
            resolution, payout = settlements.get(row.market_id, (None, None))
            group = finished.setdefault(
                row.market_id, FinishedMarket(market=row.market, resolution=resolution, payout=payout)
            )
            group.positions.append(entry)
        elif row.shares > ZERO:
            portfolio.open_positions.append(entry)
        else:
            # Sold out of a market still running: the profit is realised, nothing is held.
            portfolio.closed_out_positions.append(entry)
    portfolio.finished_markets = list(finished.values())
    return portfolio


def portfolio_trades(*, user: User, page_number: int | str | None = 1) -> Page:
    trades = (
        Trade.objects.filter(user_id=user.pk)
        .select_related("market", "outcome")
        .defer(*UNSHOWN_MARKET_TEXT)
        .order_by("-created_at", "-id")
    )
    return Paginator(trades, TRADES_PER_PAGE).get_page(page_number)
