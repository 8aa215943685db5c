"""Trading: one service for buys and sells by shares, amount or target probability.

It takes a TradeRequest (markets.trade_request), parsed and checked at the edge, and prices it with
markets.pricing.price_trade. Lock order: the market row, then the wallet row. Locks are held for pricing
and writes only, inside one short transaction.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from accounts.models import LedgerTransaction, User
from accounts.money import ZERO
from accounts.selectors import user_balance
from accounts.services import ledger_post, wallet_lock
from markets.errors import IdempotencyConflict, InsufficientFunds, InsufficientShares, MarketClosed, PriceMoved
from markets.locks import market_lock
from markets.metrics import trade_observed
from markets.models import IdempotencyKey, Market, Outcome, Position, PricePoint, Trade
from markets.pricing import TradeQuote, price_trade
from markets.services.changes import TradeChange, market_changed
from markets.trade_request import TradeRequest

if TYPE_CHECKING:
    # A development dependency (django-stubs-ext): for the annotation only.
    from django_stubs_ext import WithAnnotations


class PreviousVersion(TypedDict):
    """What the trade's market lock also reads: the id of the price point the trade follows."""

    previous_version: int | None


@dataclass(frozen=True)
class TradeResult:
    trade: Trade
    probabilities: list[float]
    balance: Decimal
    position_shares: Decimal
    # True when an idempotency key matched an earlier request and nothing was traded now.
    replayed: bool = False


def _replay(user: User, key: str, fingerprint: str) -> TradeResult | None:
    record = IdempotencyKey.objects.select_related("trade").filter(user=user, key=key).first()
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was already used for a different request.")
    trade = record.trade
    position = Position.objects.filter(user=user, outcome_id=trade.outcome_id).first()
    balance = user_balance(user=user)
    return TradeResult(
        trade=trade,
        probabilities=list(trade.probabilities_after),
        balance=balance,
        position_shares=position.shares if position else ZERO,
        replayed=True,
    )


