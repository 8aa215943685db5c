"""Late trades are void: a trade placed after the answer was known is not a forecast (docs/settlement.md).

When the resolution being settled carries `known_at`, every trade of the market after it is undone before the
payouts are computed, inside the settlement's transaction and under the market's lock, set-based:

- positions: each (trader, outcome) gives back the shares its late trades added and its `net_cost` moves back
  by what they paid or received (one UPDATE ... FROM an aggregate of the late trades);
- the market maker: each outcome's q moves back the same way; the probabilities are the LMSR's at that q, and
  since the LMSR's cost depends only on q, not on the path, that is exactly the state at `known_at`;
- money: one ledger transaction `void:<resolution>` (kind `void`, compensating entries, nothing deleted) pays
  each late trader back what they paid net of what they received, out of the escrow; a trader who spent the
  proceeds of a voided sale cannot go below zero: the house covers that part (the write-off rule of
  re-resolution, `shortfalls_paid_by`), so the escrow gets back all of it;
- the trades stay, marked `voided_at` and `voided_by` (the trader's history shows them as voided), the volume
  drops by their amounts, and a price point records the restored probabilities;
- the market log gets a `trades_voided` event (how many, after when), its actor the resolver of the resolution;
- the price history (the chart, raw points and candles) leaves the voided trades' points out from then on, as the
  public trade list marks them voided: the candles rolled up from them are dropped to be rolled up again.

Scoring then uses the forecasts up to `known_at` only (forecast.services). Voiding is one-way: a later
re-resolution with a later `known_at` does not revive trades already voided; one with an earlier `known_at`
voids the trades between the two (docs/settlement.md, "Re-resolving a market whose trades were voided").
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Case, Count, DecimalField, F, Sum, When
from django.db.models.functions import Coalesce

from accounts.models import Account, LedgerTransaction
from accounts.money import ZERO
from accounts.services import EntryQuery, Posting
from markets import lmsr
from markets.models import Market, MarketEvent, Outcome, Position, PricePoint, Resolution, Trade
from markets.pricing import lmsr_state
from markets.services.candles import candles_invalidate

# Table names are the models' own, never input: the f-strings below build no SQL from user data.
ACCOUNT = Account._meta.db_table
POSITION = Position._meta.db_table
OUTCOME = Outcome._meta.db_table
TRADE = Trade._meta.db_table

LATE = "t.market_id = %(market)s AND t.created_at > %(known_at)s AND t.voided_at IS NULL"
SIGNED_SHARES = "CASE WHEN t.side = 'buy' THEN t.shares ELSE -t.shares END"
SIGNED_AMOUNT = "CASE WHEN t.side = 'buy' THEN t.amount ELSE -t.amount END"

# Each late trader's wallet gets back what they paid for late buys, net of what late sales paid them: the
# trades this resolution voided (marked before the posting runs this query).
WALLET_REFUNDS_SQL = f"""
    SELECT a.id, SUM({SIGNED_AMOUNT})
    FROM {TRADE} t JOIN {ACCOUNT} a ON a.user_id = t.user_id AND a.kind = 'wallet'
    WHERE t.market_id = %(market)s AND t.voided_by_id = %(resolution)s
    GROUP BY a.id
