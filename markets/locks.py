"""The one way to lock markets: `market_lock` and `markets_lock` (docs/concurrency.md).

A market's row lock serialises everything that reads a market's state and then writes on that reading:
trades, opening, closing, resolving, settling and scoring. Take it first, before any wallet or other
account (wallets after it, in id order), inside a short `transaction.atomic()`; Django refuses a row
lock outside a transaction."""

from typing import Any, Literal, TypeVar, overload

from django.db.models import QuerySet

from markets.models import Market

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
