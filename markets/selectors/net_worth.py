"""A trader's net worth over time: their balance plus their positions at the prices of each moment.

One SQL statement computes every point, set-based. The balance (the wallet plus the credits reserved for open
buy orders, which are still the trader's) is walked back from today's through every entry the ledger posted to
the trader's wallet or reserved account after each moment (a reserve and its release cancel out), so it ends exactly at
the wallet's balance and follows everything that moved it: trades, payouts and refunds, the reversal of
a re-resolved market's payout (with what was written off), and any other movement. Each entry is placed
at the time of what caused it, on the market's clock: a trade's entry at the trade, a settlement's at
the resolution's settlement, a reversal's at the reversal; any other at its ledger transaction's time.
The sign-up grant counts as older than the history.

The positions at each moment are the shares the trades had left, valued at the market's last price
point at or before that moment, and at nothing once the market's first settlement paid it out (the
payout is then in the balance; a re-resolution reverses and pays again through the balance too).
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_balance, user_reserved

# Points on the curve; the first lies just before the trader's first trade.
NET_WORTH_POINTS = 60

NET_WORTH_SQL = """
WITH span AS (
    SELECT LEAST(MIN(created_at) - interval '1 minute', %(now)s - interval '1 day') AS start
    FROM markets_trade WHERE user_id = %(user_id)s
),
grid AS (
    SELECT CASE WHEN step = %(steps)s THEN %(now)s ELSE span.start + (%(now)s - span.start) * step / %(steps)s END AS at
    FROM span, generate_series(0, %(steps)s) AS step
),
flows AS (
    SELECT COALESCE(trade.created_at, settled.settled_at, reversed.reversed_at, tx.created_at) AS at,
           entry.amount AS delta
    FROM accounts_account wallet
    JOIN accounts_ledgerentry entry ON entry.account_id = wallet.id
    JOIN accounts_ledgertransaction tx ON tx.id = entry.transaction_id AND tx.kind <> 'signup_grant'
    LEFT JOIN markets_trade trade ON trade.ledger_transaction_id = tx.id
    LEFT JOIN markets_resolution settled
        ON tx.kind IN ('payout', 'refund')
        AND settled.id = substring(tx.reference FROM '^settlement:([0-9]+)$')::bigint
    LEFT JOIN markets_resolution reversed
        ON tx.kind = 'reversal' AND reversed.id = substring(tx.reference FROM '^reversal:([0-9]+)$')::bigint
    WHERE (wallet.user_id = %(user_id)s AND wallet.kind = 'wallet') OR wallet.key = 'reserved:' || %(user_id)s
),
holdings AS (
    SELECT grid.at, trade.market_id, trade.outcome_id,
           SUM(CASE WHEN trade.side = 'buy' THEN trade.shares ELSE -trade.shares END) AS shares
    FROM grid JOIN markets_trade trade ON trade.user_id = %(user_id)s AND trade.created_at <= grid.at
    GROUP BY grid.at, trade.market_id, trade.outcome_id
),
-- The price vector of each held, not yet settled market at each moment: one index lookup per market, not per
-- outcome.
priced AS (
    SELECT held.at, held.market_id, point.probabilities
    FROM (SELECT DISTINCT at, market_id FROM holdings WHERE shares <> 0) held
    LEFT JOIN LATERAL (
        SELECT probabilities
        FROM markets_pricepoint point
        WHERE point.market_id = held.market_id AND point.created_at <= held.at
        ORDER BY point.created_at DESC, point.id DESC
        LIMIT 1
    ) point ON true
    WHERE NOT EXISTS (
        SELECT 1 FROM markets_resolution resolution
        WHERE resolution.market_id = held.market_id AND resolution.settled_at <= held.at
    )
),
valued AS (
    SELECT holdings.at,
           SUM(holdings.shares * COALESCE(
               (priced.probabilities ->> outcome."index")::numeric, outcome.initial_probability::numeric
           )) AS value
    FROM holdings
    JOIN priced ON priced.at = holdings.at AND priced.market_id = holdings.market_id
    JOIN markets_outcome outcome ON outcome.id = holdings.outcome_id
    WHERE holdings.shares <> 0
    GROUP BY holdings.at
)
SELECT grid.at,
       %(balance)s - COALESCE((SELECT SUM(flows.delta) FROM flows WHERE flows.at > grid.at), 0),
       COALESCE(valued.value, 0)
FROM grid LEFT JOIN valued ON valued.at = grid.at
ORDER BY grid.at
"""


@dataclass(frozen=True)
class NetWorthPoint:
    at: datetime
    balance: Decimal
    positions: Decimal

    @property
    def net_worth(self) -> Decimal:
        return self.balance + self.positions


def user_net_worth_history(
    *, user: User, balance: Decimal | None = None, now: datetime | None = None, points: int = NET_WORTH_POINTS
) -> list[NetWorthPoint]:
    """`points` + 1 evenly spaced points from just before the user's first trade (or a day ago) to now, in one
    query; the last is now, at the balance of now.

    Pass `balance` (wallet plus reserved credits) when the caller already read it (the portfolio has).
    """
    now = now or timezone.now()
    if balance is None:
        balance = user_balance(user=user) + user_reserved(user=user)
    with connection.cursor() as cursor:
        cursor.execute(NET_WORTH_SQL, {"user_id": user.pk, "now": now, "steps": points, "balance": balance})
        return [NetWorthPoint(at=at, balance=cash, positions=held) for at, cash, held in cursor.fetchall()]


def net_worth_chart(history: list[NetWorthPoint]) -> dict[str, list[float] | list[int]]:
    """The history as uPlot reads it: unix seconds, net worth and balance in credits."""
    return {
        "t": [int(point.at.timestamp()) for point in history],
        "net_worth": [round(float(point.net_worth), 2) for point in history],
        "balance": [round(float(point.balance), 2) for point in history],
    }
