"""Notification fan-out benchmark: telling every holder of a resolved market, against a raw INSERT ... SELECT.

A market with N holders (every one with an e-mail address, one in ten with e-mail turned off for resolutions) is
resolved and settled; then `market_resolved_notify` writes one notification per holder (the service the Celery
task calls). The floor, in the same run and the same table (same indexes, same unique key), is the bare
INSERT ... SELECT of the same rows from the payouts, with constant columns and no joins. A second fan-out of
the same event (a retried or duplicated task) must write nothing. Memory is Python's peak allocation during
the call (tracemalloc): flat, since no row comes into Python.

    make bench
    python -m bench.notifications --holders 100000
"""

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable
from unittest import mock

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
# A scratch database of its own, never the test run's (a run and a benchmark may share FORECASTLE_TEST_DB).
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_bench_notify"

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from accounts.models import Notification, NotificationPreference, User  # noqa: E402
from accounts.services import user_create  # noqa: E402
from bench.seed import market_with_positions  # noqa: E402
from markets.models import Market, Payout, Resolution  # noqa: E402
from markets.services import market_resolve, market_settle  # noqa: E402
from markets.services.notifications import market_resolved_notify  # noqa: E402

NOTIFICATION = Notification._meta.db_table
PAYOUT = Payout._meta.db_table


def resolved_market(*, slug: str, holders: int, staff: User) -> Market:
    market = market_with_positions(slug=slug, traders=holders, staff=staff)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {User._meta.db_table} SET email = username || '@example.org' WHERE username LIKE %s",  # noqa: S608
            [f"{slug}-%"],
        )
        cursor.execute(
            f"""INSERT INTO {NotificationPreference._meta.db_table} (user_id, kind, delivery)
                SELECT id, 'market_resolved', 'off' FROM {User._meta.db_table}
                WHERE username LIKE %s AND id %% 10 = 0""",  # noqa: S608
            [f"{slug}-%"],
        )
        # A live database has statistics (autovacuum); tables bulk-loaded a second ago do not, and without them
        # the planner may join the preferences by a scan per row.
        cursor.execute("ANALYZE")
    with mock.patch("markets.services.resolution.settlement_enqueue"):
        market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Benchmark")
    if market_settle(market_id=market.pk) is None:
        raise RuntimeError(f"{slug} did not settle")
    return market


def measured(call: Callable[[], int]) -> tuple[int, float, float]:
    """(rows, seconds, peak Python allocation in MiB) of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    rows = call()
    elapsed = time.perf_counter() - start
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return rows, elapsed, peak / 2**20


def floor_insert(resolution_id: int) -> int:
    """The same rows, written as plainly as PostgreSQL allows: constants, no joins, the same unique key."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {NOTIFICATION} (recipient_id, kind, event_key, payload, link, created_at, email)
                SELECT po.user_id, 'market_resolved', 'floor:' || %(resolution)s, '{{}}'::jsonb, '', now(), 'none'
                FROM {PAYOUT} po WHERE po.resolution_id = %(resolution)s
                ON CONFLICT (event_key, recipient_id) DO NOTHING""",  # noqa: S608
            {"resolution": resolution_id},
        )
        return cursor.rowcount


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holders", type=int, default=100_000, help="holders of the resolved market")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        staff = user_create(username="bench-staff", password=None, is_staff=True)
        warm = resolved_market(slug="warm-up", holders=1_000, staff=staff)
        market_resolved_notify(market_id=warm.pk)
        start = time.perf_counter()
        market = resolved_market(slug="large", holders=options.holders, staff=staff)
        seeded = time.perf_counter() - start
        resolution = Resolution.objects.get(market=market, is_current=True)

        floor_rows, floor_seconds, floor_mib = measured(lambda: floor_insert(resolution.pk))
        rows, seconds, mib = measured(lambda: market_resolved_notify(market_id=market.pk))
        again_rows, again_seconds, _ = measured(lambda: market_resolved_notify(market_id=market.pk))
        written = Notification.objects.filter(event_key=f"market_resolved:{resolution.pk}")
        immediate = written.filter(email=Notification.Email.IMMEDIATE).count()
        total = written.count()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    if rows != options.holders or floor_rows != options.holders or again_rows != 0 or total != options.holders:
        raise RuntimeError(f"wrote {rows} (floor {floor_rows}, again {again_rows}, in table {total})")
    print(f"seed and settle {options.holders:,} holders:                 {seeded:8.2f} s")
    print(f"floor: raw INSERT ... SELECT of {options.holders:,} rows:    {floor_seconds:8.3f} s  {floor_mib:6.2f} MiB")
    print(f"fan-out market_resolved_notify, {options.holders:,} holders: {seconds:8.3f} s  {mib:6.2f} MiB")
    print(f"ratio fan-out / floor:                            {seconds / floor_seconds:8.2f}x")
    print(f"the same event again (retried task), rows written: {again_rows}     {again_seconds:8.3f} s")
    print(f"rows written {total:,}, of which to be mailed at once: {immediate:,} (one in ten turned e-mail off)")


if __name__ == "__main__":
    main()
