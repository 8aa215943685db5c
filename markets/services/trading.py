"""Trading: one service for buys and sells by shares, amount or target probability.

Lock order: the market row, then the wallet row. Locks are held for pricing and writes only,
inside one short transaction.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, TypedDict

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from accounts.models import LedgerTransaction, User
from accounts.money import ZERO
from accounts.selectors import user_balance
from accounts.services import ledger_post, wallet_lock
from markets.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InsufficientShares,
    InvalidInput,
    MarketClosed,
    PriceMoved,
)
from markets.locks import market_lock
from markets.metrics import trade_observed
from markets.models import IdempotencyKey, Market, Outcome, Position, PricePoint, Trade
from markets.pricing import MAX_AMOUNT, TradeQuote, parse_positive_decimal, quote_trade
from markets.services.changes import TradeChange, market_changed

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


def request_fingerprint(payload: dict[str, object]) -> str:
    """A stable hash of a trade request body, to tell a retry from a different request."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _parse_bound(value: object, field: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidInput("Enter a number.", field=field) from None
    if Decimal(str(value)) == ZERO and field == "min_proceeds":
        return ZERO
    return parse_positive_decimal(value, field=field, maximum=MAX_AMOUNT)


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
    outcome_code: str,
    side: str,
    shares: object = None,
    amount: object = None,
    probability: object = None,
    max_cost: object = None,
    min_proceeds: object = None,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    now: datetime | None = None,
) -> TradeResult:
    """Buys or sells one outcome by shares, amount or target probability, all or nothing.

    With an idempotency key, a retry with the same fingerprint returns the first result and a
    different request under the same key raises IdempotencyConflict.
    """
    bound_cost = _parse_bound(max_cost, "max_cost")
    bound_proceeds = _parse_bound(min_proceeds, "min_proceeds")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise InvalidInput("An Idempotency-Key has 1 to 255 characters.", field="Idempotency-Key")
    fingerprint = fingerprint or request_fingerprint(
        {
            "market": market.pk,
            "outcome": outcome_code,
            "side": side,
            "shares": shares,
            "amount": amount,
            "probability": probability,
            "max_cost": max_cost,
            "min_proceeds": min_proceeds,
        }
    )
    try:
        return _trade_execute_locked(
            user=user,
            market_id=market.pk,
            outcome_code=outcome_code,
            side=side,
            quantities={"shares": shares, "amount": amount, "probability": probability},
            bound_cost=bound_cost,
            bound_proceeds=bound_proceeds,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            now=now,
        )
    except IntegrityError:
        # The same key raced in from another market's lock: the other request won; report it.
        if idempotency_key is None:
            raise
        replay = _replay(user, idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay


@transaction.atomic
def _trade_execute_locked(
    *,
    user: User,
    market_id: int,
    outcome_code: str,
    side: str,
    quantities: dict[str, object],
    bound_cost: Decimal | None,
    bound_proceeds: Decimal | None,
    idempotency_key: str | None,
    fingerprint: str,
    now: datetime | None,
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
    if idempotency_key is not None:
        replay = _replay(user, idempotency_key, fingerprint)
        if replay is not None:
            return replay
    # A trade dated by its caller (demo history) may not be the market's latest price change.
    dated_by_caller = now is not None
    now = now or timezone.now()
    if market.status != Market.Status.OPEN or market.closes_at <= now:
        raise MarketClosed("This market is closed for trading.")
    outcomes = list(market.outcomes.all())
    quote = quote_trade(
        liquidity=market.liquidity, outcomes=outcomes, outcome_code=outcome_code, side=side, **quantities
    )
    outcome = next(o for o in outcomes if o.code == outcome_code)
    wallet = wallet_lock(user_id=user.pk)
    # All the user's positions in this market (the market lock already serialises them): one tells
    # whether the trade adds a trader to the market, for the cached snapshot's trader count.
    held_positions = {
        row.outcome_id: row for row in Position.objects.select_for_update().filter(user=user, market_id=market.pk)
    }
    position = held_positions.get(outcome.pk)
    buying = side == Trade.Side.BUY

    if buying:
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


def trade_quote(*, market: Market, outcome_code: str, side: str, **quantities: object) -> TradeQuote:
    """What a trade would cost or pay now; writes nothing."""
    return quote_trade(
        liquidity=market.liquidity,
        outcomes=list(market.outcomes.all()),
        outcome_code=outcome_code,
        side=side,
        **quantities,
    )
