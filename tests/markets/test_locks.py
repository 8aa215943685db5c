"""markets.locks: the one helper every market lock goes through (docs/concurrency.md)."""

import threading
from pathlib import Path
from typing import TypedDict

import pytest
from django.db import OperationalError, connections, transaction
from django.db.models import OuterRef, Subquery
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django_stubs_ext import WithAnnotations

from markets.locks import market_lock, markets_lock
from markets.models import Market, Outcome

ROOT = Path(__file__).resolve().parents[2]


class FirstOutcome(TypedDict):
    first: str


def row_is_locked(market_id: int) -> bool:
    """Asks from another connection (another thread) whether the market's row can be locked right now."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.execute("SELECT id FROM markets_market WHERE id = %s FOR UPDATE NOWAIT", [market_id])
            answer.append(False)
        except OperationalError:
            answer.append(True)
        finally:
            connections["default"].close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(timeout=10)
    return answer == [True]


@pytest.mark.django_db(transaction=True)
def test_the_lock_holds_the_row_until_the_transaction_ends(make_market):
    market = make_market()
    with transaction.atomic():
        locked = market_lock(market_id=market.pk)
        assert locked == market
        assert row_is_locked(market.pk)
    assert not row_is_locked(market.pk)


@pytest.mark.django_db
def test_a_joined_or_annotated_query_locks_the_market_alone(make_market):
    market = make_market()
    first = Outcome.objects.filter(market=OuterRef("pk")).order_by("index").values("code")[:1]
    with CaptureQueriesContext(transaction.get_connection()) as queries:
        locked: WithAnnotations[Market, FirstOutcome] = market_lock(
            market_id=market.pk, query=Market.objects.select_related("escrow").annotate(first=Subquery(first))
        )
    assert locked.first == "YES"
    assert locked.escrow.pk == market.escrow_id
    assert len(queries) == 1
    assert 'FOR UPDATE OF "markets_market"' in queries[0]["sql"]


@pytest.mark.django_db
def test_a_missing_market_raises_unless_missing_is_allowed():
    with pytest.raises(Market.DoesNotExist):
        market_lock(market_id=10**9)
    assert market_lock(market_id=10**9, missing_ok=True) is None


@pytest.mark.django_db(transaction=True)
def test_a_lock_outside_a_transaction_is_refused(make_market):
    market = make_market()
    with pytest.raises(TransactionManagementError):
        market_lock(market_id=market.pk)


@pytest.mark.django_db
def test_many_markets_are_locked_in_id_order(make_market):
    markets = [make_market() for _ in range(3)]
    with CaptureQueriesContext(transaction.get_connection()) as queries:
        ids = markets_lock(query=Market.objects.filter(pk__in=[m.pk for m in reversed(markets)]))
    assert ids == sorted(m.pk for m in markets)
    assert "ORDER BY" in queries[0]["sql"]
    assert "FOR UPDATE OF" in queries[0]["sql"]


def test_every_market_lock_goes_through_the_helper():
    """A market row is locked only in markets/locks.py: the lock order documented there holds everywhere."""
    offenders = []
    for app in ("accounts", "markets", "forecast"):
        for path in (ROOT / app).rglob("*.py"):
            if path == ROOT / "markets" / "locks.py" or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "select_for_update" in line and "Market" in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
                if "FOR UPDATE" in line and "markets_market" in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []
