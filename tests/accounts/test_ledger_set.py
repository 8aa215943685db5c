"""ledger_post_set: many balanced transactions at once, entries computed by the database, the rules of ledger_post."""

from decimal import Decimal

import pytest
from django.db import transaction

from accounts.errors import InsufficientFunds, LedgerImbalance
from accounts.models import Account, LedgerEntry, LedgerTransaction
from accounts.services import EntryQuery, Posting, ledger_post_set, ledger_reconcile, system_account, wallet_get
from tests.accounts.test_ledger import ledger_rows

pytestmark = pytest.mark.django_db

# Every listed wallet receives (or, with a negative amount, gives) the same amount.
EACH_WALLET = "SELECT id, %(amount)s::numeric FROM accounts_account WHERE id = ANY(%(ids)s)"


def each(wallets: list[Account], amount: str) -> EntryQuery:
    return EntryQuery(EACH_WALLET, {"ids": [wallet.pk for wallet in wallets], "amount": Decimal(amount)})


@pytest.fixture
def wallets(make_user) -> list[Account]:
    return [wallet_get(user=make_user()) for _ in range(3)]


def test_a_set_posts_every_transaction_and_moves_each_balance_once(wallets):
    house = system_account(kind=Account.Kind.HOUSE)
    posted = ledger_post_set(
        postings=[
            Posting(
                kind=LedgerTransaction.Kind.PAYOUT,
                memo="three payouts",
                reference="set:1",
                entries=[(house.pk, Decimal("-30"))],
                queries=[each(wallets, "10")],
            ),
            Posting(
                kind=LedgerTransaction.Kind.ADJUSTMENT,
                memo="one back",
                entries=[(wallets[0].pk, Decimal("-2.5")), (house.pk, Decimal("2.5"))],
            ),
        ]
    )
    assert [t.reference for t in posted.transactions] == ["set:1", None]
    assert posted.written_off == 0
    assert LedgerEntry.objects.filter(transaction=posted.transactions[0]).count() == 4
    balances = dict(Account.objects.filter(pk__in=[w.pk for w in wallets]).values_list("pk", "balance"))
    assert [balances[w.pk] for w in wallets] == [Decimal("1007.5"), Decimal("1010"), Decimal("1010")]
    house.refresh_from_db()
    assert house.balance == Decimal("-27.5")
    assert ledger_reconcile() == []


@pytest.mark.parametrize(
    "posting",
    [
        Posting(kind=LedgerTransaction.Kind.PAYOUT, memo="", entries=[], queries=[]),
        Posting(kind=LedgerTransaction.Kind.ADJUSTMENT, memo="", entries=[(0, Decimal("-0.0000001"))]),
    ],
    ids=["no entries", "unquantized"],
)
def test_empty_or_unquantized_postings_are_refused(wallets, posting):
    before = ledger_rows()
    with pytest.raises(LedgerImbalance), transaction.atomic():
        ledger_post_set(postings=[posting])
    assert ledger_rows() == before


def test_a_set_whose_computed_entries_do_not_balance_writes_nothing(wallets):
    house = system_account(kind=Account.Kind.HOUSE)
    before = ledger_rows()
    with pytest.raises(LedgerImbalance, match=r"summing to 0\.000001"), transaction.atomic():
        ledger_post_set(
            postings=[
                Posting(
                    kind=LedgerTransaction.Kind.PAYOUT,
                    memo="off by a quantum",
                    entries=[(house.pk, Decimal("-29.999999"))],
                    queries=[each(wallets, "10")],
                ),
            ]
        )
    assert ledger_rows() == before


def test_a_wallet_the_set_would_take_below_zero_refuses_the_whole_set(wallets):
    house = system_account(kind=Account.Kind.HOUSE)
    before = ledger_rows()
    with pytest.raises(InsufficientFunds), transaction.atomic():
        ledger_post_set(
            postings=[
                Posting(
                    kind=LedgerTransaction.Kind.PAYOUT,
                    memo="in",
                    entries=[(house.pk, Decimal("-3"))],
                    queries=[each(wallets, "1")],
                ),
                Posting(
                    kind=LedgerTransaction.Kind.REVERSAL,
                    memo="out",
                    entries=[(house.pk, Decimal("3003.000003"))],
                    queries=[each(wallets, "-1001.000001")],
                ),
            ]
        )
    assert ledger_rows() == before


def test_a_shortfall_payer_brings_each_wallet_back_to_zero_and_pays_the_rest(wallets):
    house = system_account(kind=Account.Kind.HOUSE)
    posted = ledger_post_set(
        postings=[
            Posting(
                kind=LedgerTransaction.Kind.REVERSAL,
                memo="take back 1,001.5 from each",
                entries=[(house.pk, Decimal("3004.5"))],
                queries=[each(wallets, "-1001.5")],
                shortfalls_paid_by=house.pk,
            ),
        ]
    )
    assert posted.written_off == Decimal("4.5")
    assert set(Account.objects.filter(pk__in=[w.pk for w in wallets]).values_list("balance", flat=True)) == {0}
    house.refresh_from_db()
    assert house.balance == Decimal("3000")
    assert ledger_reconcile() == []
