"""Writes of the accounts app. Every movement of money goes through ledger_post (one transaction, entries
from Python), ledger_post_params (the same, inside the caller's own statement: a trade), ledger_post_many_params
(many transactions inside the caller's own statement: a fill pass) or ledger_post_set (many transactions, entries
computed by the database), and PostgreSQL refuses to commit a transaction whose entries do not sum to zero
(migration 0002)."""

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from axes.utils import reset as axes_reset
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.errors import InsufficientFunds, InvalidInput, LedgerImbalance, LimitReached
from accounts.models import (
    ALL_SCOPES,
    STAFF_SCOPES,
    Account,
    ApiKey,
    LedgerEntry,
    LedgerTransaction,
    User,
    UserFollow,
)
from accounts.money import ZERO, credits
from config.core.cache import UNREACHABLE, cache_get, cache_set, cache_unreachable

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
    """The house, the mint or the held account (bonds), created on first use."""
    if kind not in (Account.Kind.HOUSE, Account.Kind.MINT, Account.Kind.HELD):
        raise ValueError(f"{kind} is not a system account")
    account, _ = Account.objects.get_or_create(key=str(kind), defaults={"kind": kind})
    return account


def wallet_key(user_id: int) -> str:
    return f"wallet:{user_id}"


def reserved_key(user_id: int) -> str:
    """The user's reserved account: credits held for their open buy orders (markets' limit orders)."""
    return f"reserved:{user_id}"


def wallet_get(*, user: User) -> Account:
    return Account.objects.get(key=wallet_key(user.pk))


def wallet_lock(*, user_id: int) -> Account:
    """Locks the user's wallet row: call inside a transaction, after any market lock.

    A user created outside user_create (e.g. by `createsuperuser`) gets an empty wallet here."""
    account, _ = Account.objects.select_for_update().get_or_create(
        key=wallet_key(user_id), defaults={"kind": Account.Kind.WALLET, "user_id": user_id}
    )
    return account


def _netted(entries: Sequence[tuple[Account | int, Decimal]]) -> dict[int, Decimal]:
    """Non-zero totals per account id; refuses an amount that is not quantized."""
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for account, amount in entries:
        if amount != credits(amount):
            raise LedgerImbalance(f"amount {amount} is not quantized")
        totals[account if isinstance(account, int) else account.pk] += amount
    return {account_id: amount for account_id, amount in totals.items() if amount != ZERO}


def _balanced(entries: Sequence[tuple[Account | int, Decimal]]) -> dict[int, Decimal]:
    """_netted, refusing what is not one balanced transaction: no non-zero entry, or entries not summing to zero."""
    moves = _netted(entries)
    if not moves:
        raise LedgerImbalance("a ledger transaction needs at least one non-zero entry")
    if sum(moves.values(), ZERO) != ZERO:
        raise LedgerImbalance(f"entries sum to {sum(moves.values(), ZERO)}, not zero")
    return moves


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
    accounts = {account.pk: account for account, _amount in entries}
    moves = _balanced(entries)

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


# Table names are the models' own, never input: the f-strings below build no SQL from user data.
ACCOUNT_TABLE = Account._meta.db_table
ENTRY_TABLE = LedgerEntry._meta.db_table
TRANSACTION_TABLE = LedgerTransaction._meta.db_table

# The balances' part of the expressions below: the accounts locked in id order (as in BALANCE_UPDATE_SQL), then each
# moved by its net amount; `ledger_balances` returns (id, balance) of each.
_LEDGER_BALANCES_CTES = f"""ledger_locked AS (
        SELECT account.id FROM {ACCOUNT_TABLE} AS account
        WHERE account.id = ANY(%(ledger_accounts)s::bigint[]) ORDER BY account.id FOR UPDATE
    ),
    ledger_balances AS (
        UPDATE {ACCOUNT_TABLE} AS account SET balance = account.balance + move.amount
        FROM ledger_locked
        JOIN unnest(%(ledger_accounts)s::bigint[], %(ledger_amounts)s::numeric[]) AS move(id, amount)
            ON move.id = ledger_locked.id
        WHERE account.id = ledger_locked.id
        RETURNING account.id, account.balance
    )"""  # noqa: S608  # nosec B608 - model names only

