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

A pass is computed in Python first (the pricing is pure: the outcomes' q moves in hand from fill to fill), then
written in one statement however many orders it fills (FILL_PASS_SQL): every fill's trade, ledger transaction and
price point, and the set's positions, balances, orders, outcomes and volume. The statements a pass sends are the
reads of crossed orders (one per round, usually one), that write, the fill callbacks' (the standing forecasts'
re-arming: two, however many it re-arms, and none when no standing forecast's order filled), and one refresh of
the best limits when an order ended or a callback opened or ended some.

A trade that crosses no resting limit costs nothing here: the outcomes' best limits (read by the trade's locking
read) show it without a statement.
"""

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection

from accounts.models import Account, LedgerTransaction
from accounts.money import ZERO
from accounts.services import LEDGER_POST_MANY_CTES, PostingRow, ledger_post_many_params, ledger_refusal
from markets import lmsr
from markets.models import LimitOrder, Market, Outcome, Position, PricePoint, Trade
from markets.pricing import TradeQuote, limit_fill_shares, lmsr_state, price_limit_fill
from markets.services.trade_writes import table_name

ORDER = table_name(LimitOrder)
POSITION = table_name(Position)

# Everything a pass writes, in one statement after the ledger's expressions (accounts.services: one transaction per
# fill, then one per spent-out buy's release). Ids of trades and price points are drawn in the fills' order, so the
# last fill's price point is the market's newest; `fill_postings` names each fill's ledger transaction (from 1).
# Positions move by their net change over the pass (a user's orders may fill more than once on one outcome); a
# position the update did not find is a new one, and a user who held none in the market before the statement is one
# more of its traders (Market.trader_count). Orders take their state after the pass (filled, or spent out).
FILL_PASS_SQL = f"""
    WITH {LEDGER_POST_MANY_CTES},
    fill AS MATERIALIZED (
        SELECT fill.*, nextval(pg_get_serial_sequence('{Trade._meta.db_table}', 'id')::regclass) AS trade_id,
               nextval(pg_get_serial_sequence('{PricePoint._meta.db_table}', 'id')::regclass) AS point_id
        FROM unnest(%(fill_orders)s::bigint[], %(fill_users)s::bigint[], %(fill_outcomes)s::bigint[],
                    %(fill_sides)s::varchar[], %(fill_shares)s::numeric[], %(fill_amounts)s::numeric[],
                    %(fill_before)s::jsonb[], %(fill_after)s::jsonb[], %(fill_postings)s::bigint[])
            WITH ORDINALITY AS fill(order_id, user_id, outcome_id, side, shares, amount, before, after, posting, n)
    ),
    trade AS (
        INSERT INTO {table_name(Trade)} (id, market_id, outcome_id, user_id, side, shares, amount, probabilities_before,
                                     probabilities_after, ledger_transaction_id, created_at, order_id, fill)
        SELECT fill.trade_id, %(market)s, fill.outcome_id, fill.user_id, fill.side, fill.shares, fill.amount,
               fill.before, fill.after, ledger_transaction.id, %(at)s, fill.order_id, true
        FROM fill JOIN ledger_transaction ON ledger_transaction.n = fill.posting
    ),
    point AS (
        INSERT INTO {table_name(PricePoint)} (id, market_id, probabilities, trade_id, created_at)
        SELECT fill.point_id, %(market)s, fill.after, fill.trade_id, %(at)s FROM fill
    ),
    position_change AS MATERIALIZED (
        SELECT * FROM unnest(%(position_users)s::bigint[], %(position_outcomes)s::bigint[],
                             %(position_shares)s::numeric[], %(position_costs)s::numeric[],
                             %(position_reserved)s::numeric[]) AS change(user_id, outcome_id, shares, cost, reserved)
    ),
    position_moved AS (
        UPDATE {POSITION} AS row
        SET shares = row.shares + change.shares, net_cost = row.net_cost + change.cost,
            reserved_shares = row.reserved_shares + change.reserved, updated_at = %(now)s
        FROM position_change AS change
        WHERE row.user_id = change.user_id AND row.outcome_id = change.outcome_id
        RETURNING row.user_id, row.outcome_id
    ),
    position_opened AS (
        INSERT INTO {POSITION} (user_id, market_id, outcome_id, shares, net_cost, reserved_shares, updated_at)
        SELECT change.user_id, %(market)s, change.outcome_id, change.shares, change.cost, change.reserved, %(now)s
        FROM position_change AS change
        WHERE NOT EXISTS (SELECT FROM position_moved AS moved
                          WHERE moved.user_id = change.user_id AND moved.outcome_id = change.outcome_id)
    ),
    order_moved AS (
        UPDATE {ORDER} AS row
        SET remaining = moved.remaining, reserved_credits = moved.reserved_credits,
            reserved_shares = moved.reserved_shares, filled_shares = row.filled_shares + moved.shares,
            filled_amount = row.filled_amount + moved.amount, status = moved.status, end_reason = moved.end_reason,
            ended_at = CASE WHEN moved.ended THEN %(now)s::timestamptz END
        FROM unnest(%(order_ids)s::bigint[], %(order_remaining)s::numeric[], %(order_reserved_credits)s::numeric[],
                    %(order_reserved_shares)s::numeric[], %(order_shares)s::numeric[], %(order_amounts)s::numeric[],
                    %(order_statuses)s::varchar[], %(order_end_reasons)s::varchar[], %(order_ended)s::boolean[])
            AS moved(id, remaining, reserved_credits, reserved_shares, shares, amount, status, end_reason, ended)
        WHERE row.id = moved.id
    ),
    outcome AS (
        UPDATE {table_name(Outcome)} AS row
        SET probability = moved.probability, shares_outstanding = row.shares_outstanding + moved.shares
        FROM unnest(%(outcome_ids)s::bigint[], %(probabilities)s::float8[], %(outcome_shares)s::numeric[])
            AS moved(id, probability, shares)
        WHERE row.id = moved.id
    ),
    new_trader AS MATERIALIZED (
        SELECT count(DISTINCT change.user_id) AS count FROM position_change AS change
        WHERE NOT EXISTS (SELECT FROM {POSITION} AS held
                          WHERE held.market_id = %(market)s AND held.user_id = change.user_id)
    ),
    volume AS (
        UPDATE {table_name(Market)} SET volume = volume + %(volume)s, trader_count = trader_count + new_trader.count
        FROM new_trader WHERE id = %(market)s AND (%(volume)s <> 0 OR new_trader.count > 0)
    )
    SELECT fill.trade_id, fill.point_id FROM fill ORDER BY fill.n
