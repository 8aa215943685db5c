"""Reads of limit orders: a market's aggregated, anonymous order book, and a user's own orders."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from markets.models import LimitOrder, Trade


@dataclass(frozen=True)
class BookLevel:
    outcome: str
    outcome_label: str
    side: str
    limit: Decimal
    # What rests at this limit: credits for buys, shares for sells.
    size: Decimal
    orders: int

    @property
    def unit(self) -> str:
        return "credits" if self.side == Trade.Side.BUY else "shares"


def order_book(*, market_id: int, now: datetime | None = None) -> list[BookLevel]:
    """Resting size per price level, per outcome and side, without owners: buys from the highest limit down, sells
    from the lowest up (the most eager first). Orders past their expiry are left out, swept or not."""
    now = now or timezone.now()
    rows = (
        LimitOrder.objects.filter(market_id=market_id, status=LimitOrder.Status.OPEN)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values("outcome__index", "outcome__code", "outcome__label", "side", "limit_probability")
        .annotate(size=Sum("remaining"), orders=Count("id"))
    )
    levels = sorted(
        rows,
        key=lambda row: (
            row["outcome__index"],
            row["side"],
            -row["limit_probability"] if row["side"] == Trade.Side.BUY else row["limit_probability"],
        ),
    )
    return [
        BookLevel(
            outcome=row["outcome__code"],
            outcome_label=row["outcome__label"],
            side=row["side"],
            limit=row["limit_probability"],
            size=row["size"],
            orders=row["orders"],
        )
        for row in levels
    ]


def user_orders(*, user_id: int, open_only: bool = False, market_id: int | None = None) -> QuerySet[LimitOrder]:
    """The user's orders, newest first, with their market and outcome."""
    orders = LimitOrder.objects.filter(user_id=user_id).select_related("market", "outcome")
    if open_only:
        orders = orders.filter(status=LimitOrder.Status.OPEN)
    if market_id is not None:
        orders = orders.filter(market_id=market_id)
    return orders.order_by("-created_at", "-id")
