"""Resolution-as-a-process benchmark: voiding late trades and finalizing many due proposals at once.

- void: a market with `--early` trades before `known_at` and `--late` after it (one-share buys seeded with
  set-based SQL, each with its balanced ledger transaction), resolved with that `known_at`; times the voiding
  alone (positions, q, trades, the ledger posting; rolled back), then the whole settlement that voids and
  pays, in one transaction.
- finalize: `--proposals` markets, each with a proposal whose window has ended; times the one run of the
  beat task's service that turns them all into resolutions (and enqueues their settlements after commit).

    make bench
    python -m bench.resolution --late 10000 --early 1000 --proposals 1000
"""

import argparse
import os
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_bench_resolution"

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Account, LedgerEntry, LedgerTransaction, User  # noqa: E402
from accounts.services import ledger_post_set, user_create  # noqa: E402
from bench.seed import trader_count_recount  # noqa: E402
from markets.locks import market_lock  # noqa: E402
from markets.models import Market, Outcome, Position, Proposal, Trade  # noqa: E402
from markets.services import (  # noqa: E402
    market_create,
    market_resolve,
    market_settle,
    markets_reconcile,
    proposal_create,
    proposals_finalize_due,
)
from markets.services.voiding import late_trades_void  # noqa: E402

OUTCOMES = ("YES", "NO")


# What each seeded trade buys: one share at this price (the escrow then covers the worst payout).
SHARE_PRICE = Decimal("0.6")


