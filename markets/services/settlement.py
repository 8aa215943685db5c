"""Settlement: pays a market's current resolution out of its escrow, exactly once.

Everything happens in one database transaction under the market's row lock, with set-based SQL: the
payouts are computed by one INSERT ... SELECT, and the money moves through the ledger's set-based posting
function (`accounts.services.ledger_post_set`), which writes every wallet's entry with INSERT ... SELECT,
locks the accounts in id order and moves the cached balances with one UPDATE ... FROM. No position is ever
loaded into Python, so a market with 100,000 positions settles in seconds with flat memory.

Money flow of one settlement (each a balanced ledger transaction, referenced so it can post once):
- `reversal:<old resolution>` (re-resolution only): every wallet gives back what the old settlement paid
  it, the house gives back the escrow remainder it received; the escrow is as it was before.
- `settlement:<resolution>`: the escrow pays each trader (kind payout, or refund when annulled).
- `release:<resolution>`: what is left in the escrow goes to the house. The house may also *pay in* here
  (a negative release) when an annulment refunds more than the escrow holds; see `market_resolve`.

A wallet that spent a payout which a re-resolution takes back cannot go below zero: the part it can no
longer give back is written off to the house inside the reversal transaction (logged loudly). The same rule
covers the proceeds of a voided late sale (`void:<resolution>`, markets.services.voiding), posted in the
same set before the payouts.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account, LedgerTransaction
from accounts.money import CREDIT_PLACES, ZERO
from accounts.services import EntryQuery, Posting, ledger_post_set, system_account
from markets.locks import market_lock
from markets.metrics import settlement_observed
from markets.models import Market, Outcome, Payout, Position, Resolution
from markets.services.changes import market_changed
from markets.services.voiding import late_trades_void

logger = logging.getLogger(__name__)

# Table names are the models' own, never input: the f-strings below build no SQL from user data.
ACCOUNT = Account._meta.db_table
PAYOUT = Payout._meta.db_table
POSITION = Position._meta.db_table

# A test hook: seconds to hold the transaction open mid-settlement so a test can kill the worker there.
PAUSE_ENV = "FORECASTLE_SETTLEMENT_PAUSE"

# Each paid trader's wallet entry: +payout (sign 1) or, to reverse a settlement, -payout (sign -1).
WALLET_PAYOUTS_SQL = f"""
    SELECT a.id, %(sign)s * po.amount
    FROM {PAYOUT} po JOIN {ACCOUNT} a ON a.user_id = po.user_id AND a.kind = 'wallet'
    WHERE po.resolution_id = %(resolution)s AND po.amount > 0
