"""Trading: one service for buys and sells by shares, amount or target probability.

It takes a TradeRequest (markets.trade_request), parsed and checked at the edge, and prices it with
markets.pricing.price_trade. Lock order: the market row, then the wallet row. Locks are held for pricing
and writes only, inside one short transaction of four statements in two round trips (docs/trading.md): the
market's lock with one read of the wallet (locked), the outcomes, the trader's positions, the last price point and
the idempotency key; one statement that writes the ledger transaction, its entries and balances, the trade, the
position, the outcomes, the volume, the trader count, the price point and the key, with the commit (unless
resting orders fill after it, or a caller's transaction holds this one).
"""

import copy
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.money import ZERO
from accounts.selectors import user_balance
from accounts.services import ledger_post_params, ledger_refusal, wallet_key, wallet_lock
from markets.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InsufficientShares,
    MarketClosed,
    MarketHalted,
    PriceMoved,
)
from markets.locks import deadlock_retried, market_lock_and_read
from markets.metrics import trade_observed
from markets.models import IdempotencyKey, Market, Outcome, Position, PricePoint, Trade
from markets.pricing import TradeQuote, price_trade
from markets.services.changes import market_changed, trade_change
from markets.services.fills import Fill, orders_crossed, orders_fill
from markets.services.trade_writes import table_name, trade_write_params, trade_write_sql
from markets.trade_request import TradeRequest


@dataclass(frozen=True)
class TradeResult:
    # The trade as written, with its market, outcome and user attached (nothing re-read).
    trade: Trade
    probabilities: list[float]
    balance: Decimal
    position_shares: Decimal
    # The market's outcome codes in index order: they label `probabilities` and the trade's vectors.
    outcome_codes: list[str]
    # True when an idempotency key matched an earlier request and nothing was traded now.
    replayed: bool = False


_OUTCOME_FIELDS = [field.attname for field in Outcome._meta.concrete_fields]

# Read right after the market's lock, so with a snapshot that sees every trade committed before it: the wallet
# (locked: the market, then the wallet), every column of the outcomes in index order, the trader's positions in
# the market, the price point the trade will follow (see TradeChange) and the idempotency key's earlier use.
# Positions are not locked: only trades and settlement write them, under the market lock held here.
_TRADE_READ_SQL = """
    SELECT wallet.id, wallet.balance, outcome.*, position.outcome_ids, position.shares, position.reserved,
           (SELECT point.id FROM {price_point} AS point WHERE point.market_id = %(market)s
            ORDER BY point.created_at DESC, point.id DESC LIMIT 1),
           used.fingerprint, used.trade_id
    FROM (SELECT {outcome_arrays} FROM {outcome} AS row WHERE row.market_id = %(market)s) AS outcome
    CROSS JOIN (
        SELECT array_agg(row.outcome_id) AS outcome_ids, array_agg(row.shares) AS shares,
               array_agg(row.reserved_shares) AS reserved
        FROM {position} AS row WHERE row.user_id = %(user)s AND row.market_id = %(market)s
    ) AS position
    LEFT JOIN (SELECT id, balance FROM {account} WHERE key = %(wallet)s FOR UPDATE) AS wallet ON true
    LEFT JOIN {idempotency_key} AS used ON used.user_id = %(user)s AND used.key = %(key)s::varchar
""".format(  # noqa: S608  # nosec B608 - model names only
    price_point=table_name(PricePoint),
    outcome_arrays=", ".join(
        f"array_agg(row.{connection.ops.quote_name(field.column)} ORDER BY row.index)"
        for field in Outcome._meta.concrete_fields
    ),
    outcome=table_name(Outcome),
    position=table_name(Position),
    account=table_name(Account),
    idempotency_key=table_name(IdempotencyKey),
)

_TRADE_WRITE_SQL = trade_write_sql()


def _replay(user: User, key: str, fingerprint: str) -> TradeResult | None:
    """The first result of the request that used this key, or None if no request used it."""
    record = IdempotencyKey.objects.filter(user=user, key=key).values_list("fingerprint", "trade_id").first()
    if record is None:
        return None
    return _replayed(user, fingerprint=fingerprint, used=record)


