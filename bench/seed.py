"""Large markets made with set-based SQL (no Python object per row), for the settlement benchmark and
the worker tests. Every row keeps the invariants: wallets exist, q equals the positions, and the money
the positions cost sits in the escrow through a balanced ledger transaction."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.services import ledger_transfer, system_account
from markets.models import Market, Outcome, Position
from markets.services import market_create

# What each seeded share cost, per share: enough that the escrow covers the worst payout.
PRICE = Decimal("0.6")


def trader_count_recount(cursor: Any, market_id: int) -> None:
    """Sets the market's trader count (Market.trader_count, which a trade's write statement moves) to the users
    holding a position in it, after positions were written here without a trade."""
    cursor.execute(
        f"""UPDATE {Market._meta.db_table} SET trader_count =
                (SELECT count(DISTINCT user_id) FROM {Position._meta.db_table} WHERE market_id = %(market)s)
            WHERE id = %(market)s""",  # noqa: S608 - table names are the models' own
        {"market": market_id},
    )


def market_with_positions(*, slug: str, traders: int, staff: User | None = None) -> Market:
    """A binary market with `traders` new users, each holding 1..50 shares of YES (even) or NO (odd)."""
    market = market_create(
        slug=slug,
        question=f"Benchmark market {slug}?",
        kind=Market.Kind.BINARY,
        liquidity="100",
        closes_at=timezone.now() + timedelta(days=1),
        created_by=staff,
    )
    yes, no = Outcome.objects.filter(market=market).order_by("index").values_list("pk", flat=True)
    users, accounts, positions = User._meta.db_table, Account._meta.db_table, Position._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {users} (password, is_superuser, username, first_name, last_name, email,
                                      is_staff, is_active, date_joined)
                SELECT '!', false, %(slug)s || '-' || i, '', '', '', false, true, now()
                FROM generate_series(1, %(n)s) AS i""",  # noqa: S608 - table names are the models' own
            {"slug": slug, "n": traders},
        )
        cursor.execute(
            f"""INSERT INTO {accounts} (kind, key, user_id, balance, created_at)
                SELECT 'wallet', 'wallet:' || u.id, u.id, 0, now() FROM {users} u
                WHERE u.username LIKE %(prefix)s""",  # noqa: S608
            {"prefix": f"{slug}-%"},
        )
        cursor.execute(
            f"""INSERT INTO {positions} (user_id, market_id, outcome_id, shares, net_cost, updated_at)
                SELECT u.id, %(market)s, CASE WHEN u.id %% 2 = 0 THEN %(yes)s ELSE %(no)s END,
                       (u.id %% 50) + 1, ((u.id %% 50) + 1) * %(price)s, now()
                FROM {users} u WHERE u.username LIKE %(prefix)s""",  # noqa: S608
            {"market": market.pk, "yes": yes, "no": no, "price": PRICE, "prefix": f"{slug}-%"},
        )
        cursor.execute(
            f"""UPDATE {Outcome._meta.db_table} o SET shares_outstanding = s.total
                FROM (SELECT outcome_id, SUM(shares) AS total FROM {positions}
                      WHERE market_id = %(market)s GROUP BY outcome_id) s
                WHERE o.id = s.outcome_id""",  # noqa: S608
            {"market": market.pk},
        )
        trader_count_recount(cursor, market.pk)
        cursor.execute(f"SELECT SUM(net_cost) FROM {positions} WHERE market_id = %s", [market.pk])  # noqa: S608
        paid_in = cursor.fetchone()[0]
        # The traders' money, as if they had been granted it and spent it on these shares.
        ledger_transfer(
            source=system_account(kind=Account.Kind.MINT),
            destination=market.escrow,
            amount=paid_in,
            kind=LedgerTransaction.Kind.ADJUSTMENT,
            memo=f"Seeded positions of {slug}",
            reference=f"seed:{market.pk}",
        )
    market.refresh_from_db()
    return market