# ledger_post as common table expressions, for a caller that writes its own rows in the same statement (a trade).
# The accounts are locked in id order before their balances move, as in BALANCE_UPDATE_SQL; the caller's other
# expressions may refer to `ledger_transaction` (its id) and `ledger_balances` (id, balance of each account).
LEDGER_POST_CTES = f"""
    ledger_transaction AS (
        INSERT INTO {TRANSACTION_TABLE} (kind, memo, reference, created_at)
        VALUES (%(ledger_kind)s, %(ledger_memo)s, %(ledger_reference)s, %(ledger_at)s)
        RETURNING id
    ),
    ledger_entries AS (
        INSERT INTO {ENTRY_TABLE} (transaction_id, account_id, amount)
        SELECT ledger_transaction.id, move.id, move.amount
        FROM ledger_transaction,
            unnest(%(ledger_accounts)s::bigint[], %(ledger_amounts)s::numeric[]) AS move(id, amount)
    ),
    {_LEDGER_BALANCES_CTES}"""  # noqa: S608


def ledger_post_params(
    *,
    kind: LedgerTransaction.Kind,
    entries: Sequence[tuple[Account | int, Decimal]],
    at: datetime,
    memo: str = "",
    reference: str | None = None,
) -> dict[str, Any]:
    """ledger_post for a caller that writes in one statement: the parameters of LEDGER_POST_CTES, which the caller
    puts in its own `WITH`. The entries are checked here as ledger_post checks them (quantized, at least one,
    summing to zero), and the database checks the sum again at commit (migration 0002). A wallet the entries
    would take below zero makes the statement fail on its CHECK: `ledger_refusal` turns that into
    InsufficientFunds."""
    moves = _balanced(entries)
    ordered = sorted(moves)
    return {
        "ledger_kind": str(kind),
        "ledger_memo": memo[:255],
        "ledger_reference": reference,
        "ledger_at": at,
        "ledger_accounts": ordered,
        "ledger_amounts": [moves[account_id] for account_id in ordered],
    }


# Many ledger_post transactions as common table expressions, for a caller that writes the rows they pay for in the
# same statement (a fill pass: one transaction per fill). Each transaction's id is drawn from its table's sequence
# in the order the postings were given; every account the set touches is locked in id order before its balance
# moves by the set's net amount. The caller's other expressions may refer to `ledger_transaction` (n, id), n the
# posting's place in the list from 1.
def ledger_post_many_ctes(*, reference: str = "NULL") -> str:
    """The expressions of LEDGER_POST_MANY_CTES, each transaction's reference given by `reference`: an SQL
    expression over `ledger_transaction.n` that may read the caller's expressions placed before these (the row a
    posting pays for, its id drawn there: "order:<id>"). A constant of the caller's code, never input."""
    return f"""
    ledger_transaction AS MATERIALIZED (
        SELECT posting.n, nextval(pg_get_serial_sequence('{TRANSACTION_TABLE}', 'id')::regclass) AS id,
               posting.kind, posting.memo
        FROM unnest(%(ledger_kinds)s::varchar[], %(ledger_memos)s::varchar[]) WITH ORDINALITY AS posting(kind, memo, n)
    ),
    ledger_transactions AS (
        INSERT INTO {TRANSACTION_TABLE} (id, kind, memo, reference, created_at)
        SELECT id, kind, memo, {reference}, %(ledger_at)s FROM ledger_transaction
    ),
    ledger_entries AS (
        INSERT INTO {ENTRY_TABLE} (transaction_id, account_id, amount)
        SELECT ledger_transaction.id, entry.account_id, entry.amount
        FROM unnest(%(ledger_entry_postings)s::bigint[], %(ledger_entry_accounts)s::bigint[],
                    %(ledger_entry_amounts)s::numeric[]) AS entry(n, account_id, amount)
        JOIN ledger_transaction ON ledger_transaction.n = entry.n
    ),
    {_LEDGER_BALANCES_CTES}"""  # noqa: S608  # nosec B608 - model names and the caller's constant expression only


LEDGER_POST_MANY_CTES = ledger_post_many_ctes()


@dataclass(frozen=True)
class PostingRow:
    """One transaction of ledger_post_many_params: as ledger_post's arguments (no reference)."""

    kind: LedgerTransaction.Kind
    entries: Sequence[tuple[Account | int, Decimal]]
    memo: str = ""


