"""Reads of trades and positions: a market's recent trades, a user's portfolio and history."""

from decimal import Decimal

from django.db.models import JSONField, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum

from accounts.models import MoneyField, User
from accounts.money import ZERO, credits_to_receive
from markets.models import Outcome, Position, Resolution, Trade


def _with_market_outcomes(trades: QuerySet[Trade]) -> QuerySet[Trade]:
    # Outcome codes label the probability vectors; one prefetch per page, whatever its size.
    return trades.select_related("market", "outcome", "user").prefetch_related(
        Prefetch("market__outcomes", queryset=Outcome.objects.order_by("index"))
    )


def market_trades(*, market_id: int) -> QuerySet[Trade]:
    return _with_market_outcomes(Trade.objects.filter(market_id=market_id))


def user_trades(*, user: User, order_id: int | None = None) -> QuerySet[Trade]:
    """The user's trades; with `order_id`, only those that order executed (its fills, and the part that traded
    when it was placed): none for someone else's order."""
    trades = Trade.objects.filter(user=user)
    if order_id is not None:
        trades = trades.filter(order_id=order_id)
    return _with_market_outcomes(trades)


def user_positions(*, user: User) -> QuerySet[Position]:
    """Positions still held, or closed with a profit or loss on the books; each annotated with its market's settled
    resolution (`settled_kind`, `settled_payouts`, null until the settlement has paid) and the user's net cost over
    the whole market (`market_net_cost`), which `settled_value` needs."""
    settled = Resolution.objects.filter(
        market_id=OuterRef("market_id"), is_current=True, state=Resolution.State.SETTLED
    )
    market_net_cost = (
        Position.objects.filter(user_id=OuterRef("user_id"), market_id=OuterRef("market_id"))
        .values("user_id")
        .annotate(total=Sum("net_cost"))
        .values("total")
    )
    return (
        Position.objects.filter(user=user)
        .filter(Q(shares__gt=0) | ~Q(net_cost=0))
        .select_related("market", "outcome")
        .annotate(
            settled_kind=Subquery(settled.values("kind")[:1]),
            settled_payouts=Subquery(settled.values("payouts")[:1], output_field=JSONField()),
            market_net_cost=Subquery(market_net_cost, output_field=MoneyField()),
        )
    )


def settled_value(position: Position) -> Decimal | None:
    """What the settlement paid for this position (a `user_positions` row), or None while the market is unsettled.

    A winning or split outcome: its shares times what one share paid, rounded down as the settlement rounds.
    Annulled: the settlement refunded the user's net cost over the whole market (nothing when that is negative,
    a trader in profit keeps it), so each position is worth its own net cost then, or nothing."""
    kind = getattr(position, "settled_kind", None)
    if kind is None:
        return None
    if kind == Resolution.Kind.ANNULLED:
        total = getattr(position, "market_net_cost", None) or ZERO
        return position.net_cost if total >= ZERO else ZERO
    payouts = getattr(position, "settled_payouts", None) or []
    index = position.outcome.index
    per_share = Decimal(str(payouts[index])) if index < len(payouts) else ZERO
    return credits_to_receive(position.shares * per_share)
