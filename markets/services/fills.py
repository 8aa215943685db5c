"""The fill engine: after a trade, the resting limit orders its prices crossed fill against the market maker, under
the same market lock and in the same database transaction (docs/orders.md).

Rules, each of which a standing forecast (a pair of re-arming orders) relies on:
- a pass runs once per triggering trade, and only a trade triggers one: fills do not trigger further passes;
- an order never fills on a trade of its own owner ("by other people's trades only"), and at most once per pass;
- within a pass, the order whose limit the current price is furthest past fills first (on one outcome and side
  that is price priority: the highest buy limit, the lowest sell limit), then the oldest; prices are recomputed
  after every fill, so each fill takes the price to its limit and no further (markets.pricing.price_limit_fill);
- each fill is a Trade of its own (its `order` set), with its ledger transaction: a buy pays the escrow out of
  its owner's reserved account, a sell pays its owner's wallet out of the escrow and its reserved shares go.

A trade that crosses no resting limit costs nothing here: the outcomes' best limits (read by the trade's locking
read) show it without a statement.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection
from django.db.models import F

from accounts.models import Account, LedgerTransaction
from accounts.money import ZERO
from accounts.services import ledger_post, ledger_post_params, ledger_refusal
from markets import lmsr
from markets.models import LimitOrder, Market, Outcome, Position, Trade
from markets.pricing import TradeQuote, limit_fill_shares, lmsr_state, price_limit_fill
from markets.services.trade_writes import table_name, trade_write_params, trade_write_sql

ORDER = table_name(LimitOrder)

# The order a fill moves, in the fill's own write statement (the trade's, markets.services.trade_writes).
FILL_WRITE_SQL = trade_write_sql(
    f""",
    order_moved AS (
        UPDATE {ORDER}
        SET remaining = %(order_remaining)s, reserved_credits = %(order_reserved_credits)s,
            reserved_shares = %(order_reserved_shares)s, filled_shares = filled_shares + %(shares)s,
            filled_amount = filled_amount + %(amount)s, status = %(order_status)s,
            end_reason = %(order_end_reason)s, ended_at = %(order_ended_at)s
        WHERE id = %(order)s
    )"""  # noqa: S608  # nosec B608 - model names only
)

# Open, unexpired orders of the market crossed at the given prices, with their owner's accounts: not the
# triggering trader's, not one already seen in this pass.
_CANDIDATES_SQL = f"""
    SELECT o.id, o.user_id, o.outcome_id, o.side, o.limit_probability, o.remaining, o.created_at,
           wallet.id, reserved.id, position.id IS NOT NULL
    FROM {ORDER} AS o
    JOIN unnest(%(outcome_ids)s::bigint[], %(prices)s::float8[]) AS p(outcome_id, price)
        ON p.outcome_id = o.outcome_id
    LEFT JOIN {table_name(Account)} AS wallet ON wallet.key = 'wallet:' || o.user_id
    LEFT JOIN {table_name(Account)} AS reserved ON reserved.key = 'reserved:' || o.user_id
    LEFT JOIN {table_name(Position)} AS position
        ON position.user_id = o.user_id AND position.outcome_id = o.outcome_id
    WHERE o.market_id = %(market)s AND o.status = 'open' AND o.user_id <> %(trigger_user)s
      AND (o.expires_at IS NULL OR o.expires_at > %(now)s) AND NOT (o.id = ANY(%(seen)s::bigint[]))
      AND ((o.side = 'buy' AND o.limit_probability > p.price) OR (o.side = 'sell' AND o.limit_probability < p.price))
"""  # noqa: S608  # nosec B608 - model names only

# Each outcome's best open limits, recomputed after orders open or end (the partial index order_open_book).
BEST_LIMITS_SQL = f"""
    UPDATE {table_name(Outcome)} AS row SET
        best_buy_limit = (SELECT max(o.limit_probability) FROM {ORDER} AS o
                          WHERE o.outcome_id = row.id AND o.status = 'open' AND o.side = 'buy'),
        best_sell_limit = (SELECT min(o.limit_probability) FROM {ORDER} AS o
                           WHERE o.outcome_id = row.id AND o.status = 'open' AND o.side = 'sell')
    WHERE row.market_id = %(market)s
    RETURNING row.id, row.best_buy_limit, row.best_sell_limit
