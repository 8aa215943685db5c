"""Settlement benchmark: time and peak memory of settling one market, against a floor, and how it scales.

The floor, measured in the same run on the same database, is raw set-based SQL doing the same row writes for
an identical market, in one transaction under the market's lock: the payout rows, one ledger transaction with
an entry per paid wallet and the escrow's, the balances of those accounts, the market's status. It has none of
the service's checks (the sum per transaction, the lock of every account in id order, the escrow release, the
resolution's bookkeeping); the deferred balance trigger (accounts migration 0002) runs for both, being part of
the schema. Settlement and floor alternate, `--repeats` times each; the ratio is of their medians.
The scaling baseline is the same settlement on a market ten times smaller: a ratio near 10 means settlement
time grows linearly with the number of positions. The peak RSS after each settlement shows the worker's memory
staying flat (no row is loaded into Python).

    make bench
    python -m bench.settlement --positions 100000 --baseline 10000
"""

import argparse
import os
import resource
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_bench_settle"

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.db.models import Sum  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Account, LedgerTransaction, User  # noqa: E402
from accounts.services import ledger_transfer, system_account, user_create  # noqa: E402
from bench.seed import market_with_positions  # noqa: E402
from markets.models import Market, Payout, Resolution  # noqa: E402
from markets.services import market_resolve, market_settle, markets_reconcile  # noqa: E402

# The floor's statements: what a settlement of one winning outcome must write, and nothing else. The ledger
# transaction's id comes back from its INSERT and goes into the next statements as a parameter.
FLOOR_LOCK_SQL = "SELECT id FROM markets_market WHERE id = %(market)s FOR UPDATE"
FLOOR_PAYOUTS_SQL = """
    INSERT INTO markets_payout (resolution_id, market_id, user_id, amount, created_at)
    SELECT %(resolution)s, %(market)s, p.user_id,
           TRUNC(SUM(CASE WHEN p.outcome_id = %(winner)s THEN p.shares ELSE 0 END), 6), %(now)s
    FROM markets_position p WHERE p.market_id = %(market)s GROUP BY p.user_id"""
FLOOR_TRANSACTION_SQL = """
    INSERT INTO accounts_ledgertransaction (kind, memo, reference, created_at)
    VALUES ('payout', 'floor', 'settlement:' || %(resolution)s, %(now)s) RETURNING id"""
FLOOR_WRITES_SQL = [
    """INSERT INTO accounts_ledgerentry (transaction_id, account_id, amount)
       SELECT %(transaction)s, a.id, po.amount
       FROM markets_payout po JOIN accounts_account a ON a.user_id = po.user_id AND a.kind = 'wallet'
       WHERE po.resolution_id = %(resolution)s AND po.amount > 0
       UNION ALL
       SELECT %(transaction)s, %(escrow)s, -SUM(po.amount)
       FROM markets_payout po WHERE po.resolution_id = %(resolution)s""",
    """UPDATE accounts_account a SET balance = a.balance + e.amount
       FROM accounts_ledgerentry e WHERE e.transaction_id = %(transaction)s AND a.id = e.account_id""",
    "UPDATE markets_market SET status = 'resolved', resolved_at = %(now)s WHERE id = %(market)s",
]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def resolved_market(*, slug: str, positions: int, staff: User, kind: str) -> tuple[Market, float]:
    """A seeded market with a pending resolution (YES wins, or annulled); and the seconds the seeding took."""
    start = time.perf_counter()
    market = market_with_positions(slug=slug, traders=positions, staff=staff)
    seeded = time.perf_counter() - start
    if kind == "annulled":
        market_resolve(market=market, user=staff, kind="annulled", reason="Benchmark")
    else:
        market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Benchmark")
    return market, seeded


def settle(*, slug: str, positions: int, staff: User, kind: str) -> tuple[float, float]:
    """Seeds a market, resolves it, and times the settlement alone; returns (seconds, seed seconds)."""
    market, seeded = resolved_market(slug=slug, positions=positions, staff=staff, kind=kind)
    start = time.perf_counter()
    result = market_settle(market_id=market.pk)
    elapsed = time.perf_counter() - start
    if result is None or result.payout_count != positions:
        raise RuntimeError(f"settlement of {slug} paid {result}, expected {positions} payouts")
    return elapsed, seeded


