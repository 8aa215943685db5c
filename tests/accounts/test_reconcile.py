"""ledger_reconcile on purposely corrupted data: each kind of violation is reported, precisely and alone.

The corruption is raw SQL, the way a bug or a hand-edit in psql would do it, behind the services' back.
"""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from accounts.models import Account, LedgerTransaction
from accounts.services import Violation, ledger_reconcile, ledger_transfer, system_account, wallet_get

pytestmark = pytest.mark.django_db


def sql(statement: str, *params: int | str | Decimal) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def without_the_balance_trigger() -> None:
    """Switches off, inside the test's transaction, the trigger that refuses to commit an unbalanced ledger
    transaction (accounts migration 0002), so the corruption reaches reconciliation. PostgreSQL alters no table
    with pending trigger events: the deferred checks fire first, and are deferred again afterwards."""
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    sql("ALTER TABLE accounts_ledgerentry DISABLE TRIGGER ledger_transaction_balanced")
    sql("SET CONSTRAINTS ALL DEFERRED")


def kinds(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(violation.invariant, violation.subject) for violation in violations}


@pytest.fixture
def alice(make_user):
    return wallet_get(user=make_user("alice"))


@pytest.fixture
def bob(make_user):
    return wallet_get(user=make_user("bob"))


def test_clean_books_have_no_violation(alice, bob):
    ledger_transfer(source=alice, destination=bob, amount=Decimal("12.5"), kind=LedgerTransaction.Kind.ADJUSTMENT)
    assert ledger_reconcile() == []


def test_a_balance_changed_without_entries_breaks_the_sum_and_the_cache(alice):
    sql("UPDATE accounts_account SET balance = balance + 1 WHERE id = %s", alice.pk)
    violations = ledger_reconcile()
    assert kinds(violations) == {
        ("balances_sum_to_zero", "all accounts"),
        ("cached_balance_matches_entries", alice.key),
    }
    by_invariant = {violation.invariant: violation for violation in violations}
    assert by_invariant["balances_sum_to_zero"].detail == "sum is 1.000000"
    assert by_invariant["cached_balance_matches_entries"].detail == "cached 1001.000000, entries sum to 1000.000000"


def test_a_credit_moved_between_caches_is_reported_on_both_accounts_only(alice, bob):
    sql("UPDATE accounts_account SET balance = balance - 3 WHERE id = %s", alice.pk)
    sql("UPDATE accounts_account SET balance = balance + 3 WHERE id = %s", bob.pk)
    assert kinds(ledger_reconcile()) == {
        ("cached_balance_matches_entries", alice.key),
        ("cached_balance_matches_entries", bob.key),
    }


def test_an_unbalanced_transaction_is_named(alice, bob):
    first = ledger_transfer(source=alice, destination=bob, amount=Decimal("5"), kind=LedgerTransaction.Kind.ADJUSTMENT)
    second = ledger_transfer(source=alice, destination=bob, amount=Decimal("7"), kind=LedgerTransaction.Kind.ADJUSTMENT)
    # Bob's entries move 2 credits from the second transaction to the first: every account still
    # sums right and all balances still sum to zero, but neither transaction balances any more.
    without_the_balance_trigger()
    sql(
        "UPDATE accounts_ledgerentry SET amount = amount + 2 WHERE transaction_id = %s AND account_id = %s",
        first.pk,
        bob.pk,
    )
    sql(
        "UPDATE accounts_ledgerentry SET amount = amount - 2 WHERE transaction_id = %s AND account_id = %s",
        second.pk,
        bob.pk,
    )
    violations = ledger_reconcile()
    assert kinds(violations) == {
        ("transaction_sums_to_zero", f"transaction #{first.pk}"),
        ("transaction_sums_to_zero", f"transaction #{second.pk}"),
    }
    assert {violation.detail for violation in violations} == {"sums to 2.000000", "sums to -2.000000"}


def test_a_negative_wallet_is_reported(alice):
    # The CHECK constraint forbids it; drop it (inside the test's transaction) to simulate a database without it.
    # Deferred foreign-key checks must fire first: PostgreSQL will not alter a table with pending ones.
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    sql("ALTER TABLE accounts_account DROP CONSTRAINT account_balance_non_negative")
    sql("SET CONSTRAINTS ALL DEFERRED")
    grant = LedgerTransaction.objects.get(reference=f"signup:{alice.user_id}")
    mint = system_account(kind=Account.Kind.MINT)
    # Rewrite the grant as -5 to the wallet, +5 to the mint: balanced, cached, but the wallet is negative.
    sql("UPDATE accounts_ledgerentry SET amount = -5 WHERE transaction_id = %s AND account_id = %s", grant.pk, alice.pk)
    sql("UPDATE accounts_ledgerentry SET amount = 5 WHERE transaction_id = %s AND account_id = %s", grant.pk, mint.pk)
    sql("UPDATE accounts_account SET balance = -5 WHERE id = %s", alice.pk)
    sql("UPDATE accounts_account SET balance = 5 WHERE id = %s", mint.pk)
    violations = ledger_reconcile()
    assert kinds(violations) == {("no_negative_wallet", alice.key)}
    assert violations[0].detail == "balance -5.000000"
    assert str(violations[0]) == f"no_negative_wallet: {alice.key}: balance -5.000000"


def test_the_check_constraint_itself_refuses_a_negative_wallet(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        sql("UPDATE accounts_account SET balance = -0.000001 WHERE id = %s", alice.pk)
