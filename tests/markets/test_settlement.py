import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from accounts.models import Account, LedgerTransaction
from accounts.money import ZERO
from accounts.services import system_account
from markets.errors import InvalidInput, MarketStateError
from markets.models import Market, Payout, ReconciliationRun, Resolution
from markets.services import (
    market_resolve,
    market_settle,
    markets_reconcile,
    markets_stuck_in_resolving,
    reconciliation_run,
)
from tests.markets.settlement_helpers import balances, buy, expected_payouts, sell

pytestmark = pytest.mark.django_db


@pytest.fixture
def traded(make_market, make_user):
    """A binary market: three traders on YES/NO, one of whom took a profit by selling."""
    staff = make_user("staff", is_staff=True)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    market = make_market("rain", created_by=staff)
    buy(alice, market, "YES", "50")
    buy(bob, market, "YES", "120")
    buy(carol, market, "NO", "40")
    sell(alice, market, "YES", "60")
    return market, staff, [alice, bob, carol]


def house_balance() -> Decimal:
    return system_account(kind=Account.Kind.HOUSE).balance


def test_outcome_resolution_pays_each_winning_share_one_credit(traded):
    market, staff, users = traded
    before = balances(users)
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="It rained.")
    market.refresh_from_db()
    assert market.status == Market.Status.RESOLVING
    expected = expected_payouts(market=market, kind="outcome", per_share=[Decimal(1), ZERO])

    result = market_settle(market_id=market.pk)

    assert result is not None
    after = balances(users)
    for user in users:
        assert after[user.pk] == before[user.pk] + expected[user.pk]
    assert expected[users[2].pk] == ZERO
    market.refresh_from_db()
    assert market.status == Market.Status.RESOLVED
    assert market.escrow.balance == ZERO
    assert result.paid_total == sum(expected.values())
    assert market.resolutions.get(is_current=True).payouts == ["1", "0"]
    assert markets_reconcile() == []


def test_split_resolution_pays_each_share_its_part(traded):
    market, staff, users = traded
    before = balances(users)
    market_resolve(market=market, user=staff, kind="split", split=["0.3", "0.7"], reason="Partly rained.")
    expected = expected_payouts(market=market, kind="split", per_share=[Decimal("0.3"), Decimal("0.7")])
    market_settle(market_id=market.pk)
    after = balances(users)
    assert {u.pk: after[u.pk] - before[u.pk] for u in users} == expected
    assert markets_reconcile() == []


def test_annulment_refunds_net_cost_and_a_trader_in_profit_gets_nothing(traded, make_user):
    market, staff, users = traded
    before = balances(users)
    expected = expected_payouts(market=market, kind="annulled", per_share=None)
    market_resolve(market=market, user=staff, kind="annulled", reason="The question was ambiguous.")
    market_settle(market_id=market.pk)
    after = balances(users)
    assert {u.pk: after[u.pk] - before[u.pk] for u in users} == expected
    # Bob and Carol paid in; each gets back exactly what they paid, so every trader is whole or in profit.
    for user in users:
        assert after[user.pk] >= Decimal(1000)
    market.refresh_from_db()
    assert market.status == Market.Status.ANNULLED
    assert market.resolutions.get(is_current=True).payouts is None
    assert markets_reconcile() == []


def test_settling_twice_pays_once(traded):
    market, staff, users = traded
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="NO", reason="Dry.")
    assert market_settle(market_id=market.pk) is not None
    after_first = balances(users)
    house_after_first = house_balance()
    assert market_settle(market_id=market.pk) is None
    assert balances(users) == after_first
    assert house_balance() == house_after_first
    assert Payout.objects.filter(market=market).count() == len(users)
    assert markets_reconcile() == []


def test_re_resolution_leaves_everyone_where_the_new_resolution_alone_would(traded):
    market, staff, users = traded
    before = balances(users)
    house_before = house_balance()
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Rained.")
    market_settle(market_id=market.pk)
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="NO", reason="Sensor error: it was dry.")
    market.refresh_from_db()
    assert market.status == Market.Status.RESOLVING
    expected = expected_payouts(market=market, kind="outcome", per_share=[ZERO, Decimal(1)])
    market_settle(market_id=market.pk)

    after = balances(users)
    assert {u.pk: after[u.pk] - before[u.pk] for u in users} == expected
    market.refresh_from_db()
    assert market.escrow.balance == ZERO
    # The house keeps exactly what the new resolution alone leaves in the escrow.
    assert house_balance() - house_before == _escrow_at_close(market) - sum(expected.values())
    states = list(market.resolutions.order_by("created_at").values_list("state", "is_current"))
    assert states == [("reversed", False), ("settled", True)]
    assert LedgerTransaction.objects.filter(kind="reversal").count() == 1
    assert markets_reconcile() == []


def _escrow_at_close(market: Market) -> Decimal:
    """Everything the escrow ever received minus what it paid to traders before settlement."""
    return market.subsidy + sum((t.amount if t.side == "buy" else -t.amount for t in market.trades.all()), start=ZERO)