def seed_trades(*, market: Market, traders: list[User], count: int, first_at: datetime) -> None:
    """`count` buys of one share, set-based (a benchmark of voiding, not of trading): trader i mod n buys YES
    or NO in turn, one second apart from `first_at`, each with its own balanced ledger transaction, and the
    positions, q, escrow, wallets and volume move as the trades would have moved them."""
    accounts, entries, transactions = (
        Account._meta.db_table,
        LedgerEntry._meta.db_table,
        LedgerTransaction._meta.db_table,
    )
    trades, positions, outcomes = Trade._meta.db_table, Position._meta.db_table, Outcome._meta.db_table
    tag = f"bench:{market.pk}:{first_at.timestamp():.0f}:"
    params: dict[str, Any] = {
        "n": count,
        "users": [user.pk for user in traders],
        "outcomes": list(Outcome.objects.filter(market=market).order_by("index").values_list("pk", flat=True)),
        "market": market.pk,
        "escrow": market.escrow_id,
        "price": SHARE_PRICE,
        "tag": tag,
        "first": first_at,
    }
    # Trade i: its trader, outcome and ledger transaction (found again by the unique memo of its tag).
    plan = f"""SELECT i, (%(users)s::bigint[])[1 + i %% array_length(%(users)s::bigint[], 1)] AS user_id,
                      (%(outcomes)s::bigint[])[1 + i %% 2] AS outcome_id, lt.id AS transaction_id
               FROM generate_series(0, %(n)s - 1) AS i
               JOIN {transactions} lt ON lt.memo = %(tag)s || i"""  # noqa: S608 - table names are the models' own
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {transactions} (kind, memo, reference, created_at)
                SELECT 'trade', %(tag)s || i, NULL, now() FROM generate_series(0, %(n)s - 1) AS i""",  # noqa: S608
            params,
        )
        cursor.execute(
            f"""INSERT INTO {entries} (transaction_id, account_id, amount)
                SELECT p.transaction_id, a.id, -%(price)s FROM ({plan}) p
                JOIN {accounts} a ON a.user_id = p.user_id AND a.kind = 'wallet'
                UNION ALL
                SELECT p.transaction_id, %(escrow)s, %(price)s FROM ({plan}) p""",  # noqa: S608
            params,
        )
        cursor.execute(
            f"""INSERT INTO {trades} (market_id, outcome_id, user_id, side, shares, amount, probabilities_before,
                                      probabilities_after, ledger_transaction_id, created_at)
                SELECT %(market)s, p.outcome_id, p.user_id, 'buy', 1, %(price)s, '[0.5, 0.5]', '[0.5, 0.5]',
                       p.transaction_id, %(first)s + p.i * interval '1 second'
                FROM ({plan}) p""",  # noqa: S608
            params,
        )
        cursor.execute(
            f"""UPDATE {accounts} a SET balance = a.balance + d.amount
                FROM (SELECT e.account_id, SUM(e.amount) AS amount FROM {entries} e
                      JOIN {transactions} lt ON lt.id = e.transaction_id WHERE lt.memo LIKE %(tag)s || '%%'
                      GROUP BY e.account_id) d
                WHERE a.id = d.account_id""",  # noqa: S608
            params,
        )
        cursor.execute(
            f"""INSERT INTO {positions} (user_id, market_id, outcome_id, shares, net_cost, updated_at)
                SELECT p.user_id, %(market)s, p.outcome_id, COUNT(*), COUNT(*) * %(price)s, now()
                FROM ({plan}) p GROUP BY p.user_id, p.outcome_id
                ON CONFLICT (user_id, outcome_id) DO UPDATE
                SET shares = {positions}.shares + EXCLUDED.shares,
                    net_cost = {positions}.net_cost + EXCLUDED.net_cost""",  # noqa: S608
            params,
        )
        cursor.execute(
            f"""UPDATE {outcomes} o SET shares_outstanding = o.shares_outstanding + d.shares
                FROM (SELECT p.outcome_id, COUNT(*) AS shares FROM ({plan}) p GROUP BY p.outcome_id) d
                WHERE o.id = d.outcome_id""",  # noqa: S608
            params,
        )
        trader_count_recount(cursor, market.pk)
        Market.objects.filter(pk=market.pk).update(volume=F("volume") + SHARE_PRICE * count)


def void_bench(*, early: int, late: int, traders_count: int, resolver: User) -> tuple[float, float, float, int]:
    now = timezone.now()
    market = market_create(
        slug="late-trades",
        question="Voiding benchmark?",
        kind=Market.Kind.BINARY,
        liquidity="500",
        closes_at=now + timedelta(days=1),
        now=now - timedelta(days=2),
    )
    traders = [user_create(username=f"late-{index}", password=None) for index in range(traders_count)]
    started = time.perf_counter()
    seed_trades(market=market, traders=traders, count=early, first_at=now - timedelta(days=1, hours=12))
    seed_trades(market=market, traders=traders, count=late, first_at=now - timedelta(hours=12))
    seeded = time.perf_counter() - started
    known_at = now - timedelta(days=1)
    resolution = market_resolve(
        market=market, user=resolver, kind="outcome", outcome_code="YES", reason="Benchmark", known_at=known_at
    )

    started = time.perf_counter()
    with transaction.atomic():
        market_lock(market_id=market.pk)
        voided = late_trades_void(market=market, resolution=resolution, now=timezone.now(), shortfalls_paid_by=None)
        if voided.posting is not None:
            ledger_post_set(postings=[voided.posting])
        transaction.set_rollback(True)
    void_alone = time.perf_counter() - started
    if voided.trade_count != late:
        raise RuntimeError(f"voided {voided.trade_count} trades, expected {late}")

    started = time.perf_counter()
    result = market_settle(market_id=market.pk)
    settle = time.perf_counter() - started
    if result is None or result.voided_trades != late:
        raise RuntimeError(f"settlement voided {result and result.voided_trades}, expected {late}")
    if Trade.objects.filter(market=market, voided_at__isnull=False).count() != late:
        raise RuntimeError("not every late trade is marked voided")
    return seeded, void_alone, settle, voided.trade_count


def finalize_bench(*, proposals: int, resolver: User) -> tuple[float, float, float, int]:
    now = timezone.now()
    started = time.perf_counter()
    for index in range(proposals):
        market = market_create(
            slug=f"due-{index}",
            question=f"Due proposal {index}?",
            kind=Market.Kind.BINARY,
            liquidity="100",
            closes_at=now + timedelta(days=1),
            now=now - timedelta(hours=2),
        )
        proposal_create(
            market=market,
            user=resolver,
            kind="outcome",
            outcome_code=OUTCOMES[index % 2],
            reason="Benchmark",
            source_url="https://example.org/answer",
            known_at=now - timedelta(hours=1),
            now=now - timedelta(minutes=30),
        )
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        finalized = proposals_finalize_due(now=now + timedelta(days=2))
        in_transaction = time.perf_counter() - started
    # After commit: each market's price snapshot is rebuilt and its settlement message sent.
    elapsed = time.perf_counter() - started
    if finalized != proposals or Proposal.objects.filter(state=Proposal.State.FINAL).count() != proposals:
        raise RuntimeError(f"finalized {finalized} proposals, expected {proposals}")
    return seeded, in_transaction, elapsed, finalized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--late", type=int, default=10_000, help="trades after known_at, to void")
    parser.add_argument("--early", type=int, default=1_000, help="trades before known_at, kept")
    parser.add_argument("--traders", type=int, default=200, help="traders sharing the trades")
    parser.add_argument("--proposals", type=int, default=1_000, help="proposals due at once")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        resolver = user_create(username="bench-resolver", password=None, is_staff=True, is_superuser=True)
        seeded, void_alone, settle, voided = void_bench(
            early=options.early, late=options.late, traders_count=options.traders, resolver=resolver
        )
        proposals_seeded, finalize_sql, finalize, finalized = finalize_bench(
            proposals=options.proposals, resolver=resolver
        )
        violations = markets_reconcile()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    print(f"seed {options.early:,} + {options.late:,} trades (set-based SQL):   {seeded:8.1f} s")
    print(f"void {voided:>7,} late trades (alone, set-based):   {void_alone:8.3f} s")
    print(f"settle with {voided:,} voided trades (void + pay):   {settle:8.3f} s")
    print(f"seed {options.proposals:,} markets with due proposals:        {proposals_seeded:8.1f} s")
    print(f"finalize {finalized:>6,} due proposals: the transaction {finalize_sql:8.3f} s")
    print(f"  ... with the after-commit work (snapshots, messages) {finalize:8.3f} s")
    print(f"invariant violations after the run:              {len(violations)}")


if __name__ == "__main__":
    main()