"""  # noqa: S608


@dataclass(frozen=True)
class SettlementResult:
    resolution_id: int
    payout_count: int
    paid_total: Decimal
    released_total: Decimal
    reversed_resolution_id: int | None
    written_off: Decimal
    # Trades after the resolution's known_at, voided before the payouts (markets.services.voiding).
    voided_trades: int = 0


def _insert_payouts(*, market: Market, resolution: Resolution, now: datetime) -> tuple[int, Decimal]:
    """One payout row per trader of the market (zero for a loser); rounded down, the house's favour."""
    params: dict[str, Any] = {"resolution": resolution.pk, "market": market.pk, "now": now}
    if resolution.kind == Resolution.Kind.ANNULLED:
        # Back what they paid in net of what they took out; a trader in profit keeps it and gets nothing.
        amount_sql = "GREATEST(SUM(p.net_cost), 0)"
        source = f"{POSITION} p"
    else:
        outcome_ids = list(Outcome.objects.filter(market=market).order_by("index").values_list("pk", flat=True))
        params["outcomes"] = outcome_ids
        params["per_share"] = [str(value) for value in resolution.payouts or []]
        # Rounded down to the credit quantum, in the house's favour.
        params["places"] = CREDIT_PLACES
        amount_sql = "TRUNC(SUM(p.shares * v.per_share), %(places)s)"
        source = (
            f"{POSITION} p JOIN unnest(%(outcomes)s::bigint[], %(per_share)s::numeric[]) AS v(outcome_id, per_share)"
            " ON v.outcome_id = p.outcome_id"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH inserted AS (
                  INSERT INTO {PAYOUT} (resolution_id, market_id, user_id, amount, created_at)
                  SELECT %(resolution)s, %(market)s, p.user_id, {amount_sql}, %(now)s
                  FROM {source}
                  WHERE p.market_id = %(market)s
                  GROUP BY p.user_id
                  RETURNING amount
                )
                SELECT count(*), COALESCE(SUM(amount), 0) FROM inserted""",  # noqa: S608
            params,
        )
        count, total = cursor.fetchone()
    return int(count), Decimal(total)


def _reversal(*, market: Market, previous: Resolution, house: Account) -> Posting | None:
    """Compensating entries for an earlier settlement: the books as if it had never been paid. Wallets
    that spent the payout meanwhile are written off to the house rather than taken below zero."""
    if previous.paid_total == ZERO and previous.released_total == ZERO:
        return None
    return Posting(
        kind=LedgerTransaction.Kind.REVERSAL,
        reference=f"reversal:{previous.pk}",
        memo=f"Reversal of the settlement of {market.slug} (resolution {previous.pk})",
        entries=[
            (market.escrow_id, previous.paid_total + previous.released_total),
            (house.pk, -previous.released_total),
        ],
        queries=[EntryQuery(WALLET_PAYOUTS_SQL, {"resolution": previous.pk, "sign": -1})],
        shortfalls_paid_by=house.pk,
    )


def _pause_for_tests() -> None:
    """Holds the transaction open (idle, payouts written but not committed) so a test can kill the worker
    here. A sleep in Python, not pg_sleep: a killed client is then noticed by PostgreSQL at once."""
    # Only the test settings define this setting, so no environment variable can slow production down.
    pause = float(getattr(settings, "FORECASTLE_SETTLEMENT_PAUSE", 0) or 0)
    if pause > 0:
        logger.warning("settlement pausing %.1fs (%s is set)", pause, PAUSE_ENV)
        time.sleep(pause)


@settlement_observed
def market_settle(*, market_id: int, now: datetime | None = None) -> SettlementResult | None:
    """Settles the market's current resolution; None when there is nothing (left) to settle.

    Safe to run twice or at once: the market row lock serialises runs, and the resolution's state in
    PostgreSQL says whether it was already paid (UNIQUE payout and ledger references back that up).
    """
    now = now or timezone.now()
    house = system_account(kind=Account.Kind.HOUSE)
    with transaction.atomic():
        market = market_lock(market_id=market_id, missing_ok=True)
        if market is None or market.status != Market.Status.RESOLVING:
            return None
        resolution = Resolution.objects.filter(market=market, is_current=True).first()
        if resolution is None or resolution.state != Resolution.State.PENDING:
            return None
        # Stable without a lock of its own: only this market's trades and settlements move its escrow, and
        # both hold the market lock. The posting function locks it, with every wallet, in id order.
        escrow_balance = Account.objects.values_list("balance", flat=True).get(pk=market.escrow_id)

        Resolution.objects.filter(market=market, state=Resolution.State.PENDING, is_current=False).update(
            state=Resolution.State.SUPERSEDED
        )
        previous = (
            Resolution.objects.filter(market=market, state=Resolution.State.SETTLED).exclude(pk=resolution.pk).first()
        )
        postings: list[Posting] = []
        reversal = None
        if previous is not None:
            reversal = _reversal(market=market, previous=previous, house=house)
            escrow_balance += previous.paid_total + previous.released_total
            if reversal is not None:
                postings.append(reversal)
        # Late trades are undone first, so the payouts see the positions as at known_at. One posting of the
        # set pays every wallet's shortfall (a reversal's or a void's): the reversal's when there is one.
        voided = late_trades_void(
            market=market, resolution=resolution, now=now, shortfalls_paid_by=None if reversal else house.pk
        )
        escrow_balance -= voided.escrow_paid
        if voided.posting is not None:
            postings.append(voided.posting)

        payout_count, paid_total = _insert_payouts(market=market, resolution=resolution, now=now)
        _pause_for_tests()
        if paid_total > ZERO:
            annulled = resolution.kind == Resolution.Kind.ANNULLED
            postings.append(
                Posting(
                    kind=LedgerTransaction.Kind.REFUND if annulled else LedgerTransaction.Kind.PAYOUT,
                    reference=f"settlement:{resolution.pk}",
                    memo=f"{'Refunds' if annulled else 'Payouts'} for {market.slug} (resolution {resolution.pk})",
                    entries=[(market.escrow_id, -paid_total)],
                    queries=[EntryQuery(WALLET_PAYOUTS_SQL, {"resolution": resolution.pk, "sign": 1})],
                )
            )

        released_total = escrow_balance - paid_total
        if released_total != ZERO:
            postings.append(
                Posting(
                    kind=LedgerTransaction.Kind.ESCROW_RELEASE,
                    reference=f"release:{resolution.pk}",
                    memo=f"Escrow remainder of {market.slug} (resolution {resolution.pk})",
                    entries=[(market.escrow_id, -released_total), (house.pk, released_total)],
                )
            )
            if released_total < ZERO:
                logger.warning("house paid %s into the escrow of %s to cover refunds", -released_total, market.slug)

        written_off = ZERO
        if postings:
            written_off = ledger_post_set(postings=postings).written_off
        if written_off > ZERO:
            logger.error(
                "re-resolution: wallets had spent %s of a reversed payout; written off to the house", written_off
            )

        if previous is not None:
            previous.state = Resolution.State.REVERSED
            previous.reversed_at = now
            previous.save(update_fields=["state", "reversed_at"])
        resolution.state = Resolution.State.SETTLED
        resolution.settled_at = now
        resolution.paid_total = paid_total
        resolution.released_total = released_total
        resolution.save(update_fields=["state", "settled_at", "paid_total", "released_total"])
        market.status = (
            Market.Status.ANNULLED if resolution.kind == Resolution.Kind.ANNULLED else Market.Status.RESOLVED
        )
        market.resolved_at = now
        market.save(update_fields=["status", "resolved_at"])
        market_changed(market_id=market.pk)
    return SettlementResult(
        resolution_id=resolution.pk,
        payout_count=payout_count,
        paid_total=paid_total,
        released_total=released_total,
        reversed_resolution_id=previous.pk if previous is not None else None,
        written_off=written_off,
        voided_trades=voided.trade_count,
    )


def markets_stuck_in_resolving(*, older_than: timedelta, now: datetime | None = None) -> list[int]:
    """Markets whose current resolution has waited longer than `older_than` for its settlement:
    the message was lost, or the worker died. Settling again is safe, so they are simply re-enqueued."""
    now = now or timezone.now()
    return list(
        Resolution.objects.filter(
            is_current=True,
            state=Resolution.State.PENDING,
            market__status=Market.Status.RESOLVING,
            created_at__lte=now - older_than,
        )
        .order_by("market_id")
        .values_list("market_id", flat=True)
    )
