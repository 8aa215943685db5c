"""The market_changed callback registered in MarketsConfig.ready: the price cache's refresh
(markets.services.price_cache) and the live stream's publication (markets.services.stream) of a committed change.

After trades, both are one Redis script each, built from what the trades had in hand, and they go to Redis in one
round trip (config.core.redis_scripts): the snapshot's store first, then the events, so a client that reads the
market on a `price` event finds the snapshot of that version or a newer one. That needs the cache and the stream on
one Redis server, as the settings have them (REDIS_URL); otherwise, and after any other change (which reads the
database), each runs on its own, the cache first. Like each of them it runs after the commit and never raises.
"""

import logging

from django.conf import settings

from config.core.cache import UNREACHABLE, cache_unreachable
from config.core.redis_scripts import ScriptCall, redis_commands_run
from markets import cache as price_cache
from markets.services.changes import TradeChange
from markets.services.price_cache import prices_refresh, prices_refresh_many, prices_snapshot
from markets.services.stream import stream_failed, stream_publish, stream_publish_call, stream_unreachable

logger = logging.getLogger(__name__)


def market_change_announce(market_id: int, change: TradeChange | None = None) -> None:
    """market_change_callbacks entry: the market's new snapshot stored and the change's events published, in one
    Redis round trip after trades."""
    redis = price_cache.redis_cache()
    if change is None or redis is None or redis[0]._servers[0] != settings.REDIS_URL:  # type: ignore[attr-defined]
        prices_refresh(market_id, change)
        stream_publish(market_id, change)
        return
    backend, client = redis
    snapshot = prices_snapshot(market_id, change)
    # What each script is for, to say which one Redis refused.
    calls: dict[str, ScriptCall] = {}
    if snapshot is not None:
        key = price_cache.snapshot_key(snapshot["market"]["slug"])
        calls["snapshot's store"] = price_cache.snapshot_store_call(backend, key, snapshot, newer_only=True)
    try:
        publish = stream_publish_call(market_id, change)
    except Exception:
        stream_failed(market_id)
        publish = None
    if publish is not None:
        calls["stream's events"] = publish
    try:
        replies = redis_commands_run(client, list(calls.values())) if calls else []
    except UNREACHABLE:
        if snapshot is not None:
            cache_unreachable("write of a market snapshot and invalidation of the cached market lists")
        if publish is not None:
            stream_unreachable(market_id)
        replies = []
    for purpose, reply in zip(calls, replies, strict=False):
        if isinstance(reply, Exception):
            logger.error("Redis refused the %s after a change to market %s: %s", purpose, market_id, reply)
    if snapshot is None:
        price_cache.list_generation_bump()


def market_changes_announce(market_ids: list[int]) -> None:
    """The batch form (markets.services.changes.markets_changed): the snapshots rebuilt together, then each
    market's events published."""
    prices_refresh_many(market_ids)
    for market_id in market_ids:
        stream_publish(market_id)