"""  # noqa: S608  # nosec B608 - model names only

# Open, unexpired orders of the market crossed at the given prices, with their owner's accounts and whether they
# hold a position in the market: not the triggering trader's, not one already seen in this pass.
_CANDIDATES_SQL = f"""
    SELECT o.id, o.user_id, o.outcome_id, o.side, o.limit_probability, o.remaining, o.created_at,
           wallet.id, reserved.id,
           EXISTS (SELECT FROM {POSITION} AS held WHERE held.user_id = o.user_id AND held.market_id = o.market_id),
           o.standing_forecast_id
    FROM {ORDER} AS o
    JOIN unnest(%(outcome_ids)s::bigint[], %(prices)s::float8[]) AS p(outcome_id, price)
        ON p.outcome_id = o.outcome_id
    LEFT JOIN {table_name(Account)} AS wallet ON wallet.key = 'wallet:' || o.user_id
    LEFT JOIN {table_name(Account)} AS reserved ON reserved.key = 'reserved:' || o.user_id
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
    # The fill gave the market a trader it did not have: its owner held no position in it before the pass.
    new_trader: bool


# Called under the market's lock, in the transaction, after a pass that filled anything: (market, fills, now), `now`
# the pass's time; whether it opened or ended orders (the pass then refreshes the best limits once, after every
# callback). The standing forecasts re-arm their orders here (markets.services.standing). A callback must not
# trade: its orders fill on the next trade.
fill_callbacks: list[Callable[[Market, list[Fill], datetime], bool]] = []


def best_limits_refresh(*, market_id: int, outcomes: list[Outcome] | None = None) -> None:
    """Recomputes the market's best open limits (call under its lock, after orders opened or ended); `outcomes`,
    the caller's rows of the market, are updated to match."""
    with connection.cursor() as cursor:
        cursor.execute(BEST_LIMITS_SQL, {"market": market_id})
        limits = {row[0]: row[1:] for row in cursor.fetchall()}
    for outcome in outcomes or []:
        outcome.best_buy_limit, outcome.best_sell_limit = limits[outcome.pk]


