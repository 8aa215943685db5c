"""A trade's commit sent with its write (markets.services.trading._trade_write): in its own transaction, a trade that
crosses no resting limit releases the market's lock as its write lands; a refusal by the database in that write
still rolls everything back; a trade inside a caller's transaction, or one that fills orders, commits as before."""

import threading
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction

from accounts.services import wallet_get
from markets import cache as price_cache
from markets.errors import InsufficientFunds
from markets.models import LimitOrder, Market, Trade
from markets.selectors.prices import market_snapshot_build
from markets.services import markets_reconcile, trade_execute
from markets.services import trading as trading_service
from markets.services.orders import OrderRequest, order_place
from tests.factories import trade_request

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def commits(monkeypatch):
    """Each COMMIT psycopg is asked for while a transaction is open (clear it before the act): True when it went in
    a pipeline with the statements before it (the atomic block's own commit afterwards finds nothing to commit and
    is not listed)."""
    seen: list[bool] = []
    commit = psycopg.Connection.commit

    def spy(self):
        if self.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            seen.append(self._pipeline is not None)
        return commit(self)

    monkeypatch.setattr(psycopg.Connection, "commit", spy)
    return seen


def test_a_trade_in_its_own_transaction_commits_with_its_write(make_market, make_user, commits):
    market = make_market(slug="piped")
    user = make_user()
    commits.clear()
    result = trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    assert commits == [True]
    assert Trade.objects.get().pk == result.trade.pk
    assert wallet_get(user=user).balance == result.balance
    # The after-commit callbacks ran: the cached snapshot is the trade's, as the database holds it.
    rebuilt = market_snapshot_build(market_id=market.pk)
    assert rebuilt is not None
    assert price_cache.cache_get(price_cache.snapshot_key(market.slug)) == price_cache.snapshot_rendered(rebuilt)
    assert markets_reconcile() == []


def test_a_trade_in_a_callers_transaction_leaves_the_commit_to_it(make_market, make_user, commits):
    market = make_market(slug="nested")
    user = make_user()
    commits.clear()
    with transaction.atomic():
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
        assert commits == []  # a savepoint: the caller's transaction is still open
    assert commits == [False]
    assert Trade.objects.count() == 1


def test_a_write_the_database_refuses_rolls_back_with_the_commit_skipped(make_market, make_user, monkeypatch, commits):
    market = make_market(slug="refused")
    user = make_user()
    balance = wallet_get(user=user).balance
    commits.clear()

    def beyond_the_balance(*, request, quote, outcome, held, locked):
        # Past the service's own balance check: only the wallet's CHECK balance >= 0 refuses this posting.
        return quote.shares, locked.balance + Decimal(1)

    with monkeypatch.context() as patched:
        patched.setattr(trading_service, "_checked_changes", beyond_the_balance)
        with pytest.raises(InsufficientFunds):
            trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    # The COMMIT went with the write; the server skipped it (a pipeline discards what follows an error).
    assert commits == [True]
    assert Trade.objects.count() == 0
    assert wallet_get(user=user).balance == balance
    # The connection is usable and the market's lock free: the next trade goes through.
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="1"))
    assert commits == [True, True]
    assert Trade.objects.count() == 1
    assert markets_reconcile() == []


def test_a_trade_that_fills_resting_orders_commits_after_the_fills(make_market, make_user, commits):
    market = make_market(slug="crossing", liquidity=100)
    buyer, seller = make_user("resting"), make_user("crossing")
    placed = order_place(
        user=buyer,
        market=market,
        request=OrderRequest(outcome="YES", side="buy", limit=Decimal("0.5"), size=Decimal("100")),
    ).order
    commits.clear()
    trade_execute(user=seller, market=market, request=trade_request("NO", "buy", shares="200"))
    assert commits == [False]  # the fill pass ran under the lock, then the block committed
    assert LimitOrder.objects.get(pk=placed.pk).filled_shares > 0
    assert Trade.objects.filter(order=placed).count() == 1
    assert markets_reconcile() == []


def test_threads_on_one_market_with_the_commit_sent_with_the_write(make_market, make_user):
    """Eight threads, two per wallet, on one market: every trade that each saw succeed is in the books once, the
    books reconcile, and the snapshot left cached is the database's."""
    market = make_market(
        slug="hot-piped",
        kind=Market.Kind.MULTIPLE,
        outcomes=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")],
        liquidity=200,
    )
    users = [make_user(f"piper{index}") for index in range(4)]
    barrier = threading.Barrier(8)
    traded: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def trader(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            for step in range(10):
                result = trade_execute(
                    user=users[index % 4],
                    market=market.pk,
                    request=trade_request("ABCD"[(index + step) % 4], "buy", amount="2"),
                )
                with lock:
                    traded.append(result.trade.pk)
        except BaseException as error:  # reported by the assertions below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=trader, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert sorted(traded) == sorted(Trade.objects.values_list("pk", flat=True))
    assert len(traded) == 80
    assert markets_reconcile() == []
    rebuilt = market_snapshot_build(market_id=market.pk)
    assert rebuilt is not None
    assert price_cache.cache_get(price_cache.snapshot_key(market.slug)) == price_cache.snapshot_rendered(rebuilt)
