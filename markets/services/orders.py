"""Limit orders: place, cancel, expire, and cancel a market's orders when it stops trading (docs/orders.md).

Every write takes the market's lock first (then wallets and accounts, as a trade does), so an order's state and
its reserve change only under it. A buy reserves its credits by a ledger movement from the wallet to the owner's
reserved account (`reserved:<user id>`); a sell reserves its shares in the position's `reserved_shares`. The part
of a new order the price already allows trades at once, as a trade with a bound: up to the limit and no further
(markets.pricing.price_limit_fill); that trade triggers the fill pass for other people's orders like any trade.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.money import CREDIT_QUANTUM, ZERO
from accounts.services import ledger_post, ledger_post_params, ledger_refusal, reserved_key, wallet_key
from markets.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InsufficientShares,
    InvalidInput,
    OrderNotOpen,
    StandingForecastOrder,
)
from markets.locks import deadlock_retried, market_lock, markets_lock
from markets.models import LimitOrder, Market, Outcome, Position, StandingForecast, Trade
from markets.pricing import lmsr_state, price_limit_fill
from markets.services.changes import market_changed, trade_change
from markets.services.fills import best_limits_refresh, orders_fill
from markets.services.trade_writes import trade_write_params, trade_write_sql
from markets.services.trading import TradeLocked, trade_apply, trade_lock_and_read, trading_check
from markets.trade_request import (
    MAX_AMOUNT,
    MAX_PROBABILITY,
    MAX_SHARES,
    MIN_PROBABILITY,
    canonical,
    idempotency_key_check,
    request_fingerprint,
)

_TRADE_WRITE_SQL = trade_write_sql()
LIMIT_QUANTUM = Decimal("0.0001")
_Placed = TypeVar("_Placed")


@dataclass(frozen=True)
class OrderRequest:
    """A limit order as asked for, checked at once for everything that does not depend on the market."""

    outcome: str
    side: str
    limit: Decimal
    # Credits to spend (buy) or shares to sell (sell).
    size: Decimal
    expires_at: datetime | None = None
    idempotency_key: str | None = None

    def check(self, *, now: datetime) -> None:
        if self.side not in Trade.Side.values:
            raise InvalidInput("Choose buy or sell.", field="side")
        if not self.limit.is_finite() or not 0 < self.limit < 1:
            raise InvalidInput("Enter a limit probability strictly between 0 and 1.", field="limit")
        if not MIN_PROBABILITY <= self.limit <= MAX_PROBABILITY or self.limit != self.limit.quantize(LIMIT_QUANTUM):
            raise InvalidInput("Enter a limit between 0.01% and 99.99%, to a hundredth of a percent.", field="limit")
        if not self.size.is_finite() or self.size <= 0:
            raise InvalidInput("Enter a size greater than zero.", field="size")
        if self.size > (MAX_AMOUNT if self.side == Trade.Side.BUY else MAX_SHARES):
            raise InvalidInput("That order is too large.", field="size")
        if self.size != self.size.quantize(CREDIT_QUANTUM):
            raise InvalidInput("Give the size to at most 6 decimal places.", field="size")
        resting_request_check(expires_at=self.expires_at, idempotency_key=self.idempotency_key, now=now)

    def fingerprint(self, *, market_id: int) -> str:
        return request_fingerprint(
            {
                "market": market_id,
                "outcome": self.outcome,
                "side": self.side,
                "limit": canonical(self.limit),
                "size": canonical(self.size),
                "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            }
        )


def resting_request_check(*, expires_at: datetime | None, idempotency_key: str | None, now: datetime) -> None:
    """What an order and a standing forecast check alike: an expiry in the future, a well-formed key."""
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("The expiry must be in the future.", field="expires_at")
    idempotency_key_check(idempotency_key)


@dataclass(frozen=True)
class OrderResult:
    order: LimitOrder
    # The trade of the part that filled at once, if any.
    trade_id: int | None
    replayed: bool = False


def order_place(*, user: User, market: Market | int, request: OrderRequest, now: datetime | None = None) -> OrderResult:
    """Places a limit order: its marketable part trades at once, the rest rests with its reserve. Refused
    (InvalidInput, InsufficientFunds, InsufficientShares, MarketClosed, MarketHalted) with nothing written.
    With an idempotency key, a retry returns the first order and a different request under it conflicts."""
    request.check(now=now or timezone.now())
    market_id = market if isinstance(market, int) else market.pk
    fingerprint = request.fingerprint(market_id=market_id)
    return idempotently_placed(
        lambda: _order_place_locked(user=user, market_id=market_id, request=request, fingerprint=fingerprint, now=now),
        key=request.idempotency_key,
        replay=lambda key: _replay(user=user, key=key, fingerprint=fingerprint),
    )


def idempotently_placed(
    place: Callable[[], _Placed], *, key: str | None, replay: Callable[[str], _Placed | None]
) -> _Placed:
    """Runs `place` (one whole transaction, again on a deadlock). When it lost a race for its Idempotency-Key (the
    same key raced in under another market's lock and won), the winner's result is the answer, or its conflict."""
    try:
        return deadlock_retried(place)
    except IntegrityError:
        if key is None:
            raise
        first = replay(key)
        if first is None:
            raise
        return first


def order_place_held(
    *,
    user: User,
    market_id: int,
    request: OrderRequest,
    now: datetime | None,
    standing_forecast_id: int | None = None,
) -> OrderResult:
    """order_place inside the caller's transaction (which may already hold the market's lock), for a standing forecast
    that places its pair of orders with itself, all or nothing (markets.services.standing). No idempotency key of
    its own and no deadlock retry: the caller's transaction has them. `now` None: the time it is placed."""
    request.check(now=now or timezone.now())
    return _order_place_locked(
        user=user,
        market_id=market_id,
        request=request,
        fingerprint=request.fingerprint(market_id=market_id),
        now=now,
        standing_forecast_id=standing_forecast_id,
    )


