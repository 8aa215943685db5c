"""PostgreSQL itself refuses to commit a ledger transaction whose entries do not sum to zero (the deferred
constraint trigger of accounts migration 0002), whoever writes it: here raw SQL, behind the services' back."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from accounts.models import Account, LedgerEntry, LedgerTransaction
from accounts.services import ledger_reconcile, system_account, wallet_get

# Real commits: the trigger is deferred to COMMIT, which a test wrapped in a transaction never reaches.
pytestmark = pytest.mark.django_db(transaction=True)


def sql(statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


def new_transaction(reference: str) -> int:
    ((transaction_id,),) = sql(
        "INSERT INTO accounts_ledgertransaction (kind, memo, reference, created_at)"
        " VALUES ('adjustment', 'raw', %s, now()) RETURNING id",
        reference,
    )
    assert isinstance(transaction_id, int)
    return transaction_id


def entry(transaction_id: int, account_id: int, amount: str) -> None:
    sql(
        "INSERT INTO accounts_ledgerentry (transaction_id, account_id, amount) VALUES (%s, %s, %s)",
        transaction_id,
        account_id,
        Decimal(amount),
    )


def commit(write: Callable[[], object]) -> None:
    with transaction.atomic():
        write()


@pytest.fixture
def accounts(make_user) -> tuple[Account, Account]:
    return wallet_get(user=make_user("alice")), system_account(kind=Account.Kind.MINT)


def test_an_unbalanced_transaction_written_in_raw_sql_cannot_commit(accounts):
    wallet, mint = accounts

    def write() -> None:
        transaction_id = new_transaction("raw:unbalanced")
        entry(transaction_id, wallet.pk, "5")
        entry(transaction_id, mint.pk, "-4")
        # Nothing is refused yet: the rule holds at commit, so a writer may add entries one by one.
        sql("UPDATE accounts_account SET balance = balance + 5 WHERE id = %s", wallet.pk)

    with pytest.raises(IntegrityError, match=r"does not balance: its entries sum to 1\.000000"):
        commit(write)
    assert not LedgerTransaction.objects.filter(reference="raw:unbalanced").exists()
    assert ledger_reconcile() == []


def test_a_balanced_transaction_written_in_raw_sql_commits(accounts):
    wallet, mint = accounts
    with transaction.atomic():
        transaction_id = new_transaction("raw:balanced")
        entry(transaction_id, wallet.pk, "5")
        entry(transaction_id, mint.pk, "-5")
        sql("UPDATE accounts_account SET balance = balance + %s WHERE id = %s", Decimal(5), wallet.pk)
        sql("UPDATE accounts_account SET balance = balance - %s WHERE id = %s", Decimal(5), mint.pk)
    assert LedgerEntry.objects.filter(transaction_id=transaction_id).count() == 2
    assert ledger_reconcile() == []


def test_changing_or_deleting_a_committed_entry_cannot_unbalance_its_transaction(accounts):
    wallet, _mint = accounts
    grant = LedgerTransaction.objects.get(reference=f"signup:{wallet.user_id}")
    refused = f"ledger transaction {grant.pk} does not balance"
    with pytest.raises(IntegrityError, match=refused):
        commit(lambda: sql("UPDATE accounts_ledgerentry SET amount = amount + 1 WHERE transaction_id = %s", grant.pk))
    with pytest.raises(IntegrityError, match=refused):
        commit(
            lambda: sql(
                "DELETE FROM accounts_ledgerentry WHERE transaction_id = %s AND account_id = %s", grant.pk, wallet.pk
            )
        )
    assert LedgerEntry.objects.filter(transaction=grant).count() == 2
    assert ledger_reconcile() == []


def test_an_entry_added_after_an_early_check_is_checked_again(accounts):
    """Checking every entry of a big transaction once per entry would be quadratic, so the trigger skips the
    entries an earlier check of the same transaction covered. An entry added after that check is not covered."""
    wallet, mint = accounts

    def write() -> None:
        transaction_id = new_transaction("raw:late")
        entry(transaction_id, wallet.pk, "3")
        entry(transaction_id, mint.pk, "-3")
        sql("SET CONSTRAINTS ALL IMMEDIATE")  # fires the deferred checks now: balanced so far
        sql("SET CONSTRAINTS ALL DEFERRED")
        entry(transaction_id, wallet.pk, "1")

    with pytest.raises(IntegrityError, match=r"does not balance: its entries sum to 1\.000000"):
        commit(write)
    assert not LedgerTransaction.objects.filter(reference="raw:late").exists()
