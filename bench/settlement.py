"""Settlement benchmark: time and peak memory of settling one market, and how it scales.

The baseline, measured in the same run on the same database, is the same settlement on a market ten times
smaller: a ratio near 10 means settlement time grows linearly with the number of positions. The peak RSS
after each settlement shows the worker's memory staying flat (no row is loaded into Python).

    make bench
    python -m bench.settlement --positions 100000 --baseline 10000
"""

import argparse
import os
import resource
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("FORECASTLE_TEST_DB", "_bench_settle")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services import user_create  # noqa: E402
from bench.seed import market_with_positions  # noqa: E402
from markets.services import market_resolve, market_settle, markets_reconcile  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def settle(*, slug: str, positions: int, staff: User, kind: str) -> tuple[float, float]:
    """Seeds a market, resolves it, and times the settlement alone; returns (seconds, seed seconds)."""
    start = time.perf_counter()
    market = market_with_positions(slug=slug, traders=positions, staff=staff)
    seeded = time.perf_counter() - start
    if kind == "annulled":
        market_resolve(market=market, user=staff, kind="annulled", reason="Benchmark")
    else:
        market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Benchmark")
    start = time.perf_counter()
    result = market_settle(market_id=market.pk)
    elapsed = time.perf_counter() - start
    if result is None or result.payout_count != positions:
        raise RuntimeError(f"settlement of {slug} paid {result}, expected {positions} payouts")
    return elapsed, seeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=100_000, help="positions in the large market")
    parser.add_argument("--baseline", type=int, default=10_000, help="positions in the baseline market")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        staff = user_create(username="bench-staff", password=None, is_staff=True)
        settle(slug="warm-up", positions=1_000, staff=staff, kind="outcome")
        rss_before = peak_rss_mib()
        baseline, baseline_seed = settle(slug="baseline", positions=options.baseline, staff=staff, kind="outcome")
        rss_baseline = peak_rss_mib()
        large, large_seed = settle(slug="large", positions=options.positions, staff=staff, kind="outcome")
        rss_large = peak_rss_mib()
        annul, _ = settle(slug="large-annul", positions=options.positions, staff=staff, kind="annulled")
        violations = markets_reconcile()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    print(f"seed {options.baseline:>7,} positions (set-based SQL):    {baseline_seed:8.2f} s")
    print(f"seed {options.positions:>7,} positions (set-based SQL):    {large_seed:8.2f} s")
    print(f"settle {options.baseline:>7,} positions (one winner):     {baseline:8.3f} s")
    print(f"settle {options.positions:>7,} positions (one winner):     {large:8.3f} s")
    print(f"settle {options.positions:>7,} positions (annulled):       {annul:8.3f} s")
    print(
        f"ratio large / baseline (positions x{options.positions / options.baseline:.0f}):    {large / baseline:8.2f}x"
    )
    print(
        f"peak RSS before / after baseline / after large:  {rss_before:.1f} / {rss_baseline:.1f} / {rss_large:.1f} MiB"
    )
    print(f"invariant violations after the run:              {len(violations)}")


if __name__ == "__main__":
    main()