@trade_observed
def trade_execute(
    *,
    user: User,
    market: Market,
    request: TradeRequest,
    now: datetime | None = None,
) -> TradeResult:
    """Buys or sells as the request says, all or nothing.

    With an idempotency key, a retry of the same request returns the first result and a different
    request under the same key raises IdempotencyConflict.
    """
    fingerprint = request.fingerprint(market_id=market.pk)
    try:
        return _trade_execute_locked(user=user, market_id=market.pk, request=request, fingerprint=fingerprint, now=now)
    except IntegrityError:
        # The same key raced in from another market's lock: the other request won; report it.
        if request.idempotency_key is None:
            raise
        replay = _replay(user, request.idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay


@transaction.atomic
def _trade_execute_locked(
    *, user: User, market_id: int, request: TradeRequest, fingerprint: str, now: datetime | None
) -> TradeResult:
    # One round trip for the market's lock, its escrow (locked later, with the wallet, in id order: `of`
    # keeps the join from locking it now) and the price point the trade follows (see TradeChange).
    market: WithAnnotations[Market, PreviousVersion] = market_lock(
        market_id=market_id,
        query=Market.objects.select_related("escrow").annotate(
            previous_version=Subquery(
                PricePoint.objects.filter(market=OuterRef("pk")).order_by("-created_at", "-id").values("id")[:1]
            )
        ),
    )
    idempotency_key = request.idempotency_key
    if idempotency_key is not None:
        replay = _replay(user, idempotency_key, fingerprint)
        if replay is not None:
            return replay
    # A trade dated by its caller (demo history) may not be the market's latest price change.
    dated_by_caller = now is not None
    now = now or timezone.now()
    if not market.is_tradeable(now):
        raise MarketClosed("This market is closed for trading.")
    outcomes = list(market.outcomes.all())
    quote = price_trade(request=request, liquidity=market.liquidity, outcomes=outcomes)
    # A forecast may trade another outcome or side than the request names: the quote says which.
    outcome = next(o for o in outcomes if o.code == quote.outcome_code)
    side = quote.side
    wallet = wallet_lock(user_id=user.pk)
    # All the user's positions in this market (the market lock already serialises them): one tells
    # whether the trade adds a trader to the market, for the cached snapshot's trader count.
    held_positions = {
        row.outcome_id: row for row in Position.objects.select_for_update().filter(user=user, market_id=market.pk)
    }
    position = held_positions.get(outcome.pk)
    buying = side == Trade.Side.BUY

    if buying:
        bound_cost = request.max_cost
        if bound_cost is not None and quote.amount > bound_cost:
            raise PriceMoved(
                f"The price moved: this trade now costs {quote.amount:.2f}, more than your limit of {bound_cost:.2f}.",
                field="max_cost",
            )
        if quote.amount > wallet.balance:
            raise InsufficientFunds(
                f"This trade costs {quote.amount:.2f} credits but your balance is {wallet.balance:.2f}.",
                field="amount",
            )
        entries = [(wallet, -quote.amount), (market.escrow, quote.amount)]
        share_change, cost_change = quote.shares, quote.amount
    else:
        held = position.shares if position else ZERO
        if quote.shares > held:
            raise InsufficientShares(
                f"You hold {held:.2f} shares of {outcome.label}; this sale needs {quote.shares:.2f}.",
                field="shares",
            )
        bound_proceeds = request.min_proceeds
        if bound_proceeds is not None and quote.amount < bound_proceeds:
            raise PriceMoved(
                f"The price moved: this sale now pays {quote.amount:.2f}, "
                f"less than your limit of {bound_proceeds:.2f}.",
                field="min_proceeds",
            )
        entries = [(market.escrow, -quote.amount), (wallet, quote.amount)]
        share_change, cost_change = -quote.shares, -quote.amount

    ledger_transaction = ledger_post(
        kind=LedgerTransaction.Kind.TRADE,
        entries=entries,
        memo=f"{side} {quote.shares} {outcome.code} in {market.slug}",
    )
    trade = Trade.objects.create(
        market=market,
        outcome=outcome,
        user=user,
        side=side,
        shares=quote.shares,
        amount=quote.amount,
        probabilities_before=quote.probabilities_before,
        probabilities_after=quote.probabilities_after,
        ledger_transaction=ledger_transaction,
        created_at=now,
    )
    if position is None:
        position = Position.objects.create(
            user=user, market=market, outcome=outcome, shares=share_change, net_cost=cost_change
        )
    else:
        position.shares += share_change
        position.net_cost += cost_change
        position.save(update_fields=["shares", "net_cost", "updated_at"])
    # The market lock serialises every writer of its outcomes, so the rows read above are current.
    outcome.shares_outstanding += share_change
    for index, price in enumerate(quote.probabilities_after):
        outcomes[index].probability = price
    Outcome.objects.bulk_update(outcomes, ["probability", "shares_outstanding"])
    Market.objects.filter(pk=market.pk).update(volume=F("volume") + quote.amount)
    # What the UPDATE just wrote: the lock means no other writer moved it in between.
    market.volume += quote.amount
    price_point = PricePoint.objects.create(
        market=market, probabilities=quote.probabilities_after, trade=trade, created_at=now
    )
    if idempotency_key is not None:
        IdempotencyKey.objects.create(user=user, key=idempotency_key, fingerprint=fingerprint, trade=trade)
    change = None
    if not dated_by_caller:
        change = TradeChange(
            market=market,
            outcomes=outcomes,
            version=price_point.pk,
            previous_version=market.previous_version or 0,
            updated_at=now,
            new_trader=not held_positions,
        )
    market_changed(market_id=market.pk, trade=change)
    return TradeResult(
        trade=trade,
        probabilities=quote.probabilities_after,
        balance=wallet.balance,
        position_shares=position.shares,
    )


def market_quote(*, market: Market, request: TradeRequest) -> TradeQuote:
    """What the request would trade on the market as its rows stand now; writes nothing, locks nothing."""
    return price_trade(request=request, liquidity=market.liquidity, outcomes=list(market.outcomes.all()))
