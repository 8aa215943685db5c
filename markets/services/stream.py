"""Publishes market events to the live stream (markets.stream): the market_changed callback registered in
MarketsConfig.ready, so it runs only after a change commits and never for one that rolled back.

After trades it publishes a `trade` event for each, in the order written (the fields the public trade list
shows, and `fill`: the trade placed first, then each fill of a resting limit order it triggered), then one
`price` event (the probabilities after the last), from what the trades had in hand under the market lock (only
the usernames of the filled orders' owners are read). After any other change it reads the market as it now
stands and publishes a `price` event if its price version is newer than the last one published, and a `status`
event if its status differs from the last one published: the status publisher knows no transition by name, so a
new status (halted, proposed, ...) is published as soon as a service that sets it announces the change with
market_changed. Two statuses are the stream's names for a state of a market rather than Market.status: `halted`
(an open market whose trading staff halted) and `proposed` (a market with a live resolution proposal, open to
challenge or challenged; it reads `closed` in the API).
"""

import functools
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from accounts.models import User
from config.core.cache import UNREACHABLE
from config.core.redis_scripts import ScriptCall, redis_commands_run
from markets.models import Market, Outcome, PricePoint, Proposal, Trade
from markets.services.changes import TradeChange
from markets.stream.events import (
    PUBLISH_SCRIPT,
    PUBLISH_SCRIPT_SHA,
    STATE_SECONDS,
    state_key,
    stream_key,
    trimmed_key,
)

logger = logging.getLogger(__name__)

HALTED = "halted"
PROPOSED = "proposed"


@functools.cache
def _client(url: str) -> Any:
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


def stream_redis() -> Any:
    """The Redis of the stream (REDIS_URL), one connection pool per process."""
    return _client(settings.REDIS_URL)


def timestamp(moment: datetime) -> str:
    """A time as the API writes it (ISO 8601, UTC, `Z`)."""
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def money(value: Decimal) -> str:
    return f"{value:.6f}"


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _probabilities(codes: list[str], values: list[float]) -> dict[str, float]:
    return dict(zip(codes, values, strict=False))


def trade_event_data(trade: Trade, codes: list[str], *, username: str, fill: bool) -> dict[str, Any]:
    """A trade as the public trade list shows it (markets.apis.common.TradeOutputSerializer), and whether it was
    the fill of a resting limit order (by a trade of someone else's) rather than a trade its owner placed, and the
    limit order it executed (its fill, or its marketable part), if any."""
    return {
        "id": trade.pk,
        "market": trade.market.slug,
        "outcome": trade.outcome.code,
        "side": trade.side,
        "shares": money(trade.shares),
        "amount": money(trade.amount),
        "average_price": f"{trade.average_price:.6f}",
        "probabilities_before": _probabilities(codes, trade.probabilities_before),
        "probabilities_after": _probabilities(codes, trade.probabilities_after),
        "username": username,
        "created_at": timestamp(trade.created_at),
        # A trade is published as it commits; voiding comes later, after the answer is known.
        "voided_at": None,
        "fill": fill,
        "order": trade.order_id,
    }


def price_event_data(
    *, slug: str, version: int, outcomes: list[Outcome], volume: Decimal, updated_at: datetime
) -> dict[str, Any]:
    return {
        "market": slug,
        "version": version,
        "probabilities": {outcome.code: outcome.probability for outcome in outcomes},
        "volume": money(volume),
        "updated_at": timestamp(updated_at),
    }


def stream_publish(market_id: int, change: TradeChange | None = None) -> None:
    """market_change_callbacks entry: publishes what the committed change did. Like the price cache's
    callback it runs after the commit, so it never raises: with Redis unreachable the events are lost
    (logged), and clients read the current state when they reconnect."""
    try:
        call = stream_publish_call(market_id, change)
        if call is None:
            return
        (reply,) = redis_commands_run(stream_redis(), [call])
        if isinstance(reply, Exception):
            raise reply
    except UNREACHABLE:
        stream_unreachable(market_id)
    except Exception:
        stream_failed(market_id)