def ledger_post_many_params(*, postings: Sequence[PostingRow], at: datetime) -> dict[str, Any]:
    """ledger_post for many transactions in the caller's one statement: the parameters of LEDGER_POST_MANY_CTES.
    Each posting is checked as ledger_post checks it (quantized, at least one entry, summing to zero); the database
    checks each sum again at commit (migration 0002). No posting is fine: the expressions then write nothing. A
    wallet the set would take below zero makes the statement fail on its CHECK (`ledger_refusal`)."""
    entry_postings: list[int] = []
    entry_accounts: list[int] = []
    entry_amounts: list[Decimal] = []
    balances: dict[int, Decimal] = defaultdict(Decimal)
    for n, posting in enumerate(postings, start=1):
        moves = _balanced(posting.entries)
        for account_id, amount in moves.items():
            entry_postings.append(n)
            entry_accounts.append(account_id)
            entry_amounts.append(amount)
            balances[account_id] += amount
    ordered = sorted(account_id for account_id, amount in balances.items() if amount != ZERO)
    return {
        "ledger_kinds": [str(posting.kind) for posting in postings],
        "ledger_memos": [posting.memo[:255] for posting in postings],
        "ledger_at": at,
        "ledger_entry_postings": entry_postings,
        "ledger_entry_accounts": entry_accounts,
        "ledger_entry_amounts": entry_amounts,
        "ledger_accounts": ordered,
        "ledger_amounts": [balances[account_id] for account_id in ordered],
    }


def ledger_refusal(error: IntegrityError) -> InsufficientFunds | None:
    """InsufficientFunds when `error` is an account's CHECK balance >= 0 refusing a posting; None otherwise."""
    constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
    if constraint == "account_balance_non_negative":
        return InsufficientFunds("Not enough credits for this operation.")
    return None


