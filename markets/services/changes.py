"""Callbacks run after a change to a market's prices or state commits.

Trades, opening, closing, editing, resolving and settling all announce the change here; the price cache
(registered in MarketsConfig.ready) rebuilds the market's snapshot, so a reader never sees a closed
market as open or a resolved one as resolving for longer than the commit takes, and the live stream
(markets.services.stream) publishes the change's events.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction

from markets.models import Market, Outcome, Trade


@dataclass(frozen=True)
class TradeChange:
    """What a trade committed, as it stood under the market lock: enough for a callback to update the
    market's cached snapshot without reading the database again.

    `version` is the id of the trade's price point, `previous_version` the one it followed (0 for none):
    a callback may only build on a cached snapshot of exactly `previous_version`."""

    market: Market
    outcomes: list[Outcome]
    # The committed trade, with its outcome and user (the live stream publishes its public fields).
    trade: Trade
    version: int
    previous_version: int
    updated_at: datetime
    # True when the trade gave the market a trader it did not have.
    new_trader: bool


MarketChangeCallback = Callable[[int, TradeChange | None], None]

# Each callback takes the market id and, after a trade, the TradeChange (None after any other change).
market_change_callbacks: list[MarketChangeCallback] = []
# The batch form of a callback, for many markets changed in one transaction (markets_changed): it takes their ids.
# A callback without one runs once per market.
market_change_batches: dict[MarketChangeCallback, Callable[[list[int]], None]] = {}


def market_changed(*, market_id: int, trade: TradeChange | None = None) -> None:
    """Schedules every callback for after the current transaction commits (at once outside one)."""
    for callback in market_change_callbacks:
        transaction.on_commit(partial(callback, market_id, trade))


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
