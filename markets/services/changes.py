"""Callbacks run after a change to a market's prices or state commits.

Trades, opening, closing, editing, resolving and settling all announce the change here; the price cache
(registered in MarketsConfig.ready) rebuilds the market's snapshot, so a reader never sees a closed
market as open or a resolved one as resolving for longer than the commit takes, and the live stream
(markets.services.stream) publishes the change's events.

A transaction that trades announces every trade it wrote in one TradeChange (trade_change): the trade someone
placed, then each fill of a resting limit order it triggered (markets.services.fills), so that every callback
sees all of them, in order, from the same after-commit hook.
"""

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction

from markets.models import Market, Outcome, Trade
from markets.services.fills import Fill


@dataclass(frozen=True)
class TradeChange:
    """What the trades of one transaction committed on a market, as they stood under the market lock: enough for
    a callback to update the market's cached snapshot without reading the database again.

    `trades` are the trades placed (a trade, or a limit order's immediately marketable part), with their outcome
    and user; `fills` the trades of the resting orders they filled, in the order written, with their outcome and
    `order_id` (their user by id only). `market` (its volume and trader count) and `outcomes` are as the last of
    them left them.
    `version` is the id of the last one's price point, `previous_version` the one the first followed (0 for none):
    a callback may only build on a cached snapshot of exactly `previous_version`."""

    market: Market
    outcomes: list[Outcome]
    trades: list[Trade]
    fills: list[Trade]
    version: int
    previous_version: int
    # When the trades were made (the created_at of the last one, and of its price point).
    updated_at: datetime

    @property
    def written(self) -> list[Trade]:
        """Every trade, in the order written: the placed ones, then the fills."""
        return [*self.trades, *self.fills]


def trade_change(
    *,
    market: Market,
    outcomes: list[Outcome],
    trade: Trade,
    version: int,
    previous_version: int,
    fills: Sequence[Fill],
) -> TradeChange:
    """The announcement of a placed trade and the fills it triggered, in one transaction under the market's lock.

    `market` is as the trade left it (its volume and trader count count the trade), `outcomes` the rows in hand as
    the fills left them (the fill pass moves them), `version` the trade's price point and `previous_version` the one
    it followed. The market's copy in the announcement counts the fills too: their volume, and each owner they
    made a trader of the market (Fill.new_trader), as the fill pass's statement counted them."""
    by_id = {outcome.pk: outcome for outcome in outcomes}
    fill_trades = [
        Trade(
            pk=fill.trade_id,
            market=market,
            outcome=by_id[fill.order.outcome_id],
            user_id=fill.order.user_id,
            side=fill.quote.side,
            shares=fill.quote.shares,
            amount=fill.quote.amount,
            probabilities_before=fill.quote.probabilities_before,
            probabilities_after=fill.quote.probabilities_after,
            created_at=trade.created_at,
            order_id=fill.order.pk,
            fill=True,
        )
        for fill in fills
    ]
    if fills:
        market = copy.copy(market)
        market.volume += sum(fill.quote.amount for fill in fills)
        market.trader_count += sum(fill.new_trader for fill in fills)
    return TradeChange(
        market=market,
        outcomes=outcomes,
        trades=[trade],
        fills=fill_trades,
        version=fills[-1].price_point_id if fills else version,
        previous_version=previous_version,
        updated_at=trade.created_at,
    )


MarketChangeCallback = Callable[[int, TradeChange | None], None]

# Each callback takes the market id and, after trades, their TradeChange (None after any other change).
market_change_callbacks: list[MarketChangeCallback] = []
# The batch form of a callback, for many markets changed in one transaction (markets_changed): it takes their ids.
# A callback without one runs once per market.
market_change_batches: dict[MarketChangeCallback, Callable[[list[int]], None]] = {}


def market_changed(*, market_id: int, change: TradeChange | None = None) -> None:
    """Schedules every callback for after the current transaction commits (at once outside one). After trades,
    `change` carries all of them (trade_change); without it, the callbacks read the market as it now stands."""
    for callback in market_change_callbacks:
        transaction.on_commit(partial(callback, market_id, change))


def markets_changed(*, market_ids: Sequence[int]) -> None:
    """market_changed for many markets at once (no trade), after the commit: a callback with a batch form runs
    once for all of them (the price cache rebuilds their snapshots in a few queries), the others per market."""
    ids = list(market_ids)
    if not ids:
        return
    for callback in market_change_callbacks:
        batch = market_change_batches.get(callback)
        if batch is not None:
            transaction.on_commit(partial(batch, ids))
        else:
            for market_id in ids:
                transaction.on_commit(partial(callback, market_id, None))