def _replay(*, user: User, key: str, fingerprint: str) -> OrderResult | None:
    order = LimitOrder.objects.select_related("market", "outcome").filter(user=user, idempotency_key=key).first()
    if order is None:
        return None
    if order.fingerprint != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was already used for a different request.")
    first_trade = order.fills.order_by("pk").values_list("pk", flat=True).first()
    return OrderResult(order=order, trade_id=first_trade, replayed=True)


@transaction.atomic
def _order_place_locked(
    *,
    user: User,
    market_id: int,
    request: OrderRequest,
    fingerprint: str,
    now: datetime | None,
    standing_forecast_id: int | None = None,
) -> OrderResult:
    locked = trade_lock_and_read(user=user, market_id=market_id, idempotency_key=None)
    # Timed under the lock, as a trade is: the order's trade and its price point then come after every change
    # committed before it (the market's latest price point is the one with the latest time).
    written_at = timezone.now()
    dated_by_caller = now is not None
    now = now or written_at
    if request.idempotency_key is not None:
        replay = _replay(user=user, key=request.idempotency_key, fingerprint=fingerprint)
        if replay is not None:
            return replay
    market, outcomes = locked.market, locked.outcomes
    trading_check(market=market, now=now)
    index = next((i for i, o in enumerate(outcomes) if o.code == request.outcome), None)
    if index is None:
        raise InvalidInput(f"Unknown outcome {request.outcome!r}.", field="outcome")
    outcome = outcomes[index]
    buying = request.side == Trade.Side.BUY
    _reserve_check(request=request, locked=locked, outcome=outcome)

    b = float(market.liquidity)
    quote = price_limit_fill(
        state=lmsr_state(b, outcomes),
        b=b,
        outcomes=outcomes,
        index=index,
        side=request.side,
        limit=float(request.limit),
        budget=request.size,
    )
    used = ZERO if quote is None else (quote.amount if buying else quote.shares)
    remaining = request.size - used
    is_open = remaining > ZERO
    order = LimitOrder.objects.create(
        user=user,
        market=market,
        outcome=outcome,
        side=request.side,
        limit_probability=request.limit,
        size=request.size,
        remaining=remaining,
        reserved_credits=remaining if buying and is_open else ZERO,
        reserved_shares=remaining if not buying and is_open else ZERO,
        filled_shares=ZERO if quote is None else quote.shares,
        filled_amount=ZERO if quote is None else quote.amount,
        status=LimitOrder.Status.OPEN if is_open else LimitOrder.Status.FILLED,
        end_reason="" if is_open else "filled",
        ended_at=None if is_open else written_at,
        expires_at=request.expires_at,
        created_at=now,
        idempotency_key=request.idempotency_key,
        fingerprint=fingerprint,
        standing_forecast_id=standing_forecast_id,
    )
    trade = None
    if quote is not None:
        share_change = quote.shares if buying else -quote.shares
        cost_change = quote.amount if buying else -quote.amount
        ledger = ledger_post_params(
            kind=LedgerTransaction.Kind.TRADE,
            entries=[(locked.wallet_id, -cost_change), (market.escrow_id, cost_change)],
            memo=f"order {order.pk}: {quote.side} {quote.shares} {outcome.code} in {market.slug}",
            at=written_at,
        )
        params = trade_write_params(
            ledger=ledger,
            market_id=market.pk,
            outcomes=outcomes,
            outcome=outcome,
            user_id=user.pk,
            quote=quote,
            share_change=share_change,
            cost_change=cost_change,
            new_position=outcome.pk not in locked.held,
            at=now,
            now=written_at,
            order_id=order.pk,
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(_TRADE_WRITE_SQL, params)
                trade_id, version, ledger_transaction_id = cursor.fetchone()
        except IntegrityError as error:
            refusal = ledger_refusal(error)
            if refusal is not None:
                raise refusal from error
            raise
        trade_apply(outcomes=outcomes, outcome=outcome, quote=quote, share_change=share_change)
        market.volume += quote.amount
        market.trader_count += int(not locked.held)
        trade = Trade(
            pk=trade_id,
            market=market,
            outcome=outcome,
            user=user,
            side=quote.side,
            shares=quote.shares,
            amount=quote.amount,
            probabilities_before=quote.probabilities_before,
            probabilities_after=quote.probabilities_after,
            ledger_transaction_id=ledger_transaction_id,
            created_at=now,
            order_id=order.pk,
        )
    if is_open:
        if buying:
            ledger_post(
                kind=LedgerTransaction.Kind.ORDER_RESERVE,
                entries=[(Account(pk=locked.wallet_id), -remaining), (reserved_account(user_id=user.pk), remaining)],
                memo=f"order {order.pk}: buy {outcome.code} in {market.slug} below {request.limit}",
                reference=f"order:{order.pk}",
            )
        else:
            Position.objects.filter(user=user, outcome=outcome).update(reserved_shares=F("reserved_shares") + remaining)
        best_limits_refresh(market_id=market.pk, outcomes=outcomes)
    if trade is not None:
        fills = orders_fill(market=market, outcomes=outcomes, trigger_user_id=user.pk, now=now, written_at=written_at)
        change = trade_change(
            market=market,
            outcomes=outcomes,
            trade=trade,
            version=version,
            previous_version=locked.previous_version,
            fills=fills,
        )
        # An order dated by its caller (demo history, tests) may not be the market's latest price change: the
        # snapshot is rebuilt from the database, as a trade's is.
        market_changed(market_id=market.pk, change=None if dated_by_caller else change)
    order.market = market
    order.outcome = outcome
    return OrderResult(order=order, trade_id=None if trade is None else trade.pk)


def _reserve_check(*, request: OrderRequest, locked: TradeLocked, outcome: Outcome) -> None:
    """Refuses an order that would reserve more than its owner has to spare."""
    if request.side == Trade.Side.BUY:
        if request.size > locked.balance:
            raise InsufficientFunds(
                f"This order reserves {request.size:.2f} credits but you have {locked.balance:.2f} available.",
                field="size",
            )
        return
    held = locked.held.get(outcome.pk, ZERO)
    free = held - locked.reserved.get(outcome.pk, ZERO)
    if request.size > free:
        raise InsufficientShares(
            f"You have {free:.2f} shares of {outcome.label} free to sell; this order needs {request.size:.2f}.",
            field="size",
        )


def reserved_account(*, user_id: int) -> Account:
    """The user's reserved account, created on first use."""
    account, _ = Account.objects.get_or_create(key=reserved_key(user_id), defaults={"kind": Account.Kind.RESERVED})
    return account


def order_cancel(*, user: User, order_id: int, now: datetime | None = None) -> LimitOrder:
    """Cancels the user's open order and releases its reserve. Someone else's order is LimitOrder.DoesNotExist;
    one that already ended raises OrderNotOpen."""
    now = now or timezone.now()
    market_id = LimitOrder.objects.filter(pk=order_id, user=user).values_list("market_id", flat=True).first()
    if market_id is None:
        raise LimitOrder.DoesNotExist(f"No order {order_id}.")
    with transaction.atomic():
        market_lock(market_id=market_id)
        order = LimitOrder.objects.select_related("market", "outcome").get(pk=order_id, user=user)
        if not order.is_open:
            raise OrderNotOpen(f"This order is already {order.status}.")
        if order.standing_forecast_id is not None:
            raise StandingForecastOrder(
                f"This order belongs to your standing forecast {order.standing_forecast_id}: cancel that instead."
            )
        orders_end(
            market_id=market_id,
            orders=[order],
            status=LimitOrder.Status.CANCELLED,
            reason="cancelled by you",
            now=now,
        )
    order.refresh_from_db()
    return order


def orders_end(*, market_id: int, orders: Sequence[LimitOrder], status: str, reason: str, now: datetime) -> int:
    """Ends open orders of one market (cancel, expiry, the market's close), releasing their reserves in one
    ledger transaction and one update of the positions. Call under the market's lock with fresh rows."""
    orders = [order for order in orders if order.is_open]
    if not orders:
        return 0
    credits: dict[int, Decimal] = defaultdict(Decimal)
    shares: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for order in orders:
        if order.side == Trade.Side.BUY:
            credits[order.user_id] += order.reserved_credits
        else:
            shares[(order.user_id, order.outcome_id)] += order.reserved_shares
    credits = {user_id: amount for user_id, amount in credits.items() if amount > ZERO}
    if credits:
        keys = [reserved_key(user_id) for user_id in credits] + [wallet_key(user_id) for user_id in credits]
        accounts = {account.key: account for account in Account.objects.filter(key__in=keys)}
        entries = []
        for user_id, amount in credits.items():
            entries.append((accounts[reserved_key(user_id)], -amount))
            entries.append((accounts[wallet_key(user_id)], amount))
        ledger_post(
            kind=LedgerTransaction.Kind.ORDER_RELEASE,
            entries=entries,
            memo=f"{len(orders)} orders {status} ({reason}) in market {market_id}",
        )
    if shares:
        keys_sql = [user_id for user_id, _ in shares], [outcome_id for _, outcome_id in shares]
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {Position._meta.db_table} AS p SET reserved_shares = p.reserved_shares - r.shares
                    FROM unnest(%s::bigint[], %s::bigint[], %s::numeric[]) AS r(user_id, outcome_id, shares)
                    WHERE p.user_id = r.user_id AND p.outcome_id = r.outcome_id""",  # noqa: S608  # nosec B608 - model names only
                [*keys_sql, list(shares.values())],
            )
    LimitOrder.objects.filter(pk__in=[order.pk for order in orders], status=LimitOrder.Status.OPEN).update(
        status=status, reserved_credits=ZERO, reserved_shares=ZERO, end_reason=reason, ended_at=now
    )
    best_limits_refresh(market_id=market_id)
    return len(orders)


def market_orders_cancel(*, market_id: int, reason: str, now: datetime) -> int:
    """Cancels every open order of the market (it closed, halted or is resolving), and ends its standing forecasts
    with them. Call under its lock."""
    orders = list(LimitOrder.objects.filter(market_id=market_id, status=LimitOrder.Status.OPEN))
    StandingForecast.objects.filter(market_id=market_id, status=StandingForecast.Status.ACTIVE).update(
        status=StandingForecast.Status.CANCELLED, end_reason=reason, ended_at=now
    )
    return orders_end(market_id=market_id, orders=orders, status=LimitOrder.Status.CANCELLED, reason=reason, now=now)


def due_by_market_end(*, market_ids: Sequence[int], end_due: Callable[[int], int]) -> int:
    """The beat sweeps' loop: for each market, in a transaction of its own under the market's lock, `end_due(market
    id)` ends what is due there and says how many; a market where anything ended is announced. How many in all. A
    killed worker loses at most the market it was in, which the next run finds due again."""
    ended = 0
    for market_id in market_ids:
        with transaction.atomic():
            markets_lock(query=Market.objects.filter(pk=market_id))
            count = end_due(market_id)
            if count:
                market_changed(market_id=market_id)
            ended += count
    return ended


def orders_expire_due(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Expires the open orders whose time has come, one market at a time under its lock; how many. Idempotent and
    safe at once with itself: an order is expired only while it is open, under its market's lock, in the same
    transaction as its reserve's release, so a killed worker leaves it open for the next run."""
    now = now or timezone.now()
    market_ids = list(
        LimitOrder.objects.filter(status=LimitOrder.Status.OPEN, expires_at__lte=now)
        .values_list("market_id", flat=True)
        .distinct()[:batch]
    )

    def end_due(market_id: int) -> int:
        due = list(LimitOrder.objects.filter(market_id=market_id, status=LimitOrder.Status.OPEN, expires_at__lte=now))
        return orders_end(market_id=market_id, orders=due, status=LimitOrder.Status.EXPIRED, reason="expired", now=now)

    return due_by_market_end(market_ids=market_ids, end_due=end_due)
