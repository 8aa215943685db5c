"""Settlement on real Celery worker processes, against the test PostgreSQL and Redis.

Each test starts `celery -A config worker` subprocesses (tests/celery_worker.py) and commits its data
(`transaction=True`), because the workers are other processes."""

from decimal import Decimal

import pytest
from celery import current_app
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Account, LedgerEntry
from accounts.money import ZERO
from bench.seed import market_with_positions
from forecast.tasks import market_score
from markets.models import Market, Payout, Position, Resolution
from markets.services import market_resolve, markets_reconcile
from markets.services.settlement import PAUSE_ENV
from markets.tasks import settlements_sweep
from tests.celery_worker import broker_flush, celery_worker, wait_for
from tests.markets.settlement_helpers import balances, buy, expected_payouts, sell

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SETTLE_TASK = "markets.tasks.market_settle"


@pytest.fixture(autouse=True)
def clean_broker():
    broker_flush()
    yield
    broker_flush()


def settlements_finished(*logs: str) -> int:
    return sum(
        1 for log in logs for line in log.splitlines() if f"Task {SETTLE_TASK}[" in line and "succeeded in" in line
    )


def market_status(market: Market) -> str:
    return Market.objects.values_list("status", flat=True).get(pk=market.pk)


def settlement_in_progress() -> bool:
    """The worker's transaction is open with the payouts written and not committed (paused by the test hook)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND state = 'idle in transaction' AND query LIKE '%%INSERT INTO markets_payout%%'"""
        )
        return cursor.fetchone()[0] > 0


def assert_paid_exactly_once(market: Market, per_share: list[Decimal]) -> None:
    """Every seeded trader (wallets started at zero) holds exactly their payout, paid by one entry."""
    resolution = market.resolutions.get(is_current=True)
    traders = Position.objects.filter(market=market).count()
    assert Payout.objects.filter(market=market).count() == traders
    assert Payout.objects.filter(resolution=resolution).count() == traders
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM markets_position p
               JOIN markets_outcome o ON o.id = p.outcome_id
               JOIN accounts_account a ON a.user_id = p.user_id
               WHERE p.market_id = %s AND a.balance <> TRUNC(p.shares * (%s::numeric[])[o.index + 1], 6)""",
            [market.pk, [str(value) for value in per_share]],
        )
        assert cursor.fetchone()[0] == 0
    paid = Payout.objects.filter(resolution=resolution, amount__gt=0).count()
    entries = LedgerEntry.objects.filter(transaction__reference=f"settlement:{resolution.pk}", amount__gt=0)
    assert entries.count() == paid
    assert entries.values("account_id").distinct().count() == paid
    assert Account.objects.get(pk=market.escrow_id).balance == ZERO
    assert markets_reconcile() == []


def test_worker_settles_what_staff_resolve_through_the_api(make_market, make_user):
    staff = make_user("staff", is_staff=True)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    market = make_market("e2e", created_by=staff, outcomes=3)
    buy(alice, market, "O0", "40")
    buy(bob, market, "O1", "75")
    buy(carol, market, "O2", "20")
    buy(alice, market, "O1", "10")
    sell(bob, market, "O1", "5")
    users = [alice, bob, carol]
    before = balances(users)
    expected = expected_payouts(market=market, kind="split", per_share=[Decimal("0.2"), Decimal("0.8"), ZERO])
    client = APIClient()
    client.force_login(staff)

    with celery_worker(name="e2e") as worker:
        response = client.post(
            f"/api/v1/markets/{market.slug}/resolution/",
            {"kind": "split", "split": ["0.2", "0.8", "0"], "reason": "Mostly O1."},
            format="json",
        )
        assert response.status_code == 202, response.content
        wait_for(lambda: market_status(market) == Market.Status.RESOLVED, what="the worker to settle")
        wait_for(lambda: market_score.name in worker.output(), what="scoring to be enqueued", timeout=10)

    after = balances(users)
    assert {u.pk: after[u.pk] - before[u.pk] for u in users} == expected
    assert sum(expected.values()) > 0
    assert markets_reconcile() == []


def test_a_worker_killed_mid_settlement_loses_nothing_and_the_sweeper_finishes_it(make_user):
    staff = make_user("staff", is_staff=True)
    market = market_with_positions(slug="big", traders=20_000, staff=staff)

    with celery_worker(name="doomed", env={PAUSE_ENV: "120"}) as doomed:
        market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Kill test.")
        wait_for(settlement_in_progress, what="the settlement to be mid-transaction")
        doomed.kill()

    # The killed worker's transaction rolled back: nothing paid, the settlement still pending.
    wait_for(lambda: not settlement_in_progress(), what="PostgreSQL to drop the dead connection", timeout=10)
    assert market_status(market) == Market.Status.RESOLVING
    assert not Payout.objects.filter(market=market).exists()
    assert Resolution.objects.get(market=market, is_current=True).state == Resolution.State.PENDING
    assert markets_reconcile() == []

    # Its message is unacknowledged in Redis until the visibility timeout: the sweeper re-enqueues it.
    with celery_worker(name="rescuer") as rescuer:
        assert settlements_sweep(older_than_seconds=0) == 1
        wait_for(lambda: market_status(market) == Market.Status.RESOLVED, what="the rescue", timeout=120)
        # Delivered again (a duplicate message): nothing is paid twice.
        current_app.send_task(SETTLE_TASK, args=[market.pk])
        wait_for(lambda: settlements_finished(rescuer.output()) >= 2, what="the duplicate to run", timeout=60)

    assert_paid_exactly_once(market, [Decimal(1), ZERO])


def test_a_task_delivered_several_times_to_concurrent_workers_pays_once(make_user):
    staff = make_user("staff", is_staff=True)
    market = market_with_positions(slug="dup", traders=5_000, staff=staff)

    with celery_worker(name="first") as first, celery_worker(name="second") as second:
        market_resolve(market=market, user=staff, kind="annulled", reason="Duplicate delivery test.")
        for _ in range(3):
            current_app.send_task(SETTLE_TASK, args=[market.pk])

        wait_for(
            lambda: settlements_finished(first.output(), second.output()) >= 4,
            what="four deliveries to run",
            timeout=120,
        )

    assert market_status(market) == Market.Status.ANNULLED
    resolution = market.resolutions.get(is_current=True)
    assert Payout.objects.filter(market=market).count() == 5_000
    refunds = dict(Payout.objects.filter(resolution=resolution).values_list("user_id", "amount"))
    expected = expected_payouts(market=market, kind="annulled", per_share=None)
    assert refunds == expected
    assert dict(Account.objects.filter(user_id__in=list(expected)).values_list("user_id", "balance")) == expected
    assert markets_reconcile() == []
