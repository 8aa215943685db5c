"""The one way to lock markets: `market_lock` and `markets_lock` (docs/concurrency.md).

A market's row lock serialises everything that reads a market's state and then writes on that reading:
trades, opening, closing, resolving, settling and scoring. Take it first, before any wallet or other
account (wallets after it, in id order), inside a short `transaction.atomic()`; Django refuses a row
lock outside a transaction."""

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

from django.db import OperationalError, connection
from django.db.models import QuerySet
from psycopg.errors import DeadlockDetected

from markets.models import Market

# Every column of the market, in the model's field order (Model.from_db takes them positionally).
_MARKET_FIELDS = [field.attname for field in Market._meta.concrete_fields]
_MARKET_LOCK_SQL = "SELECT {columns} FROM {table} WHERE id = %s FOR UPDATE".format(  # noqa: S608  # nosec B608 - model names
    columns=", ".join(connection.ops.quote_name(field.column) for field in Market._meta.concrete_fields),
    table=connection.ops.quote_name(Market._meta.db_table),
)

# The caller's query may annotate the market (a subclass type for mypy): the lock returns that type.
_Locked = TypeVar("_Locked", bound=Market)


@overload
def market_lock(*, market_id: int, missing_ok: Literal[False] = False) -> Market: ...


@overload
def market_lock(*, market_id: int, missing_ok: Literal[True]) -> Market | None: ...


@overload
def market_lock(*, market_id: int, query: QuerySet[_Locked], missing_ok: Literal[False] = False) -> _Locked: ...


@overload
def market_lock(*, market_id: int, query: QuerySet[_Locked], missing_ok: Literal[True]) -> _Locked | None: ...


def market_lock(*, market_id: int, query: QuerySet[Any] | None = None, missing_ok: bool = False) -> Any:
    """Locks one market's row (`SELECT ... FOR UPDATE OF` the market alone) and returns it fresh.

    `query` adds what the caller wants in the same round trip (joins, annotations); a joined row is not
    locked. A missing market raises Market.DoesNotExist, or gives None with `missing_ok`."""
    locked = (Market.objects.all() if query is None else query).select_for_update(of=("self",))
    if missing_ok:
        return locked.filter(pk=market_id).first()
    return locked.get(pk=market_id)


def markets_lock(*, query: QuerySet[Market]) -> list[int]:
    """Locks every market `query` selects, in id order (so two such calls cannot deadlock); their ids."""
    return list(query.select_for_update(of=("self",)).order_by("pk").values_list("pk", flat=True))


def market_lock_and_read(
    *, market_id: int, sql: str, params: Mapping[str, Any]
) -> tuple[Market, tuple[Any, ...]] | None:
    """market_lock for the trade path: locks the market's row and reads what the caller reads under the lock, in
    one round trip; (the fresh market, the first row of `sql`), or None when there is no such market.

    The two are separate statements sent together (psycopg's pipeline mode; with the transaction's BEGIN when
    this opens it), not one: in READ COMMITTED a statement reads with the snapshot it started with, so a read in
    the statement that waited for the lock would miss what the lock's previous holder committed meanwhile. The
    second statement starts once the lock is granted and sees all of it."""
    with connection.cursor() as lock_cursor, connection.cursor() as read_cursor:
        with connection.connection.pipeline():
            lock_cursor.execute(_MARKET_LOCK_SQL, [market_id])
            read_cursor.execute(sql, params)
        market_row = lock_cursor.fetchone()
        row = read_cursor.fetchone()
    if market_row is None:
        return None
    return Market.from_db(connection.alias, _MARKET_FIELDS, market_row), row


_Result = TypeVar("_Result")
DEADLOCK_ATTEMPTS = 3


def deadlock_retried(run: Callable[[], _Result]) -> _Result:
    """Runs `run` (one whole transaction) again when PostgreSQL broke a deadlock by aborting it.

    A trade locks its market, then its trader's wallet, then (when it fills resting limit orders) their owners'
    reserved accounts and wallets: two trades on two markets, each filling an order of the other's trader, can
    wait on each other. Nothing of an aborted transaction was written, so running it again is safe."""
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            return run()
        except OperationalError as error:
            if attempt == DEADLOCK_ATTEMPTS or not isinstance(error.__cause__, DeadlockDetected):
                raise
    raise AssertionError("unreachable")