@dataclass(frozen=True)
class EntryQuery:
    """Entries the database computes, for postings too large to pass through Python: `sql` is a SELECT of
    (account id, signed amount) rows with named parameters (`%(name)s`). Amounts must already be quantized;
    rows with a zero amount are left out."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Posting:
    """One ledger transaction of a ledger_post_set call: fixed entries, entries a query computes, or both."""

    kind: LedgerTransaction.Kind
    memo: str
    reference: str | None = None
    # (account id, signed amount): positive into the account, as in ledger_post.
    entries: Sequence[tuple[int, Decimal]] = ()
    queries: Sequence[EntryQuery] = ()
    # When set: every wallet the whole set would leave below zero is brought back to zero by an entry in
    # this transaction, and this account pays for it (the house writing off a payout already spent).
    shortfalls_paid_by: int | None = None


@dataclass(frozen=True)
class PostedSet:
    transactions: list[LedgerTransaction]
    # What the shortfall payer covered (zero when no posting names one).
    written_off: Decimal


# The reserved parameter that carries the transaction id into an EntryQuery's INSERT.
QUERY_TRANSACTION_PARAMETER = "ledger_transaction_id"


def _execute(sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def ledger_post_set(*, postings: Sequence[Posting]) -> PostedSet:
    """Writes many balanced transactions at once and moves every balance they touch in one statement.

    The rules of ledger_post, set-based for settlement and any other bulk movement: the entries of each
    transaction sum to exactly zero (checked here, and by PostgreSQL at commit), every account touched is
    locked in id order, the cached balances move in the same database transaction, and a wallet the set
    would leave below zero raises InsufficientFunds with nothing written (unless a posting pays its
    shortfall). No entry is loaded into Python: memory stays flat however many entries there are.
    """
    if not postings:
        raise LedgerImbalance("nothing to post")
    if sum(posting.shortfalls_paid_by is not None for posting in postings) > 1:
        raise LedgerImbalance("at most one posting pays the shortfalls")
    fixed = [_netted(posting.entries) for posting in postings]
    for posting in postings:
        for query in posting.queries:
            if QUERY_TRANSACTION_PARAMETER in query.params:
                raise ValueError(f"{QUERY_TRANSACTION_PARAMETER} is reserved in an EntryQuery's parameters")

    with transaction.atomic(savepoint=False):
        created = LedgerTransaction.objects.bulk_create(
            LedgerTransaction(kind=posting.kind, memo=posting.memo[:255], reference=posting.reference)
            for posting in postings
        )
        ids = [ledger_transaction.pk for ledger_transaction in created]
        rows = [
            (ledger_transaction.pk, account_id, amount)
            for ledger_transaction, moves in zip(created, fixed, strict=True)
            for account_id, amount in moves.items()
        ]
        if rows:
            transaction_ids, account_ids, amounts = (list(column) for column in zip(*rows, strict=True))
            _execute(
                f"""INSERT INTO {ENTRY_TABLE} (transaction_id, account_id, amount)
                    SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::numeric[])""",  # noqa: S608
                [transaction_ids, account_ids, amounts],
            )
        for ledger_transaction, posting in zip(created, postings, strict=True):
            for query in posting.queries:
                _execute(
                    f"""INSERT INTO {ENTRY_TABLE} (transaction_id, account_id, amount)
                        SELECT %({QUERY_TRANSACTION_PARAMETER})s, computed.account_id, computed.amount
                        FROM ({query.sql}) AS computed(account_id, amount)
                        WHERE computed.amount <> 0""",  # noqa: S608 - the caller's query is code, never input
                    {**query.params, QUERY_TRANSACTION_PARAMETER: ledger_transaction.pk},
                )

        # Every account the set touches (and the shortfall payer), locked in id order before any balance is
        # read or moved, so two sets (or a set and a trade) sharing accounts cannot deadlock.
        payers = [posting.shortfalls_paid_by for posting in postings if posting.shortfalls_paid_by is not None]
        _execute(
            f"""SELECT count(*) FROM (
                  SELECT account.id FROM {ACCOUNT_TABLE} account
                  WHERE account.id IN (SELECT account_id FROM {ENTRY_TABLE} WHERE transaction_id = ANY(%s))
                     OR account.id = ANY(%s)
                  ORDER BY account.id FOR UPDATE
                ) locked""",  # noqa: S608
            [ids, payers],
        )
        written_off = ZERO
        for ledger_transaction, posting in zip(created, postings, strict=True):
            if posting.shortfalls_paid_by is not None:
                written_off = _pay_shortfalls(
                    transaction_id=ledger_transaction.pk, transaction_ids=ids, payer_id=posting.shortfalls_paid_by
                )

        unbalanced = _execute(
            f"""SELECT t.id, COALESCE(SUM(e.amount), 0) FROM unnest(%s::bigint[]) AS t(id)
                LEFT JOIN {ENTRY_TABLE} e ON e.transaction_id = t.id
                GROUP BY t.id HAVING COALESCE(SUM(e.amount), 0) <> 0 OR COUNT(e.id) = 0""",  # noqa: S608
            [ids],
        )
        if unbalanced:
            raise LedgerImbalance(
                "; ".join(f"transaction #{tx} has entries summing to {total}, or none" for tx, total in unbalanced)
            )
        try:
            # As in ledger_post: the savepoint keeps the connection usable after the CHECK fails.
            with transaction.atomic():
                _execute(
                    f"""UPDATE {ACCOUNT_TABLE} account SET balance = account.balance + delta.amount
                        FROM (SELECT account_id, SUM(amount) AS amount FROM {ENTRY_TABLE}
                              WHERE transaction_id = ANY(%s) GROUP BY account_id) delta
                        WHERE account.id = delta.account_id""",  # noqa: S608
                    [ids],
                )
        except IntegrityError as error:
            raise InsufficientFunds("Not enough credits for this operation.") from error
    return PostedSet(transactions=created, written_off=written_off)


def _pay_shortfalls(*, transaction_id: int, transaction_ids: list[int], payer_id: int) -> Decimal:
    """Wallets the set would leave below zero get what brings them back to zero, in `transaction_id`; the
    payer covers the total. The accounts are locked, so the balances read here are the ones the set moves."""
    ((total,),) = _execute(
        f"""WITH delta AS (
              SELECT account_id, SUM(amount) AS amount FROM {ENTRY_TABLE}
              WHERE transaction_id = ANY(%(transactions)s) GROUP BY account_id
            ), inserted AS (
              INSERT INTO {ENTRY_TABLE} (transaction_id, account_id, amount)
              SELECT %(transaction)s, account.id, -(account.balance + delta.amount)
              FROM delta JOIN {ACCOUNT_TABLE} account ON account.id = delta.account_id
              WHERE account.kind = %(wallet)s AND account.balance + delta.amount < 0
              RETURNING amount
            )
            SELECT COALESCE(SUM(amount), 0) FROM inserted""",  # noqa: S608
        {"transactions": transaction_ids, "transaction": transaction_id, "wallet": Account.Kind.WALLET.value},
    )
    written_off = Decimal(str(total))
    if written_off > ZERO:
        LedgerEntry.objects.create(transaction_id=transaction_id, account_id=payer_id, amount=-written_off)
    return written_off


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
# How long an authenticated key is remembered in Redis (hash -> user): the most a deactivated user's key
# keeps working. Revoking a key forgets it at once.
API_KEY_CACHE_SECONDS = 30


def _hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_scopes_allowed(*, user: User) -> list[str]:
    """The scopes this account may give a key: read and trade, and the staff scopes for staff."""
    return [scope.value for scope in ALL_SCOPES if user.is_staff or scope not in STAFF_SCOPES]


@transaction.atomic
def api_key_create(
    *,
    user: User,
    name: str,
    scopes: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Returns the stored key and the raw key, which is never stored and cannot be shown again.

    `scopes` default to every scope the account may hold (api_key_scopes_allowed); a staff scope asked for
    by an account that is not staff is refused. `expires_at`, if given, must lie in the future.
    An account holds at most FORECASTLE_API_KEYS_PER_ACCOUNT active keys: the user row is locked while
    they are counted, so two concurrent requests cannot both take the last place."""
    name = name.strip()
    if not name:
        raise InvalidInput("Give the key a name.", field="name")
    allowed = api_key_scopes_allowed(user=user)
    wanted = allowed if scopes is None else list(dict.fromkeys(str(scope) for scope in scopes))
    if not wanted:
        raise InvalidInput("Give the key at least one scope.", field="scopes")
    known = {scope.value for scope in ALL_SCOPES}
    if unknown := [scope for scope in wanted if scope not in known]:
        raise InvalidInput(f"Unknown scope {unknown[0]!r}: choose from {', '.join(sorted(known))}.", field="scopes")
    if refused := [scope for scope in wanted if scope not in allowed]:
        raise InvalidInput(f"The {refused[0]!r} scope is for staff accounts only.", field="scopes")
    if expires_at is not None and expires_at <= (now or timezone.now()):
        raise InvalidInput("The expiry must be in the future.", field="expires_at")
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).get()
    limit = settings.FORECASTLE_API_KEYS_PER_ACCOUNT
    if ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() >= limit:
        raise LimitReached(f"An account holds at most {limit} active API keys: revoke one you no longer use.")
    raw_key = "fc_" + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        user=user,
        name=name[:100],
        prefix=raw_key[: API_KEY_PREFIX_LENGTH + 3],
        hashed_key=_hash_key(raw_key),
        # In the order Scope declares them, whatever order they were asked in.
        scopes=[scope.value for scope in ALL_SCOPES if scope in wanted],
        expires_at=expires_at,
    )
    return api_key, raw_key


