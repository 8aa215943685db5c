"""Writes of the accounts app. Every movement of money goes through ledger_post."""

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.errors import InsufficientFunds, InvalidInput, LedgerImbalance
from accounts.models import Account, ApiKey, LedgerEntry, LedgerTransaction, User
from accounts.money import ZERO, credits

# Moves cached balances by the given amounts, locking rows in id order so that two transfers
# between the same accounts cannot deadlock. The CHECK constraint refuses a negative wallet.
BALANCE_UPDATE_SQL = """
    WITH move AS (SELECT * FROM unnest(%s::bigint[], %s::numeric[]) AS m(id, amount)),
    locked AS (
        SELECT account.id FROM accounts_account AS account
        WHERE account.id IN (SELECT id FROM move) ORDER BY account.id FOR UPDATE
    )
    UPDATE accounts_account AS account SET balance = account.balance + move.amount
    FROM locked JOIN move ON move.id = locked.id
    WHERE account.id = locked.id
    RETURNING account.id, account.balance
"""


def system_account(*, kind: Account.Kind) -> Account:
    """The house or the mint, created on first use."""
    if kind not in (Account.Kind.HOUSE, Account.Kind.MINT):
        raise ValueError(f"{kind} is not a system account")
    account, _ = Account.objects.get_or_create(key=str(kind), defaults={"kind": kind})
    return account


def wallet_key(user_id: int) -> str:
    return f"wallet:{user_id}"


def wallet_get(*, user: User) -> Account:
    return Account.objects.get(key=wallet_key(user.pk))


def wallet_lock(*, user_id: int) -> Account:
    """Locks the user's wallet row: call inside a transaction, after any market lock.

    A user created outside user_create (e.g. by `createsuperuser`) gets an empty wallet here."""
    account, _ = Account.objects.select_for_update().get_or_create(
        key=wallet_key(user_id), defaults={"kind": Account.Kind.WALLET, "user_id": user_id}
    )
    return account


def ledger_post(
    *,
    kind: LedgerTransaction.Kind,
    entries: Sequence[tuple[Account, Decimal]],
    memo: str = "",
    reference: str | None = None,
) -> LedgerTransaction:
    """Writes one balanced transaction and moves the cached balances with it.

    Amounts must already be quantized (accounts.money); they are signed: positive into the
    account. A wallet that would go below zero raises InsufficientFunds and nothing is written.
    """
    totals: dict[int, Decimal] = defaultdict(Decimal)
    accounts: dict[int, Account] = {}
    for account, amount in entries:
        if amount != credits(amount):
            raise LedgerImbalance(f"amount {amount} is not quantized")
        totals[account.pk] += amount
        accounts[account.pk] = account
    moves = {account_id: amount for account_id, amount in totals.items() if amount != ZERO}
    if not moves:
        raise LedgerImbalance("a ledger transaction needs at least one non-zero entry")
    if sum(moves.values(), ZERO) != ZERO:
        raise LedgerImbalance(f"entries sum to {sum(moves.values(), ZERO)}, not zero")

    # No savepoints: a failure here must undo the caller's whole operation anyway, and each savepoint
    # is a round trip spent while the caller holds its market lock.
    with transaction.atomic(savepoint=False):
        ledger_transaction = LedgerTransaction.objects.create(kind=kind, memo=memo[:255], reference=reference)
        LedgerEntry.objects.bulk_create(
            LedgerEntry(transaction=ledger_transaction, account_id=account_id, amount=amount)
            for account_id, amount in moves.items()
        )
        ordered = sorted(moves)
        try:
            # One statement for every account. The savepoint keeps the database usable after the CHECK
            # fails, but the InsufficientFunds raised here still rolls back the caller's transaction up to
            # its nearest atomic(): a caller that wants to carry on wraps this call in its own atomic().
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(BALANCE_UPDATE_SQL, [ordered, [moves[account_id] for account_id in ordered]])
                for account_id, balance in cursor.fetchall():
                    accounts[account_id].balance = balance
        except IntegrityError as error:
            raise InsufficientFunds("Not enough credits for this operation.") from error
    return ledger_transaction


