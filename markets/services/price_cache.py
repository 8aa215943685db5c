"""Keeps the price cache (markets.cache) fresh: the market_changed callback registered in MarketsConfig.ready.

It sits above both the cache and the price selectors, which read through the cache, so neither has to
import the other."""

import logging

from markets import cache as price_cache
from markets.selectors.prices import market_snapshot_build, market_snapshot_from, market_snapshots_build
from markets.services.changes import TradeChange
from markets.snapshot import MarketSnapshot

logger = logging.getLogger(__name__)


def prices_refresh(market_id: int, change: TradeChange | None = None) -> None:
    """market_changed callback: refreshes the market's cached snapshot and starts a new list generation.

    After trades (a trade and the fills it triggered, or an order's marketable part and its fills: one TradeChange)
    the new snapshot is built from what they had in hand under the market lock (no database read, no cache read);
    otherwise it is rebuilt from the database. It runs after the trades committed, so it must never raise: a
    failure here would turn a successful trade into an error response. After trades, a snapshot that cannot be
    built is deleted instead; after any change, cached market lists start a new generation.
    """
    snapshot = prices_snapshot(market_id, change)
    if snapshot is not None:
        key = price_cache.snapshot_key(snapshot["market"]["slug"])
        price_cache.snapshot_store(key, snapshot, newer_only=change is not None)
    else:
        price_cache.list_generation_bump()


def prices_snapshot(market_id: int, change: TradeChange | None) -> MarketSnapshot | None:
    """The market's new snapshot, rendered, to store as prices_refresh does (stored only if newer when `change` is
    given); None when it could not be built (logged; the stale one deleted where its key is known: store nothing,
    start a new list generation) or the market has none. Never raises."""
    try:
        if change is None:
            snapshot = market_snapshot_build(market_id=market_id)
        else:
            # The trades' rows hold the whole snapshot: the market as the last write moved it (volume, trader count)
            # and its outcomes. It passed trading_check under the lock, so the market was open, and an open market has
            # no resolution and no live proposal (proposing or resolving closes it, under the same lock). Stored only
            # if newer than the stored one: hot-market callbacks run in any order after their commits.
            snapshot = market_snapshot_from(
                market=change.market,
                outcomes=change.outcomes,
                version=change.version,
                updated_at=change.updated_at,
                trader_count=change.market.trader_count,
                resolution=None,
                proposal=None,
            )
        return None if snapshot is None else price_cache.snapshot_rendered(snapshot)
    except Exception:
        logger.exception("Could not rebuild the price snapshot of market %s", market_id)
        # A stale snapshot must not outlive the change: drop it where its key is known, and start a
        # new list generation either way; readers then go to the database.
        if change is not None:
            price_cache.cache_delete(price_cache.snapshot_key(change.market.slug))
        return None


def prices_refresh_many(market_ids: list[int]) -> None:
    """The batch form of prices_refresh (markets.services.changes.markets_changed): every market's snapshot
    rebuilt from the database in a fixed number of queries and stored in one round trip, then one new list
    generation. Like prices_refresh it runs after the commit and never raises: if the batch fails, each market
    is refreshed on its own."""
    try:
        snapshots = [
            price_cache.snapshot_rendered(snapshot) for snapshot in market_snapshots_build(market_ids=market_ids)
        ]
    except Exception:
        logger.exception("Could not rebuild the price snapshots of %d markets at once; one by one", len(market_ids))
        for market_id in market_ids:
            prices_refresh(market_id)
        return
    price_cache.snapshots_store(
        {price_cache.snapshot_key(snapshot["market"]["slug"]): snapshot for snapshot in snapshots}
    )
    if not snapshots:
        price_cache.list_generation_bump()
