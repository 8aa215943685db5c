"""Export benchmark: a market's trades streamed as CSV and JSON Lines, its rows per second and the process's
peak memory.

The market's trades are seeded with set-based SQL (a ledger transaction, a trade and a price point each), then
exported through the API view in this process (Django's test client, reading the streamed response piece by
piece, as a WSGI server would). The baseline market is ten times smaller: flat memory means the peak RSS after
the large export is about the one after the baseline, however many rows.

    make bench
    python -m bench.export --trades 1000000 --baseline 100000
"""

import argparse
import os
import resource
import time
from datetime import timedelta
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["FORECASTLE_TEST_DB"] = os.environ.get("FORECASTLE_TEST_DB", "") + "_bench_export"

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import LedgerTransaction, User  # noqa: E402
from accounts.services import user_create  # noqa: E402
from markets.models import Market, Outcome, PricePoint, Trade  # noqa: E402
from markets.services import market_create  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def market_with_trades(*, slug: str, trades: int, traders: list[User]) -> Market:
    """A binary market with `trades` trades, alternating YES and NO buys of 1..10 shares, one second apart.

    The rows are what the export reads (trades with their probabilities after, price points); their ledger
    transactions carry no entries, so this market is for reading only (the bench never reconciles it)."""
    opened = timezone.now() - timedelta(seconds=trades + 60)
    market = market_create(
        slug=slug,
        question=f"Export benchmark {slug}?",
        kind=Market.Kind.BINARY,
        liquidity="1000",
        closes_at=timezone.now() + timedelta(days=1),
        now=opened,
    )
    yes, no = Outcome.objects.filter(market=market).order_by("index").values_list("pk", flat=True)
    # The tables by name, in plain SQL (no string building); this check keeps the names true to the models.
    tables = (LedgerTransaction._meta.db_table, Trade._meta.db_table, PricePoint._meta.db_table)
    if tables != ("accounts_ledgertransaction", "markets_trade", "markets_pricepoint"):
        raise RuntimeError(f"the models' tables are now {tables}: update the SQL below")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO accounts_ledgertransaction (kind, memo, reference, created_at)
                SELECT 'trade', 'bench', %(slug)s || ':' || i, now() FROM generate_series(1, %(n)s) AS i""",
            {"slug": slug, "n": trades},
        )
        cursor.execute(
            """INSERT INTO markets_trade (market_id, outcome_id, user_id, side, shares, amount,
                                                probabilities_before, probabilities_after, ledger_transaction_id,
                                                created_at)
                SELECT %(market)s, CASE WHEN i %% 2 = 0 THEN %(yes)s ELSE %(no)s END,
                       (%(users)s::bigint[])[1 + i %% cardinality(%(users)s::bigint[])], 'buy',
                       (i %% 10) + 1, ((i %% 10) + 1) * 0.5,
                       '[0.5, 0.5]'::jsonb, jsonb_build_array(0.5 + (i %% 7) * 0.01, 0.5 - (i %% 7) * 0.01),
                       lt.id, %(opened)s + make_interval(secs => i)
                FROM accounts_ledgertransaction lt
                JOIN LATERAL (SELECT split_part(lt.reference, ':', 2)::int AS i) n ON true
                WHERE lt.reference LIKE %(prefix)s""",
            {
                "market": market.pk,
                "yes": yes,
                "no": no,
                "users": [user.pk for user in traders],
                "opened": opened,
                "prefix": f"{slug}:%",
            },
        )
        cursor.execute(
            """INSERT INTO markets_pricepoint (market_id, probabilities, trade_id, created_at)
                SELECT market_id, probabilities_after, id, created_at FROM markets_trade
                WHERE market_id = %s""",
            [market.pk],
        )
    return market


def export(client: Client, slug: str, fmt: str) -> tuple[int, int, float]:
    """Streams one export; returns (rows, bytes, seconds)."""
    start = time.perf_counter()
    response: Any = client.get(f"/api/v1/markets/{slug}/export/", {"format": fmt, "table": "trades"})
    if response.status_code != 200 or not response.streaming:
        raise RuntimeError(f"export of {slug} answered {response.status_code}")
    rows = size = 0
    for piece in response.streaming_content:
        rows += piece.count(b"\n")
        size += len(piece)
    response.close()
    elapsed = time.perf_counter() - start
    return rows - (1 if fmt == "csv" else 0), size, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=1_000_000, help="trades in the large market")
    parser.add_argument("--baseline", type=int, default=100_000, help="trades in the baseline market")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    # No throttle: the bench exports more often than the export rate allows.
    rates: dict[str, Any] = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])  # type: ignore[call-overload]
    rates.update(export=None, anon_read=None)
    results: list[tuple[str, int, int, float, float]] = []
    try:
        traders = [user_create(username=f"bench-trader-{i}", password=None) for i in range(20)]
        start = time.perf_counter()
        market_with_trades(slug="baseline", trades=options.baseline, traders=traders)
        market_with_trades(slug="large", trades=options.trades, traders=traders)
        seeded = time.perf_counter() - start
        with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
            client = Client()
            export(client, "baseline", "csv")  # warm-up: imports, first queries
            for slug in ("baseline", "large"):
                for fmt in ("csv", "jsonl"):
                    rows, size, seconds = export(client, slug, fmt)
                    results.append((f"{slug} {fmt}", rows, size, seconds, peak_rss_mib()))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    print(f"seed {options.baseline + options.trades:,} trades (set-based SQL): {seeded:8.1f} s")
    for name, rows, size, seconds, rss in results:
        print(
            f"export {name:<15} {rows:>9,} rows {size / 2**20:8.1f} MiB {seconds:7.2f} s "
            f"{rows / seconds:>9,.0f} rows/s   peak RSS {rss:6.1f} MiB"
        )


if __name__ == "__main__":
    main()