def orders_crossed(
    *, market: Market, outcomes: list[Outcome], read_between: tuple[list[float], list[float]] | None = None
) -> bool:
    """Whether the outcomes' prices (their q) are past a best resting limit by at least a share: no statement.

    `read_between`: the lowest and highest price of each outcome at which this pass read crossed orders. An order
    no read returned has its buy limit at or below every price read (its sell limit at or above), so it can be
    crossed only where the price has since gone beyond them: only those sides count."""
    if all(o.best_buy_limit is None and o.best_sell_limit is None for o in outcomes):
        return False
    b = float(market.liquidity)
    state = lmsr_state(b, outcomes)
    prices = lmsr.prices(state, b)
    for index, outcome in enumerate(outcomes):
        for side, limit in ((Trade.Side.BUY, outcome.best_buy_limit), (Trade.Side.SELL, outcome.best_sell_limit)):
            if read_between is not None:
                lowest, highest = read_between
                beyond = prices[index] < lowest[index] if side == Trade.Side.BUY else prices[index] > highest[index]
                if not beyond:
                    continue
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
    # Its owner held a position in the market when it was read (before the pass wrote any).
    in_market: bool
    standing_forecast_id: int | None


@dataclass(frozen=True)
class _Planned:
    """A fill computed in hand, before the pass's statement writes it."""

    candidate: _Candidate
    quote: TradeQuote
    # What the order has left after it.
    remaining: Decimal


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
    planned: list[_Planned] = []
    spent: list[_Candidate] = []
    lowest: list[float] = []
    highest: list[float] = []
    while True:
        prices = lmsr.prices(lmsr_state(b, outcomes), b)
        lowest = [min(pair) for pair in zip(lowest or prices, prices, strict=True)]
        highest = [max(pair) for pair in zip(highest or prices, prices, strict=True)]
        fresh = _candidates(
            market=market, outcomes=outcomes, prices=prices, trigger_user_id=trigger_user_id, now=now, seen=seen
        )
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
                    spent.append(candidate)
                continue
            planned.append(_fill_apply(outcomes=outcomes, index=index, candidate=candidate, quote=quote))
        if not orders_crossed(market=market, outcomes=outcomes, read_between=(lowest, highest)):
            break
    if not planned and not spent:
        return []
    fills = _pass_write(market=market, outcomes=outcomes, planned=planned, spent=spent, now=now, at=written_at)
    rearmed = [callback(market, fills, now) for callback in fill_callbacks] if fills else []
    if spent or any(not fill.order.is_open for fill in fills) or any(rearmed):
        best_limits_refresh(market_id=market.pk, outcomes=outcomes)
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
    *,
    market: Market,
    outcomes: list[Outcome],
    prices: list[float],
    trigger_user_id: int,
    now: datetime,
    seen: list[int],
) -> list[_Candidate]:
    """The open, unexpired orders crossed at `prices` (the outcomes'), not the trigger's owner's nor seen ones."""
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


def _fill_apply(*, outcomes: list[Outcome], index: int, candidate: _Candidate, quote: TradeQuote) -> _Planned:
    """Moves the outcomes in hand as the fill will move them (q and probabilities), so the next one is priced
    after it; the order's remainder goes down by what it used."""
    buying = candidate.side == Trade.Side.BUY
    outcomes[index].shares_outstanding += quote.shares if buying else -quote.shares
    for row, probability in zip(outcomes, quote.probabilities_after, strict=True):
        row.probability = probability
    remaining = candidate.remaining - (quote.amount if buying else quote.shares)
    planned = _Planned(candidate=candidate, quote=quote, remaining=remaining)
    candidate.remaining = remaining
    return planned


