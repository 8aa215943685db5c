"""The statement that writes a trade, shared by the trade service (markets.services.trading) and the marketable part
of a limit order (markets.services.orders). The fills a trade triggers are written set-based by the fill engine
(markets.services.fills), with the same columns."""

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Model

from accounts.money import ZERO
from accounts.services import LEDGER_POST_CTES
from markets.models import IdempotencyKey, Market, Outcome, Position, PricePoint, Trade
from markets.pricing import TradeQuote


def table_name(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# Everything a trade writes, in one statement after the ledger's own expressions (accounts.services); `order` is the
# limit order whose marketable part the trade is (null for a plain trade). A position opened in a market where the
# user holds none yet makes them one more of its traders: every expression of the statement reads the tables as they
# were before it, so `held` does not see `position_opened`.
TRADE_WRITE_TEMPLATE = """
    WITH {ledger},
    trade AS (
        INSERT INTO {trade} (market_id, outcome_id, user_id, side, shares, amount,
                             probabilities_before, probabilities_after, ledger_transaction_id, created_at, order_id)
        SELECT %(market)s, %(outcome)s, %(user)s, %(side)s, %(shares)s, %(amount)s,
               %(before)s::jsonb, %(after)s::jsonb, ledger_transaction.id, %(at)s, %(order)s::bigint
        FROM ledger_transaction
        RETURNING id
    ),
    position_moved AS (
        UPDATE {position}
        SET shares = shares + %(share_change)s, net_cost = net_cost + %(cost_change)s, updated_at = %(now)s
        WHERE user_id = %(user)s AND outcome_id = %(outcome)s AND NOT %(new_position)s::boolean
    ),
    position_opened AS (
        INSERT INTO {position} (user_id, market_id, outcome_id, shares, net_cost, reserved_shares, updated_at)
        SELECT %(user)s, %(market)s, %(outcome)s, %(share_change)s, %(cost_change)s, 0, %(now)s
        WHERE %(new_position)s::boolean
    ),
    outcome AS (
        UPDATE {outcome} AS row
        SET probability = moved.probability, shares_outstanding = row.shares_outstanding + moved.shares
        FROM unnest(%(outcome_ids)s::bigint[], %(probabilities)s::float8[], %(outcome_shares)s::numeric[])
            AS moved(id, probability, shares)
        WHERE row.id = moved.id
    ),
    volume AS (
        UPDATE {market}
        SET volume = volume + %(amount)s,
            trader_count = trader_count + (%(new_position)s::boolean AND NOT EXISTS (
                SELECT FROM {position} AS held WHERE held.market_id = %(market)s AND held.user_id = %(user)s
            ))::int
        WHERE id = %(market)s
    ),
    point AS (
        INSERT INTO {price_point} (market_id, probabilities, trade_id, created_at)
        SELECT %(market)s, %(after)s::jsonb, trade.id, %(at)s FROM trade
        RETURNING id
    ),
    used AS (
        INSERT INTO {idempotency_key} (user_id, key, fingerprint, trade_id, created_at)
        SELECT %(user)s, %(key)s::varchar, %(fingerprint)s, trade.id, %(now)s FROM trade
        WHERE %(key)s::varchar IS NOT NULL
    )
    SELECT trade.id, point.id, ledger_transaction.id FROM trade, point, ledger_transaction
"""


def trade_write_sql() -> str:
    """The trade's write statement."""
    return TRADE_WRITE_TEMPLATE.format(  # nosec B608 - model names and constant expressions
        ledger=LEDGER_POST_CTES,
        trade=table_name(Trade),
        position=table_name(Position),
        outcome=table_name(Outcome),
        market=table_name(Market),
        price_point=table_name(PricePoint),
        idempotency_key=table_name(IdempotencyKey),
    )


def trade_write_params(
    *,
    ledger: dict[str, Any],
    market_id: int,
    outcomes: Sequence[Outcome],
    outcome: Outcome,
    user_id: int,
    quote: TradeQuote,
    share_change: Decimal,
    cost_change: Decimal,
    new_position: bool,
    at: datetime,
    now: datetime,
    order_id: int | None = None,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> dict[str, Any]:
    """The parameters of the trade's write statement: `ledger` from accounts.services.ledger_post_params, the
    quote priced under the market's lock, and what the trade moves in the trader's position (signed)."""
    return {
        **ledger,
        "market": market_id,
        "outcome": outcome.pk,
        "user": user_id,
        "side": quote.side,
        "shares": quote.shares,
        "amount": quote.amount,
        "before": json.dumps(quote.probabilities_before),
        "after": json.dumps(quote.probabilities_after),
        "at": at,
        "now": now,
        "share_change": share_change,
        "cost_change": cost_change,
        "new_position": new_position,
        "outcome_ids": [o.pk for o in outcomes],
        "probabilities": quote.probabilities_after,
        "outcome_shares": [share_change if o is outcome else ZERO for o in outcomes],
        "key": idempotency_key,
        "fingerprint": fingerprint,
        "order": order_id,
    }
