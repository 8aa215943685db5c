"""Reads of trades and positions: a market's recent trades, a user's portfolio and history."""

from django.db.models import Prefetch, Q, QuerySet

from accounts.models import User
from markets.models import Outcome, Position, Trade


def _with_market_outcomes(trades: QuerySet[Trade]) -> QuerySet[Trade]:
    # Outcome codes label the probability vectors; one prefetch per page, whatever its size.
    return trades.select_related("market", "outcome", "user").prefetch_related(
        Prefetch("market__outcomes", queryset=Outcome.objects.order_by("index"))
    )


def market_trades(*, market_id: int) -> QuerySet[Trade]:
    return _with_market_outcomes(Trade.objects.filter(market_id=market_id))


def user_trades(*, user: User) -> QuerySet[Trade]:
    return _with_market_outcomes(Trade.objects.filter(user=user))


def user_positions(*, user: User) -> QuerySet[Position]:
    """Positions still held, or closed with a profit or loss on the books."""
    return (
        Position.objects.filter(user=user).filter(Q(shares__gt=0) | ~Q(net_cost=0)).select_related("market", "outcome")
    )