def ledger_transfer(
    *,
    source: Account,
    destination: Account,
    amount: Decimal,
    kind: LedgerTransaction.Kind,
    memo: str = "",
    reference: str | None = None,
) -> LedgerTransaction:
    if amount <= ZERO:
        raise InvalidInput("A transfer moves a positive amount.", field="amount")
    return ledger_post(
        kind=kind,
        entries=[(source, -amount), (destination, amount)],
        memo=memo,
        reference=reference,
    )


@transaction.atomic
def user_create(
    *,
    username: str,
    password: str | None,
    email: str = "",
    is_staff: bool = False,
    is_superuser: bool = False,
) -> User:
    """Creates a user with a wallet funded by the sign-up grant from the mint."""
    user = User(username=username, email=email, is_staff=is_staff, is_superuser=is_superuser)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    wallet = Account.objects.create(kind=Account.Kind.WALLET, key=wallet_key(user.pk), user=user)
    grant = credits(settings.FORECASTLE_SIGNUP_GRANT)
    if grant > ZERO:
        ledger_transfer(
            source=system_account(kind=Account.Kind.MINT),
            destination=wallet,
            amount=grant,
            kind=LedgerTransaction.Kind.SIGNUP_GRANT,
            memo=f"Sign-up grant for {username}",
            reference=f"signup:{user.pk}",
        )
    return user


API_KEY_PREFIX_LENGTH = 8
API_KEY_USE_RESOLUTION = timedelta(minutes=1)


def _hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, user: User, name: str) -> tuple[ApiKey, str]:
    """Returns the stored key and the raw key, which is never stored and cannot be shown again."""
    name = name.strip()
    if not name:
        raise InvalidInput("Give the key a name.", field="name")
    raw_key = "fc_" + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        user=user,
        name=name[:100],
        prefix=raw_key[: API_KEY_PREFIX_LENGTH + 3],
        hashed_key=_hash_key(raw_key),
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, raw_key: str) -> User | None:
    """The active user owning this raw key, or None."""
    api_key = (
        ApiKey.objects.select_related("user")
        .filter(hashed_key=_hash_key(raw_key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    # A read-heavy client would otherwise write this row on every request: once a minute tells enough.
    if api_key.last_used_at is None or now - api_key.last_used_at > API_KEY_USE_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key.user


@dataclass(frozen=True)
class Violation:
    """One broken ledger invariant, precise enough to act on."""

    invariant: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.subject}: {self.detail}"


def ledger_reconcile() -> list[Violation]:
    """Checks every ledger invariant with set-based queries and reports each violation."""
    violations: list[Violation] = []
    total = Account.objects.aggregate(total=Sum("balance"))["total"] or ZERO
    if total != ZERO:
        violations.append(Violation("balances_sum_to_zero", "all accounts", f"sum is {total}"))

    entry_sums = dict(
        LedgerEntry.objects.values("account_id").annotate(total=Sum("amount")).values_list("account_id", "total")
    )
    for account_id, key, balance in Account.objects.values_list("pk", "key", "balance"):
        expected = entry_sums.get(account_id, ZERO)
        if balance != expected:
            violations.append(
                Violation("cached_balance_matches_entries", key, f"cached {balance}, entries sum to {expected}")
            )

    unbalanced = (
        LedgerEntry.objects.values("transaction_id")
        .annotate(total=Sum("amount"))
        .exclude(total=ZERO)
        .values_list("transaction_id", "total")
    )
    for transaction_id, transaction_total in unbalanced:
        violations.append(
            Violation("transaction_sums_to_zero", f"transaction #{transaction_id}", f"sums to {transaction_total}")
        )

    for key, balance in Account.objects.filter(kind__in=["wallet", "escrow"], balance__lt=0).values_list(
        "key", "balance"
    ):
        violations.append(Violation("no_negative_wallet", key, f"balance {balance}"))
    return violations