"""  # noqa: S608


@dataclass(frozen=True)
class VoidResult:
    trade_count: int
    # What the escrow pays out to the late traders' wallets (negative when they owe it, having sold late).
    escrow_paid: Decimal
    # The ledger transaction to post with the settlement's; None when no wallet's money moves.
    posting: Posting | None


NOTHING_VOIDED = VoidResult(trade_count=0, escrow_paid=ZERO, posting=None)


def late_trades_void(
    *, market: Market, resolution: Resolution, now: datetime, shortfalls_paid_by: int | None
) -> VoidResult:
    """Undoes every trade of `market` after `resolution.known_at`. Call under the market's lock, inside the
    settlement's transaction, before the payouts are computed, and post the returned posting in the same
    transaction (the caller adds it to its ledger set). Idempotent: voided trades are not late any more."""
    if resolution.known_at is None:
        return NOTHING_VOIDED
    late = Trade.objects.filter(market=market, created_at__gt=resolution.known_at, voided_at__isnull=True)
    signed_amount = Case(
        When(side=Trade.Side.BUY, then=F("amount")),
        default=-F("amount"),
        output_field=DecimalField(max_digits=20, decimal_places=6),
    )
    totals = late.aggregate(
        count=Count("pk"),
        net=Coalesce(Sum(signed_amount), ZERO, output_field=DecimalField(max_digits=20, decimal_places=6)),
        volume=Coalesce(Sum("amount"), ZERO, output_field=DecimalField(max_digits=20, decimal_places=6)),
    )
    count = int(totals["count"])
    if count == 0:
        return NOTHING_VOIDED
    params: dict[str, Any] = {
        "market": market.pk,
        "known_at": resolution.known_at,
        "now": now,
        "resolution": resolution.pk,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {POSITION} p
                SET shares = p.shares - late.shares, net_cost = p.net_cost - late.cost, updated_at = %(now)s
                FROM (SELECT t.user_id, t.outcome_id, SUM({SIGNED_SHARES}) AS shares, SUM({SIGNED_AMOUNT}) AS cost
                      FROM {TRADE} t WHERE {LATE} GROUP BY t.user_id, t.outcome_id) late
                WHERE p.user_id = late.user_id AND p.outcome_id = late.outcome_id""",  # noqa: S608
            params,
        )
        cursor.execute(
            f"""UPDATE {OUTCOME} o SET shares_outstanding = o.shares_outstanding - late.shares
                FROM (SELECT t.outcome_id, SUM({SIGNED_SHARES}) AS shares
                      FROM {TRADE} t WHERE {LATE} GROUP BY t.outcome_id) late
                WHERE o.id = late.outcome_id""",  # noqa: S608
            params,
        )
        late.update(voided_at=now, voided_by=resolution)
        # Whether any wallet's money moves at all (a trader who bought and sold back late nets to zero).
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM ({WALLET_REFUNDS_SQL}) w(account_id, amount) WHERE w.amount <> 0)",  # noqa: S608
            params,
        )
        (money_moves,) = cursor.fetchone()

    posting = None
    if money_moves:
        posting = Posting(
            kind=LedgerTransaction.Kind.VOID,
            reference=f"void:{resolution.pk}",
            memo=f"{count} trades of {market.slug} after {resolution.known_at:%Y-%m-%d %H:%M} UTC voided",
            entries=[(market.escrow_id, -totals["net"])],
            queries=[EntryQuery(WALLET_REFUNDS_SQL, {"market": market.pk, "resolution": resolution.pk})],
            shortfalls_paid_by=shortfalls_paid_by,
        )
    Market.objects.filter(pk=market.pk).update(volume=F("volume") - totals["volume"])

    outcomes = list(Outcome.objects.filter(market=market).order_by("index"))
    b = float(market.liquidity)
    restored = lmsr.prices(lmsr_state(b, outcomes), b)
    for outcome, probability in zip(outcomes, restored, strict=True):
        outcome.probability = probability
    Outcome.objects.bulk_update(outcomes, ["probability"])
    PricePoint.objects.create(market=market, probabilities=restored, created_at=now)
    # The voided trades' price points leave the history (markets.selectors.prices.standing_price_points):
    # the candles rolled up from them go.
    candles_invalidate(market_id=market.pk, moment=resolution.known_at)
    MarketEvent.objects.create(
        market=market,
        kind=MarketEvent.Kind.TRADES_VOIDED,
        actor_id=resolution.created_by_id,
        data={
            "resolution": resolution.pk,
            "trades": count,
            "known_at": resolution.known_at.isoformat(),
            "escrow_paid": str(totals["net"]),
        },
        created_at=now,
    )
    return VoidResult(trade_count=count, escrow_paid=totals["net"], posting=posting)