def api_keys_revoke_all(*, user: User) -> int:
    """Revokes every active key of the account; returns how many."""
    active = ApiKey.objects.filter(user=user, revoked_at__isnull=True)
    _keys_forget(list(active.values_list("hashed_key", flat=True)))
    return active.update(revoked_at=timezone.now())


def user_password_changed(*, user: User) -> int:
    """What follows a new password, whichever way it was set (password change, reset by e-mail, the
    admin): the account's API keys stop working, since whoever knew the old password may have made them,
    and the account's failed logins are forgotten, so a reset is the way back from a lockout. Other web
    sessions are logged out by Django itself (the session carries a hash of the password).
    Returns how many keys were revoked."""
    revoked = api_keys_revoke_all(user=user)
    axes_reset(username=user.get_username())
    return revoked


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        _keys_forget([api_key.hashed_key])
    return api_key


@dataclass(frozen=True)
class AuthenticatedKey:
    """Who a valid API key speaks for and what it may do: what the API's authentication puts on request.auth."""

    user: User
    key_id: int
    # The key's public prefix: which key made a request, without its secret.
    prefix: str
    scopes: frozenset[str]
    expires_at: datetime | None
    last_used_at: datetime | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def _key_cache_key(hashed_key: str) -> str:
    # v2: the entry became an AuthenticatedKey (with scopes and expiry).
    return f"apikeys:v2:{hashed_key}"


def _key_cache_get(hashed_key: str) -> AuthenticatedKey | None:
    return cache_get(_key_cache_key(hashed_key))


def _key_cache_set(hashed_key: str, entry: AuthenticatedKey) -> None:
    cache_set(_key_cache_key(hashed_key), entry, timeout=API_KEY_CACHE_SECONDS)