"""  # noqa: S608  # nosec B608 - model names only


@dataclass(frozen=True)
class Fill:
    """One fill: the order as it stands after it, and the trade it wrote."""

    order: LimitOrder
    trade_id: int
    price_point_id: int
    quote: TradeQuote


# Called under the market's lock, in the transaction, after a pass that filled anything: (market, fills, now), `now`
# the pass's time. The standing forecasts re-arm their orders here (markets.services.standing). A callback must not
# trade: its orders fill on the next trade.
fill_callbacks: list[Callable[[Market, list[Fill], datetime], None]] = []


def best_limits_refresh(*, market_id: int, outcomes: list[Outcome] | None = None) -> None:
    """Recomputes the market's best open limits (call under its lock, after orders opened or ended); `outcomes`,
    the caller's rows of the market, are updated to match."""
    with connection.cursor() as cursor:
        cursor.execute(BEST_LIMITS_SQL, {"market": market_id})
        limits = {row[0]: row[1:] for row in cursor.fetchall()}
    for outcome in outcomes or []:
        outcome.best_buy_limit, outcome.best_sell_limit = limits[outcome.pk]


def orders_crossed(*, market: Market, outcomes: list[Outcome]) -> bool:
    """Whether the outcomes' prices (their q) are past a best resting limit by at least a share: no statement."""
    if all(o.best_buy_limit is None and o.best_sell_limit is None for o in outcomes):
        return False
    b = float(market.liquidity)
    state = lmsr_state(b, outcomes)
    for index, outcome in enumerate(outcomes):
        for side, limit in ((Trade.Side.BUY, outcome.best_buy_limit), (Trade.Side.SELL, outcome.best_sell_limit)):
            if limit is not None and limit_fill_shares(
                state=state, b=b, index=index, side=side, limit=float(limit), budget=None
            ):
                return True
    return False


@dataclass
class _Candidate:
    order_id: int
    user_id: int
    outcome_id: int
    side: str
    limit: Decimal
    remaining: Decimal
    created_at: datetime
    wallet_id: int
    reserved_id: int | None
    has_position: bool


def orders_fill(
    *, market: Market, outcomes: list[Outcome], trigger_user_id: int, now: datetime, written_at: datetime
) -> list[Fill]:
    """The fill pass after a trade by `trigger_user_id` (see the module's rules). Call under the market's lock,
    in the trade's transaction, with the outcomes as the trade left them (q and probability); they are moved
    with every fill. Returns the fills in the order they happened."""
    if not orders_crossed(market=market, outcomes=outcomes):
        return []
    b = float(market.liquidity)
    index_of = {outcome.pk: index for index, outcome in enumerate(outcomes)}
    seen: list[int] = []
    pending: list[_Candidate] = []
    fills: list[Fill] = []
    ended = False
    positions = set()
    while True:
        fresh = _candidates(market=market, outcomes=outcomes, trigger_user_id=trigger_user_id, now=now, seen=seen)
        if not fresh:
            break
        seen.extend(candidate.order_id for candidate in fresh)
        pending.extend(fresh)
        while pending:
            state = lmsr_state(b, outcomes)
            prices = lmsr.prices(state, b)
            candidate = min(pending, key=lambda c: _priority(c, prices[index_of[c.outcome_id]]))
            pending.remove(candidate)
            price = prices[index_of[candidate.outcome_id]]
            if _priority(candidate, price)[0] >= 0:
                pending.append(candidate)
                break  # the most eager one is not crossed: none is
            index = index_of[candidate.outcome_id]
            quote = price_limit_fill(
                state=state,
                b=b,
                outcomes=outcomes,
                index=index,
                side=candidate.side,
                limit=float(candidate.limit),
                budget=candidate.remaining,
            )
            if quote is None:
                if _spent_out(candidate, state=state, b=b, index=index):
                    _finish_spent(market=market, candidate=candidate, now=written_at)
                    ended = True
                continue
            if (candidate.user_id, candidate.outcome_id) in positions:
                candidate.has_position = True
            fill = _fill_write(
                market=market, outcomes=outcomes, index=index, candidate=candidate, quote=quote, now=now, at=written_at
            )
            positions.add((candidate.user_id, candidate.outcome_id))
            fills.append(fill)
            ended = ended or not fill.order.is_open
        if not orders_crossed(market=market, outcomes=outcomes):
            break
    if ended:
        best_limits_refresh(market_id=market.pk, outcomes=outcomes)
    if fills:
        for callback in fill_callbacks:
            callback(market, fills, now)
    return fills


def _priority(candidate: _Candidate, price: float) -> tuple[float, datetime, int]:
    """Sort key, least first: how far the price is past the limit (negated), then age."""
    past = float(candidate.limit) - price if candidate.side == Trade.Side.BUY else price - float(candidate.limit)
    return (-past, candidate.created_at, candidate.order_id)


def _spent_out(candidate: _Candidate, *, state: list[float], b: float, index: int) -> bool:
    """An order whose limit the price is past, but whose remainder trades nothing (credits that buy no share,
    shares whose sale pays nothing): it is done."""
    return bool(
        limit_fill_shares(state=state, b=b, index=index, side=candidate.side, limit=float(candidate.limit), budget=None)
    )


