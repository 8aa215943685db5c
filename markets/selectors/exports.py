"""Reads for bulk exports: a market's trades and price points as rows, streamed from a server-side cursor.

Nothing here loads a whole table: each function yields rows fetched EXPORT_CHUNK at a time (`.iterator()`,
a named cursor on PostgreSQL), so a million-trade export holds one chunk in memory at a time. Traders appear
as a pseudonym per market (`trader_pseudonym`): stable within a market, so a researcher can follow one
trader's trades, but different across markets and not derivable from a username without the secret key.
"""

import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import TypedDict

from django.utils.crypto import salted_hmac

from markets.models import Comment, Market, Outcome, Payout, Position, PricePoint, Resolution, Trade

# Rows fetched per round trip to the server-side cursor.
EXPORT_CHUNK = 2000


def trader_pseudonym(*, market_id: int, user_id: int) -> str:
    return salted_hmac("forecastle.exports.trader", f"{market_id}:{user_id}").hexdigest()[:16]


def iso(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


class TradeRow(TypedDict):
    id: int
    time: str
    outcome: str
    side: str
    shares: str
    amount: str
    trader: str
    probabilities_after: list[float]


def outcome_codes(*, market_id: int) -> list[str]:
    return list(Outcome.objects.filter(market_id=market_id).order_by("index").values_list("code", flat=True))


def market_trade_rows(*, market_id: int) -> Iterator[TradeRow]:
    """Every trade of the market, oldest first."""
    codes = dict(Outcome.objects.filter(market_id=market_id).values_list("pk", "code"))
    # One HMAC per trader, not per trade.
    traders: dict[int, str] = {}
    rows = (
        Trade.objects.filter(market_id=market_id)
        .order_by("created_at", "id")
        .values_list("id", "created_at", "outcome_id", "side", "shares", "amount", "user_id", "probabilities_after")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for trade_id, created_at, outcome_id, side, shares, amount, user_id, after in rows:
        yield {
            "id": trade_id,
            "time": iso(created_at),
            "outcome": codes[outcome_id],
            "side": side,
            "shares": str(shares),
            "amount": str(amount),
            "trader": traders.get(user_id)
            or traders.setdefault(user_id, trader_pseudonym(market_id=market_id, user_id=user_id)),
            "probabilities_after": list(after),
        }


class PriceRow(TypedDict):
    time: str
    # The trade that moved the price there; None for the opening price.
    trade_id: int | None
    probabilities: list[float]


def market_price_rows(*, market_id: int) -> Iterator[PriceRow]:
    """Every price point of the market (the opening, then one per trade), oldest first."""
    rows = (
        PricePoint.objects.filter(market_id=market_id)
        .order_by("created_at", "id")
        .values_list("created_at", "trade_id", "probabilities")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for created_at, trade_id, probabilities in rows:
        yield {"time": iso(created_at), "trade_id": trade_id, "probabilities": list(probabilities)}


def resolved_markets() -> list[Market]:
    """Markets whose current resolution is settled (resolved or annulled), oldest resolution first."""
    return list(
        Market.objects.filter(status__in=[Market.Status.RESOLVED, Market.Status.ANNULLED])
        .prefetch_related("outcomes")
        .order_by("resolved_at", "id")
    )


def current_resolution(*, market_id: int) -> Resolution | None:
    return Resolution.objects.filter(market_id=market_id, is_current=True).select_related("outcome").first()


def payouts_json(resolution: Resolution | None, codes: list[str]) -> str:
    if resolution is None or resolution.payouts is None:
        return ""
    return json.dumps(dict(zip(codes, [str(Decimal(value)) for value in resolution.payouts], strict=False)))


def user_trade_rows(*, user_id: int) -> Iterator[tuple[object, ...]]:
    """The user's own trades, oldest first: (id, time, market, outcome, side, shares, amount)."""
    rows = (
        Trade.objects.filter(user_id=user_id)
        .order_by("created_at", "id")
        .values_list("id", "created_at", "market__slug", "outcome__code", "side", "shares", "amount")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for trade_id, created_at, market, outcome, side, shares, amount in rows:
        yield trade_id, iso(created_at), market, outcome, side, str(shares), str(amount)


def user_position_rows(*, user_id: int) -> Iterator[tuple[object, ...]]:
    """The user's positions: (market, outcome, shares, net cost, market status)."""
    rows = (
        Position.objects.filter(user_id=user_id)
        .order_by("market_id", "outcome__index")
        .values_list("market__slug", "outcome__code", "shares", "net_cost", "market__status")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for market, outcome, shares, net_cost, status in rows:
        yield market, outcome, str(shares), str(net_cost), status


def user_payout_rows(*, user_id: int) -> Iterator[tuple[object, ...]]:
    """What settlements paid the user: (market, resolution id, resolution state, amount, time)."""
    rows = (
        Payout.objects.filter(user_id=user_id)
        .order_by("created_at", "id")
        .values_list("market__slug", "resolution_id", "resolution__state", "amount", "created_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for market, resolution_id, state, amount, created_at in rows:
        yield market, resolution_id, state, str(amount), iso(created_at)


def user_comment_rows(*, user_id: int) -> Iterator[tuple[object, ...]]:
    """Everything the user wrote, oldest first, deleted and hidden comments included (they are still theirs):
    (id, time, market, parent id, body as written, edited, deleted, hidden)."""
    rows = (
        Comment.objects.filter(author_id=user_id)
        .order_by("created_at", "id")
        .values_list("id", "created_at", "market__slug", "parent_id", "body", "edited_at", "deleted_at", "hidden_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for comment_id, created_at, market, parent_id, body, edited_at, deleted_at, hidden_at in rows:
        yield (
            comment_id,
            iso(created_at),
            market,
            parent_id or "",
            body,
            iso(edited_at),
            iso(deleted_at),
            iso(hidden_at),
        )
