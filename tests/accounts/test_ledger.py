"""The double-entry ledger: sign-up grants, ledger_post's refusals, and wallets that cannot go below zero."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from accounts.errors import InsufficientFunds, InvalidInput, LedgerImbalance
from accounts.models import Account, LedgerEntry, LedgerTransaction, User
from accounts.services import (
    ledger_post,
    ledger_reconcile,
    ledger_transfer,
    system_account,
    user_create,
    wallet_get,
    wallet_lock,
)

pytestmark = pytest.mark.django_db


def ledger_rows() -> tuple[int, int, list[tuple[str, Decimal]]]:
    return (
        LedgerTransaction.objects.count(),
        LedgerEntry.objects.count(),
        list(Account.objects.order_by("pk").values_list("key", "balance")),
    )


def test_sign_up_grants_the_configured_amount_from_the_mint(settings):
    settings.FORECASTLE_SIGNUP_GRANT = Decimal("250.5")
    user = user_create(username="alice", password="a-long-password")
    wallet = wallet_get(user=user)
    assert wallet.balance == Decimal("250.5")
    assert system_account(kind=Account.Kind.MINT).balance == Decimal("-250.5")
    grant = LedgerTransaction.objects.get(reference=f"signup:{user.pk}")
    assert grant.kind == LedgerTransaction.Kind.SIGNUP_GRANT
    assert sorted(grant.entries.values_list("amount", flat=True)) == [Decimal("-250.5"), Decimal("250.5")]
    assert user.check_password("a-long-password")
    assert ledger_reconcile() == []


def test_a_zero_grant_creates_an_empty_wallet_and_no_transaction(settings):
    settings.FORECASTLE_SIGNUP_GRANT = Decimal("0")
    user = user_create(username="bob", password=None)
    assert wallet_get(user=user).balance == 0
    assert not user.has_usable_password()
    assert LedgerTransaction.objects.count() == 0


def test_the_default_grant_is_a_thousand(make_user):
    assert wallet_get(user=make_user()).balance == Decimal("1000")


def test_wallet_lock_gives_a_user_made_elsewhere_an_empty_wallet_once():
    user = User.objects.create_superuser(username="root", password="a-long-password")  # e.g. createsuperuser
    assert not Account.objects.filter(user=user).exists()
    with transaction.atomic():
        first = wallet_lock(user_id=user.pk)
    with transaction.atomic():
        assert wallet_lock(user_id=user.pk) == first
    assert first.balance == 0
    assert Account.objects.filter(user=user).count() == 1


def test_a_balanced_transaction_moves_every_cached_balance(make_user):
    alice, bob = wallet_get(user=make_user()), wallet_get(user=make_user())
    house = system_account(kind=Account.Kind.HOUSE)
    ledger_post(
        kind=LedgerTransaction.Kind.ADJUSTMENT,
        entries=[(alice, Decimal("-10.5")), (bob, Decimal("7.25")), (house, Decimal("3.25"))],
    )
    assert alice.balance == Decimal("989.5")  # the passed objects carry the new balances
    alice.refresh_from_db()
    bob.refresh_from_db()
    house.refresh_from_db()
    assert (alice.balance, bob.balance, house.balance) == (Decimal("989.5"), Decimal("1007.25"), Decimal("3.25"))
    assert ledger_reconcile() == []


def test_entries_on_one_account_are_netted(make_user):
    alice, bob = wallet_get(user=make_user()), wallet_get(user=make_user())
    posted = ledger_post(
        kind=LedgerTransaction.Kind.ADJUSTMENT,
        entries=[(alice, Decimal("-4")), (alice, Decimal("-1")), (bob, Decimal("5"))],
    )
    assert sorted(posted.entries.values_list("amount", flat=True)) == [Decimal("-5"), Decimal("5")]


@pytest.mark.parametrize(
    "amounts",
    [
        [Decimal("-10"), Decimal("9.999999")],  # unbalanced by a quantum
        [Decimal("-10"), Decimal("10.0000001")],  # not on the credit quantum
        [Decimal("-0.0000001"), Decimal("0.0000001")],  # balanced but unquantized
        [Decimal("0"), Decimal("0")],  # nothing moves
        [Decimal("5"), Decimal("-5"), Decimal("1")],
    ],
)
def test_ledger_post_refuses_unbalanced_or_unquantized_entries(make_user, amounts):
    alice, bob = wallet_get(user=make_user()), wallet_get(user=make_user())
    accounts = [alice, bob, system_account(kind=Account.Kind.HOUSE)]
    before = ledger_rows()
    with pytest.raises(LedgerImbalance):
        ledger_post(
            kind=LedgerTransaction.Kind.ADJUSTMENT,
            entries=list(zip(accounts, amounts, strict=False)),
        )
    assert ledger_rows() == before


def test_entries_cancelling_out_on_one_account_are_refused(make_user):
    alice = wallet_get(user=make_user())
    with pytest.raises(LedgerImbalance):
        ledger_post(kind=LedgerTransaction.Kind.ADJUSTMENT, entries=[(alice, Decimal("5")), (alice, Decimal("-5"))])


def test_a_wallet_cannot_go_below_zero_and_nothing_is_written(make_user):
    owner = make_user()
    alice, bob = wallet_get(user=owner), wallet_get(user=make_user())
    before = ledger_rows()
    # A caller keeps going after a refusal only inside its own savepoint (as views and services do).
    with pytest.raises(InsufficientFunds), transaction.atomic():
        ledger_transfer(
            source=alice, destination=bob, amount=Decimal("1000.000001"), kind=LedgerTransaction.Kind.ADJUSTMENT
        )
    assert ledger_rows() == before
    ledger_transfer(source=alice, destination=bob, amount=Decimal("1000"), kind=LedgerTransaction.Kind.ADJUSTMENT)
    assert wallet_get(user=owner).balance == 0
    assert ledger_reconcile() == []


def test_the_house_and_the_mint_may_go_negative(make_user):
    house = system_account(kind=Account.Kind.HOUSE)
    wallet = wallet_get(user=make_user())
    ledger_transfer(source=house, destination=wallet, amount=Decimal("5000"), kind=LedgerTransaction.Kind.ADJUSTMENT)
    house.refresh_from_db()
    assert house.balance == Decimal("-5000")


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1")])
def test_a_transfer_moves_a_positive_amount(make_user, amount):
    alice, bob = wallet_get(user=make_user()), wallet_get(user=make_user())
    before = ledger_rows()
    with pytest.raises(InvalidInput) as error:
        ledger_transfer(source=alice, destination=bob, amount=amount, kind=LedgerTransaction.Kind.ADJUSTMENT)
    assert error.value.field == "amount"
    assert ledger_rows() == before


def test_a_reference_posts_only_once(make_user):
    alice, bob = wallet_get(user=make_user()), wallet_get(user=make_user())
    ledger_transfer(
        source=alice, destination=bob, amount=Decimal("1"), kind=LedgerTransaction.Kind.ADJUSTMENT, reference="fix:1"
    )
    before = ledger_rows()
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger_transfer(
            source=alice,
            destination=bob,
            amount=Decimal("1"),
            kind=LedgerTransaction.Kind.ADJUSTMENT,
            reference="fix:1",
        )
    assert ledger_rows() == before