def floor_settle(*, slug: str, positions: int, staff: User) -> float:
    """Seeds and resolves a market like `settle`, then times the floor's statements on it in one transaction."""
    market, _seeded = resolved_market(slug=slug, positions=positions, staff=staff, kind="outcome")
    resolution = Resolution.objects.get(market=market, is_current=True)
    params = {
        "market": market.pk,
        "resolution": resolution.pk,
        "winner": resolution.outcome_id,
        "escrow": market.escrow_id,
        "now": timezone.now(),
    }
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(FLOOR_LOCK_SQL, params)
        cursor.execute(FLOOR_PAYOUTS_SQL, params)
        cursor.execute(FLOOR_TRANSACTION_SQL, params)
        params["transaction"] = cursor.fetchone()[0]
        for sql in FLOOR_WRITES_SQL:
            cursor.execute(sql, params)
    elapsed = time.perf_counter() - start
    # Untimed, so the books reconcile after the run: the escrow's remainder to the house, the resolution settled.
    paid = Payout.objects.filter(resolution=resolution).aggregate(total=Sum("amount"))["total"]
    escrow = Account.objects.get(pk=market.escrow_id)
    if escrow.balance:
        ledger_transfer(
            source=escrow,
            destination=system_account(kind=Account.Kind.HOUSE),
            amount=escrow.balance,
            kind=LedgerTransaction.Kind.ESCROW_RELEASE,
            memo="floor",
        )
    Resolution.objects.filter(pk=resolution.pk).update(
        state=Resolution.State.SETTLED,
        settled_at=params["now"],
        paid_total=paid,
        released_total=escrow.balance,
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=100_000, help="positions in the large market")
    parser.add_argument("--baseline", type=int, default=10_000, help="positions in the baseline market")
    parser.add_argument("--repeats", type=int, default=2, help="settlements and floors of the large market, each")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        # A resolver: superusers hold the resolve_market permission.
        staff = user_create(username="bench-staff", password=None, is_staff=True, is_superuser=True)
        settle(slug="warm-up", positions=1_000, staff=staff, kind="outcome")
        floor_settle(slug="warm-up-floor", positions=1_000, staff=staff)
        rss_before = peak_rss_mib()
        baseline, baseline_seed = settle(slug="baseline", positions=options.baseline, staff=staff, kind="outcome")
        rss_baseline = peak_rss_mib()
        large_runs: list[float] = []
        floor_runs: list[float] = []
        large_seed = 0.0
        for repeat in range(options.repeats):
            floor_runs.append(floor_settle(slug=f"floor-{repeat}", positions=options.positions, staff=staff))
            elapsed, large_seed = settle(
                slug=f"large-{repeat}", positions=options.positions, staff=staff, kind="outcome"
            )
            large_runs.append(elapsed)
        rss_large = peak_rss_mib()
        annul, _ = settle(slug="large-annul", positions=options.positions, staff=staff, kind="annulled")
        rss_annul = peak_rss_mib()
        violations = markets_reconcile()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    large = statistics.median(large_runs)
    floor = statistics.median(floor_runs)
    runs = ", ".join(f"{value:.3f}" for value in large_runs)
    floors = ", ".join(f"{value:.3f}" for value in floor_runs)
    print(f"seed {options.baseline:>7,} positions (set-based SQL):    {baseline_seed:8.2f} s")
    print(f"seed {options.positions:>7,} positions (set-based SQL):    {large_seed:8.2f} s")
    print(f"settle {options.baseline:>7,} positions (one winner):     {baseline:8.3f} s")
    print(f"settle {options.positions:>7,} positions (one winner):     {large:8.3f} s   (runs: {runs})")
    print(f"floor  {options.positions:>7,} positions (raw SQL):        {floor:8.3f} s   (runs: {floors})")
    print(f"ratio settlement / floor:                        {large / floor:8.2f}x")
    print(f"settle {options.positions:>7,} positions (annulled):       {annul:8.3f} s")
    print(
        f"ratio large / baseline (positions x{options.positions / options.baseline:.0f}):    {large / baseline:8.2f}x"
    )
    print(
        f"peak RSS before / after baseline / after large / after annulled:  {rss_before:.1f} / {rss_baseline:.1f}"
        f" / {rss_large:.1f} / {rss_annul:.1f} MiB"
    )
    print(f"invariant violations after the run:              {len(violations)}")
    for violation in violations:
        print(f"    {violation}")


if __name__ == "__main__":
    main()