def _pass_write(
    *,
    market: Market,
    outcomes: list[Outcome],
    planned: list[_Planned],
    spent: list[_Candidate],
    now: datetime,
    at: datetime,
) -> list[Fill]:
    """Writes the pass in one statement (FILL_PASS_SQL); the fills, as they happened."""
    code_of = {outcome.pk: outcome.code for outcome in outcomes}
    postings: list[PostingRow] = []
    position_changes: dict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    orders: list[tuple[Any, ...]] = []
    shares_moved: dict[int, Decimal] = defaultdict(Decimal)
    for fill in planned:
        candidate, quote = fill.candidate, fill.quote
        buying = candidate.side == Trade.Side.BUY
        if buying:
            entries: list[tuple[Account | int, Decimal]] = [
                (_reserved_id(candidate), -quote.amount),
                (market.escrow_id, quote.amount),
            ]
            share_change, cost_change, reserved_change = quote.shares, quote.amount, ZERO
        else:
            entries = [(market.escrow_id, -quote.amount), (candidate.wallet_id, quote.amount)]
            share_change, cost_change, reserved_change = -quote.shares, -quote.amount, -quote.shares
        postings.append(
            PostingRow(
                kind=LedgerTransaction.Kind.TRADE,
                entries=entries,
                memo=(
                    f"order {candidate.order_id} filled: {quote.side} {quote.shares} "
                    f"{code_of[candidate.outcome_id]} in {market.slug}"
                ),
            )
        )
        change = position_changes[(candidate.user_id, candidate.outcome_id)]
        change[0] += share_change
        change[1] += cost_change
        change[2] += reserved_change
        shares_moved[candidate.outcome_id] += share_change
        is_open = fill.remaining > ZERO
        orders.append(
            (
                candidate.order_id,
                fill.remaining,
                fill.remaining if buying and is_open else ZERO,
                fill.remaining if not buying and is_open else ZERO,
                quote.shares,
                quote.amount,
                LimitOrder.Status.OPEN if is_open else LimitOrder.Status.FILLED,
                "" if is_open else "filled",
                not is_open,
            )
        )
    fill_postings = list(range(1, len(planned) + 1))
    for candidate in spent:
        # Ended with what is left given back: credits to the wallet, shares to the position.
        if candidate.side == Trade.Side.BUY:
            postings.append(
                PostingRow(
                    kind=LedgerTransaction.Kind.ORDER_RELEASE,
                    entries=[
                        (_reserved_id(candidate), -candidate.remaining),
                        (candidate.wallet_id, candidate.remaining),
                    ],
                    memo=f"order {candidate.order_id} filled: {candidate.remaining} left over in {market.slug}",
                )
            )
        else:
            position_changes[(candidate.user_id, candidate.outcome_id)][2] -= candidate.remaining
        orders.append(
            (candidate.order_id, candidate.remaining, ZERO, ZERO, ZERO, ZERO, LimitOrder.Status.FILLED, "filled", True)
        )
    moved = outcomes if planned else []
    params = ledger_post_many_params(postings=postings, at=at) | {
        "market": market.pk,
        "at": now,
        "now": at,
        "fill_orders": [fill.candidate.order_id for fill in planned],
        "fill_users": [fill.candidate.user_id for fill in planned],
        "fill_outcomes": [fill.candidate.outcome_id for fill in planned],
        "fill_sides": [fill.quote.side for fill in planned],
        "fill_shares": [fill.quote.shares for fill in planned],
        "fill_amounts": [fill.quote.amount for fill in planned],
        "fill_before": [json.dumps(fill.quote.probabilities_before) for fill in planned],
        "fill_after": [json.dumps(fill.quote.probabilities_after) for fill in planned],
        "fill_postings": fill_postings,
        "position_users": [user_id for user_id, _outcome_id in position_changes],
        "position_outcomes": [outcome_id for _user_id, outcome_id in position_changes],
        "position_shares": [change[0] for change in position_changes.values()],
        "position_costs": [change[1] for change in position_changes.values()],
        "position_reserved": [change[2] for change in position_changes.values()],
        **{
            f"order_{name}": [row[column] for row in orders]
            for column, name in enumerate(
                (
                    "ids",
                    "remaining",
                    "reserved_credits",
                    "reserved_shares",
                    "shares",
                    "amounts",
                    "statuses",
                    "end_reasons",
                    "ended",
                )
            )
        },
        "outcome_ids": [outcome.pk for outcome in moved],
        "probabilities": [outcome.probability for outcome in moved],
        "outcome_shares": [shares_moved[outcome.pk] for outcome in moved],
        "volume": sum((fill.quote.amount for fill in planned), ZERO),
    }
    # The pass's first fill of an owner the market did not have brings a new trader.
    newcomers = {fill.candidate.user_id for fill in planned if not fill.candidate.in_market}
    new_traders = []
    for fill in planned:
        new_traders.append(fill.candidate.user_id in newcomers)
        newcomers.discard(fill.candidate.user_id)
    try:
        with connection.cursor() as cursor:
            cursor.execute(FILL_PASS_SQL, params)
            written = cursor.fetchall()
    except IntegrityError as error:
        refusal = ledger_refusal(error)
        if refusal is not None:
            raise refusal from error
        raise
    return [
        Fill(
            order=LimitOrder(
                pk=fill.candidate.order_id,
                user_id=fill.candidate.user_id,
                market_id=market.pk,
                outcome_id=fill.candidate.outcome_id,
                side=fill.candidate.side,
                limit_probability=fill.candidate.limit,
                remaining=fill.remaining,
                status=LimitOrder.Status.OPEN if fill.remaining > ZERO else LimitOrder.Status.FILLED,
                created_at=fill.candidate.created_at,
                standing_forecast_id=fill.candidate.standing_forecast_id,
            ),
            trade_id=trade_id,
            price_point_id=point_id,
            quote=fill.quote,
            new_trader=new,
        )
        for fill, (trade_id, point_id), new in zip(planned, written, new_traders, strict=True)
    ]