def _candidates(
    *, market: Market, outcomes: list[Outcome], trigger_user_id: int, now: datetime, seen: list[int]
) -> list[_Candidate]:
    b = float(market.liquidity)
    prices = lmsr.prices(lmsr_state(b, outcomes), b)
    with connection.cursor() as cursor:
        cursor.execute(
            _CANDIDATES_SQL,
            {
                "market": market.pk,
                "outcome_ids": [o.pk for o in outcomes],
                "prices": prices,
                "trigger_user": trigger_user_id,
                "now": now,
                "seen": seen,
            },
        )
        return [_Candidate(*row) for row in cursor.fetchall()]


def _reserved_id(candidate: _Candidate) -> int:
    """The owner's reserved account, where an open buy order's credits sit (made when the order was placed)."""
    if candidate.reserved_id is None:
        raise LookupError(f"order {candidate.order_id} is an open buy with no reserved account")
    return candidate.reserved_id


def _fill_write(
    *,
    market: Market,
    outcomes: list[Outcome],
    index: int,
    candidate: _Candidate,
    quote: TradeQuote,
    now: datetime,
    at: datetime,
) -> Fill:
    outcome = outcomes[index]
    buying = candidate.side == Trade.Side.BUY
    used = quote.amount if buying else quote.shares
    remaining = candidate.remaining - used
    is_open = remaining > ZERO
    if buying:
        entries: list[tuple[Account | int, Decimal]] = [
            (_reserved_id(candidate), -quote.amount),
            (market.escrow_id, quote.amount),
        ]
        share_change, cost_change, reserved_change = quote.shares, quote.amount, ZERO
    else:
        entries = [(market.escrow_id, -quote.amount), (candidate.wallet_id, quote.amount)]
        share_change, cost_change, reserved_change = -quote.shares, -quote.amount, -quote.shares
    ledger = ledger_post_params(
        kind=LedgerTransaction.Kind.TRADE,
        entries=entries,
        memo=f"order {candidate.order_id} filled: {quote.side} {quote.shares} {outcome.code} in {market.slug}",
        at=at,
    )
    params = trade_write_params(
        ledger=ledger,
        market_id=market.pk,
        outcomes=outcomes,
        outcome=outcome,
        user_id=candidate.user_id,
        quote=quote,
        share_change=share_change,
        cost_change=cost_change,
        reserved_change=reserved_change,
        new_position=not candidate.has_position,
        at=now,
        now=at,
        order_id=candidate.order_id,
    )
    params |= {
        "order_remaining": remaining,
        "order_reserved_credits": remaining if buying and is_open else ZERO,
        "order_reserved_shares": remaining if not buying and is_open else ZERO,
        "order_status": LimitOrder.Status.OPEN if is_open else LimitOrder.Status.FILLED,
        "order_end_reason": "" if is_open else "filled",
        "order_ended_at": None if is_open else at,
    }
    try:
        with connection.cursor() as cursor:
            cursor.execute(FILL_WRITE_SQL, params)
            trade_id, version, _ledger_transaction_id = cursor.fetchone()
    except IntegrityError as error:
        refusal = ledger_refusal(error)
        if refusal is not None:
            raise refusal from error
        raise
    outcome.shares_outstanding += share_change
    for row, probability in zip(outcomes, quote.probabilities_after, strict=True):
        row.probability = probability
    candidate.remaining = remaining
    order = LimitOrder(
        pk=candidate.order_id,
        user_id=candidate.user_id,
        market_id=market.pk,
        outcome_id=outcome.pk,
        side=candidate.side,
        limit_probability=candidate.limit,
        remaining=remaining,
        status=params["order_status"],
        created_at=candidate.created_at,
    )
    return Fill(order=order, trade_id=trade_id, price_point_id=version, quote=quote)


def _finish_spent(*, market: Market, candidate: _Candidate, now: datetime) -> None:
    """Ends an order whose remainder trades nothing, giving it back: credits to the wallet, shares to the position."""
    if candidate.side == Trade.Side.BUY:
        ledger_post(
            kind=LedgerTransaction.Kind.ORDER_RELEASE,
            entries=[
                (Account(pk=_reserved_id(candidate)), -candidate.remaining),
                (Account(pk=candidate.wallet_id), candidate.remaining),
            ],
            memo=f"order {candidate.order_id} filled: {candidate.remaining} left over in {market.slug}",
        )
    else:
        Position.objects.filter(user_id=candidate.user_id, outcome_id=candidate.outcome_id).update(
            reserved_shares=F("reserved_shares") - candidate.remaining
        )
    LimitOrder.objects.filter(pk=candidate.order_id).update(
        reserved_credits=ZERO, reserved_shares=ZERO, status=LimitOrder.Status.FILLED, end_reason="filled", ended_at=now
    )