def test_resolving_an_open_market_closes_it_first(traded):
    market, staff, _users = traded
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Early news.")
    market.refresh_from_db()
    assert market.closed_at is not None
    assert market.status == Market.Status.RESOLVING


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "outcome", "outcome_code": "MAYBE", "reason": "x"}, "outcome"),
        ({"kind": "split", "split": ["0.5", "0.6"], "reason": "x"}, "split"),
        ({"kind": "split", "split": ["0.5"], "reason": "x"}, "split"),
        ({"kind": "split", "split": ["-0.5", "1.5"], "reason": "x"}, "split"),
        ({"kind": "split", "split": ["abc", "1"], "reason": "x"}, "split"),
        ({"kind": "split", "split": ["0.1234567", "0.8765433"], "reason": "x"}, "split"),
        ({"kind": "outcome", "outcome_code": "YES", "reason": "   "}, "reason"),
        ({"kind": "sideways", "reason": "x"}, "kind"),
    ],
)
def test_bad_resolutions_are_refused_and_write_nothing(traded, kwargs, field):
    market, staff, _users = traded
    with pytest.raises(InvalidInput) as error:
        market_resolve(market=market, user=staff, **kwargs)
    assert error.value.field == field
    market.refresh_from_db()
    assert market.status == Market.Status.OPEN
    assert not Resolution.objects.exists()


def test_a_draft_market_cannot_be_resolved(make_market, make_user):
    staff = make_user("staff", is_staff=True)
    market = make_market(
        slug="draft",
        question="Draft?",
        kind="binary",
        liquidity="10",
        closes_at=timezone.now() + timedelta(days=1),
        open_now=False,
    )
    with pytest.raises(MarketStateError):
        market_resolve(market=market, user=staff, kind="annulled", reason="Never opened.")
    assert not Resolution.objects.exists()


def test_staff_only_even_when_called_directly(traded, make_user):
    market, _staff, _users = traded
    with pytest.raises(PermissionDenied):
        market_resolve(market=market, user=make_user("mallory"), kind="annulled", reason="Mine.")
    assert not Resolution.objects.exists()


def test_sweeper_finds_only_settlements_waiting_too_long(traded):
    market, staff, _users = traded
    market_resolve(market=market, user=staff, kind="annulled", reason="Void.")
    assert markets_stuck_in_resolving(older_than=timedelta(minutes=2)) == []
    assert markets_stuck_in_resolving(older_than=timedelta(0)) == [market.pk]
    market_settle(market_id=market.pk)
    assert markets_stuck_in_resolving(older_than=timedelta(0)) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_settlements_pay_once(traded):
    market, staff, users = traded
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Rained.")
    expected = expected_payouts(market=market, kind="outcome", per_share=[Decimal(1), ZERO])
    before = balances(users)
    results: list[object] = []
    barrier = threading.Barrier(4)

    def settle() -> None:
        try:
            barrier.wait()
            results.append(market_settle(market_id=market.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=settle) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in results) == 1
    after = balances(users)
    assert {u.pk: after[u.pk] - before[u.pk] for u in users} == expected
    assert markets_reconcile() == []


def test_re_resolution_takes_back_a_spent_payout_only_down_to_zero(make_market, traded, make_user):
    """A winner who spent the payout cannot go below zero when a re-resolution takes it back: the house
    writes off the part the wallet no longer holds, and the books still balance."""
    market, staff, users = traded
    bob = users[1]
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Rained.")
    market_settle(market_id=market.pk)
    other = make_market("elsewhere", created_by=staff)
    buy(bob, other, "YES", str(balances([bob])[bob.pk]))  # spends everything, payout included
    assert balances([bob])[bob.pk] < Decimal("0.01")

    market_resolve(market=market, user=staff, kind="outcome", outcome_code="NO", reason="It was dry after all.")
    result = market_settle(market_id=market.pk)

    assert result is not None
    assert result.written_off > 0
    assert balances([bob])[bob.pk] == ZERO
    assert markets_reconcile() == []


def test_reconciliation_run_records_settlement_violations(traded):
    market, staff, _users = traded
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Rained.")
    market_settle(market_id=market.pk)
    assert reconciliation_run().violation_count == 0

    # Corrupt the books behind the services' back: a settled market whose escrow is not empty.
    Account.objects.filter(pk=market.escrow_id).update(balance=Decimal("5"))
    run = reconciliation_run()
    assert run.violation_count >= 1
    assert any(v.startswith(f"settled_escrow_empty: {market.slug}") for v in run.violations)
    assert ReconciliationRun.objects.count() == 2


def test_reconciliation_catches_a_payout_without_its_ledger_entry(traded):
    market, staff, _users = traded
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Rained.")
    market_settle(market_id=market.pk)
    Payout.objects.filter(market=market, amount__gt=0).update(amount=Decimal("1"))
    assert any(v.invariant == "payout_paid_once" for v in markets_reconcile())
