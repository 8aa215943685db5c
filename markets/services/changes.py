"""Callbacks run after a change to a market's prices or state commits.

Trades, closing, editing, resolving and settling all announce the change here; the price cache
(registered in MarketsConfig.ready) rebuilds the market's snapshot, so a reader never sees a closed
market as open or a resolved one as resolving for longer than the commit takes.
"""

from collections.abc import Callable
from functools import partial

from django.db import transaction

market_change_callbacks: list[Callable[[int], None]] = []


def market_changed(*, market_id: int) -> None:
    """Schedules every callback for after the current transaction commits (at once outside one)."""
    for callback in market_change_callbacks:
        transaction.on_commit(partial(callback, market_id))