def _keys_forget(hashed_keys: Sequence[str]) -> None:
    """Drops cached keys now and again after the commit, so a request that read a key just before it was
    revoked cannot leave it cached for long."""

    def forget() -> None:
        try:
            cache.delete_many([_key_cache_key(hashed) for hashed in hashed_keys])
        except UNREACHABLE:
            cache_unreachable(f"forgetting revoked API keys (cached for at most {API_KEY_CACHE_SECONDS} s)")

    if hashed_keys:
        forget()
        transaction.on_commit(forget)


# The last entry each key authenticated with in this process, by the key's hash: a hint of whose key it is (a key
# never changes hands), so a request can count its account's limits with the key's lookup in one round trip
# (accounts.key_requests). Never used to authenticate. Emptied when it reaches this many keys.
API_KEY_HINTS = 4096
_key_hints: dict[str, AuthenticatedKey] = {}


@dataclass(frozen=True)
class ApiKeyLookup:
    """A key's cache entry as a request read it beside other commands (accounts.key_requests): the key's hash, the
    cache key of its entry, and the entry (None: not cached)."""

    hashed: str
    cache_key: str
    entry: AuthenticatedKey | None = None


def api_key_lookup(*, raw_key: str) -> tuple[ApiKeyLookup, AuthenticatedKey | None]:
    """Where the key's entry is cached, and the entry it last authenticated with in this process (a hint, or None)."""
    hashed = _hash_key(raw_key)
    return ApiKeyLookup(hashed=hashed, cache_key=_key_cache_key(hashed)), _key_hints.get(hashed)


def api_key_authenticate(*, raw_key: str, looked_up: ApiKeyLookup | None = None) -> AuthenticatedKey | None:
    """The active, unexpired key with this raw key (its user, scopes and expiry), or None.

    The answer is cached in Redis for API_KEY_CACHE_SECONDS under the key's hash (never the raw key), so a
    request by key usually costs no query; revoking a key (or every key, as a password change does) drops
    it from the cache. The expiry is checked on every request, cached or not. Deactivating a user takes
    effect on their keys within API_KEY_CACHE_SECONDS. With Redis down every request reads PostgreSQL.
    `looked_up` is the key's cache entry as the request already read it (api_key_lookup), if it did."""
    hashed = _hash_key(raw_key)
    read = looked_up is not None and looked_up.hashed == hashed
    entry = looked_up.entry if read and looked_up is not None else _key_cache_get(hashed)
    fresh = entry is None
    now = timezone.now()
    if entry is None:
        api_key = (
            ApiKey.objects.select_related("user")
            .filter(hashed_key=hashed, revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if api_key is None:
            _key_hints.pop(hashed, None)
            return None
        entry = AuthenticatedKey(
            user=api_key.user,
            key_id=api_key.pk,
            prefix=api_key.prefix,
            scopes=frozenset(api_key.scopes),
            expires_at=api_key.expires_at,
            last_used_at=api_key.last_used_at,
        )
    if entry.expires_at is not None and entry.expires_at <= now:
        _key_hints.pop(hashed, None)
        return None
    # A read-heavy client would otherwise write this row on every request: once a minute tells enough.
    if entry.last_used_at is None or now - entry.last_used_at > API_KEY_USE_RESOLUTION:
        ApiKey.objects.filter(pk=entry.key_id).update(last_used_at=now)
        entry, fresh = replace(entry, last_used_at=now), True
    if fresh:
        _key_cache_set(hashed, entry)
    if hashed not in _key_hints and len(_key_hints) >= API_KEY_HINTS:
        _key_hints.clear()
    _key_hints[hashed] = entry
    return entry


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


# The model's own table name, never input.
USER_FOLLOW = UserFollow._meta.db_table


def user_follow(*, follower: User, followed: User) -> bool:
    """`follower` follows `followed` (their trades and comments reach the feed); True when it is new."""
    if follower.pk == followed.pk:
        raise InvalidInput("You cannot follow yourself.", field="username")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {USER_FOLLOW} (follower_id, followed_id, created_at) VALUES (%s, %s, %s)"  # noqa: S608
            " ON CONFLICT (follower_id, followed_id) DO NOTHING",
            [follower.pk, followed.pk, timezone.now()],
        )
        return cursor.rowcount == 1


def user_unfollow(*, follower: User, followed: User) -> bool:
    """Stops following; True when there was a follow to remove."""
    deleted, _ = UserFollow.objects.filter(follower=follower, followed=followed).delete()
    return deleted > 0
