"""Callbacks run after a change to a market's prices or state commits.

Trades, opening, closing, editing, resolving and settling all announce the change here; the price cache
(registered in MarketsConfig.ready) rebuilds the market's snapshot, so a reader never sees a closed
market as open or a resolved one as resolving for longer than the commit takes, and the live stream
(markets.services.stream) publishes the change's events.
"""

from collections.abc import Callable
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


# Each callback takes the market id and, after a trade, the TradeChange (None after any other change).
market_change_callbacks: list[Callable[[int, TradeChange | None], None]] = []


def market_changed(*, market_id: int, trade: TradeChange | None = None) -> None:
    """Schedules every callback for after the current transaction commits (at once outside one)."""
    for callback in market_change_callbacks:
        transaction.on_commit(partial(callback, market_id, trade))