def _replayed(user: User, *, fingerprint: str, used: tuple[str, int]) -> TradeResult:
    """The result of the trade `used` recorded (its fingerprint, its trade), if it was this same request."""
    used_fingerprint, trade_id = used
    if used_fingerprint != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was already used for a different request.")
    trade = Trade.objects.select_related("market", "outcome", "user").get(pk=trade_id)
    position = Position.objects.filter(user=user, outcome_id=trade.outcome_id).first()
    codes = Outcome.objects.filter(market_id=trade.market_id).order_by("index").values_list("code", flat=True)
    return TradeResult(
        trade=trade,
        probabilities=list(trade.probabilities_after),
        balance=user_balance(user=user),
        position_shares=position.shares if position else ZERO,
        outcome_codes=list(codes),
        replayed=True,
    )


@trade_observed
def trade_execute(
    *,
    user: User,
    market: Market | int,
    request: TradeRequest,
    now: datetime | None = None,
) -> TradeResult:
    """Buys or sells as the request says, all or nothing, on the market (or the market of that id: the API has
    only the id, from the cached snapshot; a missing market raises Market.DoesNotExist).

    With an idempotency key, a retry of the same request returns the first result and a different
    request under the same key raises IdempotencyConflict.
    """
    market_id = market if isinstance(market, int) else market.pk
    fingerprint = request.fingerprint(market_id=market_id)
    try:
        written = deadlock_retried(
            lambda: _trade_execute_locked(
                user=user, market_id=market_id, request=request, fingerprint=fingerprint, now=now
            )
        )
    except IntegrityError:
        # The same key raced in from another market's lock: the other request won; report it.
        if request.idempotency_key is None:
            raise
        replay = _replay(user, request.idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay
    if isinstance(written, TradeResult):
        return written
    return _result(user=user, written=written)


@dataclass(frozen=True)
class TradeLocked:
    """What a trade (or a limit order's placement, markets.services.orders) read under the market lock."""

    market: Market
    outcomes: list[Outcome]
    wallet_id: int
    balance: Decimal
    # Shares the trader holds in each outcome of the market (by outcome id), and those of them their open sell
    # orders hold back (not for sale by a trade).
    held: dict[int, Decimal]
    reserved: dict[int, Decimal]
    previous_version: int
    # The idempotency key's earlier use: (fingerprint, trade id), or None.
    used: tuple[str, int] | None


def trade_lock_and_read(*, user: User, market_id: int, idempotency_key: str | None) -> TradeLocked:
    """Locks the market, then the user's wallet, and reads what a trade needs (see _TRADE_READ_SQL)."""
    params: dict[str, Any] = {
        "market": market_id,
        "user": user.pk,
        "wallet": wallet_key(user.pk),
        "key": idempotency_key,
    }
    locked = market_lock_and_read(market_id=market_id, sql=_TRADE_READ_SQL, params=params)
    if locked is None:
        raise Market.DoesNotExist(f"No market {market_id}.")
    market, row = locked
    if row[0] is None:
        # A user made outside user_create (e.g. by createsuperuser) gets an empty wallet here, still after the
        # market's lock; then the read runs again.
        wallet_lock(user_id=user.pk)
        with connection.cursor() as cursor:
            cursor.execute(_TRADE_READ_SQL, params)
            row = cursor.fetchone()
    wallet_id, balance, *rest = row
    outcome_columns = rest[: len(_OUTCOME_FIELDS)]
    position_outcomes, position_shares, position_reserved, previous_version, used_fingerprint, used_trade = rest[
        len(_OUTCOME_FIELDS) :
    ]
    outcomes = [
        Outcome.from_db(connection.alias, _OUTCOME_FIELDS, values) for values in zip(*outcome_columns, strict=True)
    ]
    return TradeLocked(
        market=market,
        outcomes=outcomes,
        wallet_id=wallet_id,
        balance=balance,
        held=dict(zip(position_outcomes or [], position_shares or [], strict=True)),
        reserved=dict(zip(position_outcomes or [], position_reserved or [], strict=True)),
        previous_version=previous_version or 0,
        used=None if used_fingerprint is None else (used_fingerprint, used_trade),
    )


@transaction.atomic
def _trade_execute_locked(
    *, user: User, market_id: int, request: TradeRequest, fingerprint: str, now: datetime | None
) -> "TradeResult | _Written":
    idempotency_key = request.idempotency_key
    locked = trade_lock_and_read(user=user, market_id=market_id, idempotency_key=idempotency_key)
    if locked.used is not None:
        return _replayed(user, fingerprint=fingerprint, used=locked.used)
    market, outcomes = locked.market, locked.outcomes
    # A trade dated by its caller (demo history) may not be the market's latest price change.
    dated_by_caller = now is not None
    written_at = timezone.now()
    now = now or written_at
    trading_check(market=market, now=now)
    quote = price_trade(request=request, liquidity=market.liquidity, outcomes=outcomes)
    # A forecast may trade another outcome or side than the request names: the quote says which.
    index = next(i for i, o in enumerate(outcomes) if o.code == quote.outcome_code)
    outcome = outcomes[index]
    held = locked.held.get(outcome.pk, ZERO)
    share_change, cost_change = _checked_changes(
        request=request, quote=quote, outcome=outcome, held=held, locked=locked
    )

    ledger = ledger_post_params(
        kind=LedgerTransaction.Kind.TRADE,
        entries=[(locked.wallet_id, -cost_change), (market.escrow_id, cost_change)],
        memo=f"{quote.side} {quote.shares} {outcome.code} in {market.slug}",
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
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
    )
    trade_outcomes = trade_apply(outcomes=outcomes, outcome=outcome, quote=quote, share_change=share_change)
    # A trade that crosses no resting limit has nothing left to do under the lock after its write: when this block
    # is the transaction (not a savepoint in a caller's), the commit goes with the write, one round trip less.
    commit_with_write = _commits_on_exit() and not orders_crossed(market=market, outcomes=outcomes)
    try:
        trade_id, version, ledger_transaction_id = _trade_write(params, commit=commit_with_write)
    except IntegrityError as error:
        refusal = ledger_refusal(error)
        if refusal is not None:
            raise refusal from error
        raise
    fills = (
        []
        if commit_with_write
        else orders_fill(market=market, outcomes=outcomes, trigger_user_id=user.pk, now=now, written_at=written_at)
    )

    return _Written(
        locked=locked,
        quote=quote,
        outcome=outcome,
        share_change=share_change,
        cost_change=cost_change,
        trade_id=trade_id,
        version=version,
        ledger_transaction_id=ledger_transaction_id,
        at=now,
        dated_by_caller=dated_by_caller,
        trade_outcomes=trade_outcomes,
        fills=fills,
    )


def _commits_on_exit() -> bool:
    """Whether the innermost transaction.atomic block is the outermost one, so its exit commits (rather than a
    savepoint in a caller's transaction, as in a test's)."""
    return connection.commit_on_exit and not connection.savepoint_ids and len(connection.atomic_blocks) == 1


def _trade_write(params: dict[str, Any], *, commit: bool) -> tuple[int, int, int]:
    """Runs the trade's write statement: (trade id, price point id, ledger transaction id). With `commit`, the
    COMMIT is sent with it in one round trip (psycopg's pipeline mode) and the market's lock is released as the
    write lands: the atomic block's own commit then finds no transaction left and sends nothing. An error of the
    write skips the COMMIT (the server discards what follows an error in a pipeline) and is raised as Django
    raises it, so the block rolls back as it would have."""
    with connection.cursor() as cursor:
        if not commit:
            cursor.execute(_TRADE_WRITE_SQL, params)
        else:
            with connection.wrap_database_errors, connection.connection.pipeline():
                cursor.execute(_TRADE_WRITE_SQL, params)
                connection.connection.commit()
        trade_id, version, ledger_transaction_id = cursor.fetchone()
    return trade_id, version, ledger_transaction_id


@dataclass(frozen=True)
class _Written:
    """What a trade wrote, as the write statement returned it: the result is built from it after the commit,
    outside the market's lock."""

    locked: TradeLocked
    quote: TradeQuote
    outcome: Outcome
    share_change: Decimal
    cost_change: Decimal
    trade_id: int
    version: int
    ledger_transaction_id: int
    at: datetime
    dated_by_caller: bool
    # The outcomes as the trade left them, before the fills it triggered moved them on (if it triggered any).
    trade_outcomes: list[Outcome]
    fills: list[Fill]


def _result(*, user: User, written: _Written) -> TradeResult:
    """The trade's result and its announcement (market_changed), from the rows read under the lock and moved as
    the write statement moved them: no other writer could move them in between."""
    locked, quote, outcome = written.locked, written.quote, written.outcome
    market, outcomes = locked.market, written.trade_outcomes
    market.volume += quote.amount
    market.trader_count += int(not locked.held)
    trade = Trade(
        pk=written.trade_id,
        market=market,
        outcome=outcome,
        user=user,
        side=quote.side,
        shares=quote.shares,
        amount=quote.amount,
        probabilities_before=quote.probabilities_before,
        probabilities_after=quote.probabilities_after,
        ledger_transaction_id=written.ledger_transaction_id,
        created_at=written.at,
    )
    change = None
    if not written.dated_by_caller:
        change = trade_change(
            market=market,
            outcomes=locked.outcomes,
            trade=trade,
            version=written.version,
            previous_version=locked.previous_version,
            fills=written.fills,
        )
    market_changed(market_id=market.pk, change=change)
    probabilities = quote.probabilities_after
    if written.fills:
        probabilities = written.fills[-1].quote.probabilities_after
    return TradeResult(
        trade=trade,
        probabilities=probabilities,
        balance=locked.balance - written.cost_change,
        position_shares=locked.held.get(outcome.pk, ZERO) + written.share_change,
        outcome_codes=[o.code for o in outcomes],
    )


def trading_check(*, market: Market, now: datetime) -> None:
    """Raises unless the market takes trades (and limit orders) at `now`."""
    if market.halted_at is not None and market.status == Market.Status.OPEN:
        raise MarketHalted(f"Trading on this market is halted: {market.halt_reason}")
    if not market.is_tradeable(now):
        raise MarketClosed("This market is closed for trading.")


def trade_apply(
    *, outcomes: list[Outcome], outcome: Outcome, quote: TradeQuote, share_change: Decimal
) -> list[Outcome]:
    """Moves the outcome rows in hand as a written trade moved them in the database; a copy of them as they now
    stand (for the trade's announcement, whatever fills move them on afterwards)."""
    outcome.shares_outstanding += share_change
    for row, price in zip(outcomes, quote.probabilities_after, strict=True):
        row.probability = price
    return [copy.copy(row) for row in outcomes]


def _checked_changes(
    *, request: TradeRequest, quote: TradeQuote, outcome: Outcome, held: Decimal, locked: TradeLocked
) -> tuple[Decimal, Decimal]:
    """(shares, credits) the trade moves into the position, signed; raises if a bound, the balance or the
    shares held refuse it."""
    if quote.side == Trade.Side.BUY:
        bound_cost = request.max_cost
        if bound_cost is not None and quote.amount > bound_cost:
            raise PriceMoved(
                f"The price moved: this trade now costs {quote.amount:.2f}, more than your limit of {bound_cost:.2f}.",
                field="max_cost",
            )
        if quote.amount > locked.balance:
            raise InsufficientFunds(
                f"This trade costs {quote.amount:.2f} credits but your balance is {locked.balance:.2f}.",
                field="amount",
            )
        return quote.shares, quote.amount
    reserved = locked.reserved.get(outcome.pk, ZERO)
    if quote.shares > held - reserved:
        held_back = f" ({reserved:.2f} of them held back by your sell orders)" if reserved else ""
        raise InsufficientShares(
            f"You hold {held:.2f} shares of {outcome.label}{held_back}; this sale needs {quote.shares:.2f}.",
            field="shares",
        )
    bound_proceeds = request.min_proceeds
    if bound_proceeds is not None and quote.amount < bound_proceeds:
        raise PriceMoved(
            f"The price moved: this sale now pays {quote.amount:.2f}, less than your limit of {bound_proceeds:.2f}.",
            field="min_proceeds",
        )
    return -quote.shares, -quote.amount


def market_quote(*, market: Market, request: TradeRequest) -> TradeQuote:
    """What the request would trade on the market as its rows stand now; writes nothing, locks nothing."""
    return price_trade(request=request, liquidity=market.liquidity, outcomes=list(market.outcomes.all()))