def stream_unreachable(market_id: int) -> None:
    logger.warning("Stream unreachable: the events of a change to market %s are not published", market_id)


def stream_failed(market_id: int) -> None:
    logger.exception("Could not publish the events of a change to market %s", market_id)


def stream_publish_call(market_id: int, change: TradeChange | None = None) -> ScriptCall | None:
    """The run of PUBLISH_SCRIPT that publishes what the change did (None when there is nothing to publish), for
    stream_publish or for a caller that sends it with other commands in one round trip (markets.services.announce).
    It runs by its SHA1; a Redis that does not have it yet (started, restarted, flushed) answers NOSCRIPT, and the
    script is sent in full once (EVAL caches it there for the next change): config.core.redis_scripts."""
    arguments = _change_arguments(market_id, change)
    if arguments is None:
        return None
    return ScriptCall(
        text=PUBLISH_SCRIPT,
        sha=PUBLISH_SCRIPT_SHA,
        keys=[stream_key(), state_key(market_id), trimmed_key()],
        args=[
            settings.FORECASTLE_STREAM_MAX_EVENTS,
            settings.FORECASTLE_STREAM_RETENTION_SECONDS * 1000,
            STATE_SECONDS,
            *arguments,
        ],
    )


def _change_arguments(market_id: int, change: TradeChange | None) -> list[str | int] | None:
    """The script's arguments from the slug on: slug, price version and data, status and data, each trade's data."""
    if change is not None:
        market = change.market
        codes = [outcome.code for outcome in change.outcomes]
        price = price_event_data(
            slug=market.slug,
            version=change.version,
            outcomes=change.outcomes,
            volume=market.volume,
            updated_at=change.updated_at,
        )
        usernames = _usernames(change.written)
        trades = [
            _json(trade_event_data(trade, codes, username=usernames[trade.user_id], fill=fill))
            for written, fill in ((change.trades, False), (change.fills, True))
            for trade in written
        ]
        return [market.slug, change.version, _json(price), "", "", *trades]
    latest = PricePoint.objects.filter(market=OuterRef("pk")).order_by("-created_at", "-id")
    current = (
        Market.objects.filter(pk=market_id)
        .exclude(status=Market.Status.DRAFT)
        .annotate(
            version=Subquery(latest.values("id")[:1]),
            version_at=Subquery(latest.values("created_at")[:1]),
            proposed=Exists(Proposal.objects.filter(market=OuterRef("pk"), state__in=Proposal.LIVE_STATES)),
        )
        .values("slug", "status", "halted_at", "volume", "created_at", "version", "version_at", "proposed")
        .first()
    )
    if current is None:
        return None
    outcomes = list(Outcome.objects.filter(market_id=market_id).order_by("index"))
    version = current["version"] or 0
    price = price_event_data(
        slug=current["slug"],
        version=version,
        outcomes=outcomes,
        volume=current["volume"],
        updated_at=current["version_at"] or current["created_at"],
    )
    # Halted is an open market whose trading staff stopped (Market.halted_at), proposed a market with a live
    # proposal (Proposal.LIVE_STATES): the stream names each a status. Upholding a challenge sets the proposal
    # aside, so the market is published `closed` again.
    halted = current["status"] == Market.Status.OPEN and current["halted_at"] is not None
    state = PROPOSED if current["proposed"] else HALTED if halted else current["status"]
    status = {"market": current["slug"], "status": state, "at": timestamp(timezone.now())}
    return [current["slug"], version, _json(price), state, _json(status)]


def _usernames(trades: list[Trade]) -> dict[int, str]:
    """The username of each trade's user by id: those in hand (the trader's), the others (the owners of the orders
    a trade filled) in one query."""
    usernames = {trade.user_id: trade.user.username for trade in trades if Trade.user.is_cached(trade)}
    missing = {trade.user_id for trade in trades} - usernames.keys()
    if missing:
        usernames |= dict(User.objects.filter(pk__in=missing).values_list("pk", "username"))
    return usernames
