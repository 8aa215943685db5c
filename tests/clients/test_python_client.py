"""The Python client (clients/python) against a live server: `make run`'s web side (the front, gunicorn and the
stream's uvicorn, tests/stream_server.py) started by the test, on the test database."""

import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.utils import timezone
from forecastle_client import Client, InsufficientScope, InvalidInput, NotFound, OrderNotOpen

from accounts.models import Account, Scope
from accounts.services import api_key_create
from markets.models import Trade
from markets.services import trade_execute
from markets.trade_request import TradeRequest
from tests.redis_namespace import namespace_delete
from tests.stream_server import front_stack, stream_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent.parent


class LosingTransport(httpx.HTTPTransport):
    """Sends every request to the server, but loses the response of the first trade after the server answered
    it: the trade ran, and the client sees a broken connection (as when a proxy or the network drops it)."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.posts.append(request)
            if len(self.posts) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset after the server answered", request=request)
        return response


class DroppableStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, drop: threading.Event, deadline: float) -> None:
        self.inner = inner
        self.drop = drop
        self.deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            # Heartbeats come every second: a test waiting for an event that never comes fails, not hangs.
            if time.monotonic() > self.deadline:
                raise AssertionError("no such event within the test's time")
            if self.drop.is_set():
                # What arrived is lost with the connection, as on a real drop.
                self.drop.clear()
                raise httpx.ReadError("the network dropped the stream")
            yield chunk

    def close(self) -> None:
        self.inner.close()


class DroppingTransport(httpx.HTTPTransport):
    """Breaks the stream's connection on demand (set `drop`), and keeps each stream request's headers."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = threading.Event()
        self.stream_requests: list[httpx.Request] = []
        self.deadline = time.monotonic() + 60

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path == "/api/v1/stream/":
            self.stream_requests.append(request)
            assert isinstance(response.stream, httpx.SyncByteStream)
            response.stream = DroppableStream(response.stream, self.drop, self.deadline)
        return response


@pytest.fixture
def server(settings, tmp_path):
    key = stream_key()
    settings.FORECASTLE_STREAM_KEY = key
    with front_stack(key=key, directory=tmp_path, env={"STREAM_HEARTBEAT_SECONDS": "1"}) as stack:
        yield f"http://127.0.0.1:{stack.port}"
    namespace_delete(settings.REDIS_URL, key)


def test_reads_trades_once_under_a_forced_retry_and_a_read_key_gets_a_typed_403(server, make_market, make_user):
    market = make_market("client-market", question="Will the client work?")
    trader = make_user("client-trader")
    _stored, trade_key = api_key_create(user=trader, name="bot", scopes=[Scope.READ, Scope.TRADE])
    _stored, read_key = api_key_create(user=trader, name="reader", scopes=[Scope.READ])
    transport = LosingTransport()
    waits: list[float] = []
    with Client(server, token=trade_key, transport=transport, sleep=waits.append) as client:
        listed = {row.slug: row for row in client.markets(status="open")}
        assert listed["client-market"].question == "Will the client work?"
        before = client.market("client-market")
        assert before.probabilities == {"YES": 0.5, "NO": 0.5}
        opened = timezone.now()
        quote = client.quote("client-market", "YES", side="buy", amount=10)
        balance = client.me().balance

        result = client.trade("client-market", "YES", side="buy", amount=10, max_cost=10)
        # The first answer was lost; the retry carried the same key and the server replayed the trade.
        assert len(transport.posts) == 2
        assert {post.headers["Idempotency-Key"] for post in transport.posts} == {result.idempotency_key}
        assert result.replayed
        assert waits == [0.5]
        assert (result.trade.shares, result.trade.amount) == (quote.shares, quote.amount)
        assert Trade.objects.filter(market=market).count() == 1
        assert client.me().balance == balance - quote.amount == Account.objects.get(user=trader).balance
        assert client.market("client-market").probabilities == result.probabilities

        # The past comes back exactly, the history has both prices, a quote then is the quote given then.
        assert client.market("client-market", as_of=opened).probabilities == before.probabilities
        (then,) = client.markets(as_of=opened)
        assert (then.slug, then.probabilities, then.volume) == ("client-market", before.probabilities, Decimal(0))
        with Client(server) as anonymous:  # no key: the web process's fast reads see these first
            assert anonymous.market("client-market", as_of=opened).probabilities == before.probabilities
            assert anonymous.quote("client-market", "YES", side="buy", amount=10, as_of=opened) == quote
            assert anonymous.market("client-market").probabilities == result.probabilities
        assert client.quote("client-market", "YES", side="buy", amount=10, as_of=opened) == quote
        history = client.history("client-market").outcome("YES")
        assert [point.probability for point in history.points] == [0.5, result.probabilities["YES"]]
        assert [trade.id for trade in client.trades("client-market")] == [result.trade.id]
        (position,) = client.positions()
        assert (position.market, position.shares) == ("client-market", result.position.shares)

        with pytest.raises(InvalidInput) as invalid:
            client.market("client-market", as_of="2000-01-01T00:00:00Z")
        assert list(invalid.value.fields) == ["as_of"]
        with pytest.raises(NotFound):
            client.market("no-such-market")

    with Client(server, token=read_key) as reader:
        assert reader.market("client-market").slug == "client-market"
        with pytest.raises(InsufficientScope) as refused:
            reader.trade("client-market", "YES", side="buy", amount=5)
        assert (refused.value.status, refused.value.code) == (403, "insufficient_scope")
    assert Trade.objects.filter(market=market).count() == 1


def test_the_stream_iterator_receives_a_trades_price_and_resumes_after_a_drop(server, make_market, make_user):
    make_market("client-stream")
    _stored, key = api_key_create(user=make_user("streamer"), name="bot", scopes=[Scope.READ, Scope.TRADE])
    transport = DroppingTransport()
    trader, listener = Client(server, token=key), Client(server, transport=transport)
    with trader, listener, listener.stream(["client-stream"]) as stream:
        first = trader.trade("client-stream", "YES", side="buy", amount=10)
        price = next(event for event in stream if event.event == "price")
        assert price.probabilities == first.probabilities
        assert price.market == "client-stream"
        assert stream.last_event_id == price.id

        # The connection drops as the next trade's events arrive: they are lost with it. The iterator
        # reconnects with Last-Event-ID and the server sends them again.
        transport.drop.set()
        second = trader.trade("client-stream", "NO", side="buy", amount=25)
        events = []
        for event in stream:
            events.append(event)
            if event.event == "price":
                break
        assert [event.event for event in events] == ["trade", "price"]
        assert events[0].data["id"] == second.trade.id
        assert events[1].probabilities == second.probabilities
        assert stream.reconnects == 1
        assert transport.stream_requests[-1].headers["Last-Event-ID"] == price.id
        assert Decimal(events[1].data["volume"]) == first.trade.amount + second.trade.amount


def test_limit_orders_rest_in_the_book_replay_under_their_key_and_cancel(server, make_market, make_user):
    make_market("client-orders")
    trader = make_user("orderer")
    _stored, key = api_key_create(user=trader, name="bot", scopes=[Scope.READ, Scope.TRADE])
    with Client(server, token=key) as client:
        balance = client.me().balance
        # Below the price (0.5): nothing trades at once, all of it rests with its credits reserved.
        placed = client.place_order("client-orders", "YES", side="buy", limit="0.4", size=20)
        assert (placed.trade_id, placed.replayed, placed.order.status) == (None, False, "open")
        assert (placed.order.limit, placed.order.remaining, placed.reserved) == (
            Decimal("0.4"),
            Decimal(20),
            Decimal(20),
        )
        me = client.me()
        assert (me.available, me.reserved) == (balance - 20, Decimal(20))
        (level,) = client.order_book("client-orders")
        assert (level.outcome, level.side, level.limit, level.size, level.unit, level.orders) == (
            "YES",
            "buy",
            Decimal("0.4"),
            Decimal(20),
            "credits",
            1,
        )
        again = client.place_order(
            "client-orders", "YES", side="buy", limit="0.4", size=20, idempotency_key=placed.idempotency_key
        )
        assert (again.replayed, again.order.id) == (True, placed.order.id)
        assert [order.id for order in client.orders(open_only=True)] == [placed.order.id]

        cancelled = client.cancel_order(placed.order.id)
        assert (cancelled.status, cancelled.reserved_credits) == ("cancelled", Decimal(0))
        with pytest.raises(OrderNotOpen):
            client.cancel_order(placed.order.id)
        assert client.order_book("client-orders") == []
        assert client.me().balance == balance
        assert [order.status for order in client.orders(market="client-orders")] == ["cancelled"]


class RecordingTransport(httpx.HTTPTransport):
    """Keeps every response, as the server sent it (its headers; httpx decodes the body for the client)."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: list[httpx.Response] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.responses.append(response)
        return response


def test_the_client_takes_cached_reads_in_gzip_and_reads_them_as_before(server, make_market, make_user):
    markets = [make_market(f"client-gzip-{index}", outcomes=6) for index in range(4)]
    trader = make_user("gzip-trader")
    for market in markets:
        trade_execute(user=trader, market=market, request=TradeRequest(outcome="O1", side="buy", amount=Decimal(5)))
    transport = RecordingTransport()
    with Client(server, transport=transport) as client:
        for _time in range(2):  # rendered, then the stored bytes
            listed = list(client.markets(status="open"))
            history = client.history("client-gzip-0")
        market = client.market("client-gzip-0")
    assert {row.slug for row in listed} == {market.slug for market in markets}
    assert history.outcome("O1").points[0].probability == pytest.approx(1 / 6)
    assert market.probabilities == {row.slug: row for row in listed}["client-gzip-0"].probabilities
    # Six outcomes make every one of these bodies larger than config.core.encodings.GZIP_MIN_BYTES.
    assert [(response.url.path, response.headers.get("Content-Encoding")) for response in transport.responses] == [
        ("/api/v1/markets/", "gzip"),
        ("/api/v1/markets/client-gzip-0/history/", "gzip"),
    ] * 2 + [("/api/v1/markets/client-gzip-0/", "gzip")]
    assert all("Accept-Encoding" in response.headers["Vary"] for response in transport.responses)


def test_an_orders_trades_say_which_order_and_which_is_a_fill(server, make_market, make_user):
    make_market("client-fills")
    owner, other = make_user("filled-owner"), make_user("filled-other")
    _stored, owner_key = api_key_create(user=owner, name="bot", scopes=[Scope.READ, Scope.TRADE])
    _stored, other_key = api_key_create(user=other, name="bot", scopes=[Scope.READ, Scope.TRADE])
    with Client(server, token=owner_key) as client, Client(server, token=other_key) as trader:
        # Above the price (0.5): part trades at once, the rest rests and fills when the other's trade lowers it.
        placed = client.place_order("client-fills", "YES", side="buy", limit="0.6", size=40)
        pushed = trader.trade("client-fills", "NO", side="buy", amount=15)
        assert (pushed.trade.fill, pushed.trade.order) == (False, None)
        mine = list(client.my_trades(order=placed.order.id))
        assert [(trade.fill, trade.order) for trade in mine] == [(True, placed.order.id), (False, placed.order.id)]
        assert mine[1].id == placed.trade_id
        public = {trade.id: trade for trade in trader.trades("client-fills")}
        assert (public[mine[0].id].fill, public[mine[0].id].order, public[mine[0].id].username) == (
            True,
            placed.order.id,
            "filled-owner",
        )
        assert list(trader.my_trades(order=placed.order.id)) == []


def test_the_package_builds_as_pip_installs_it(tmp_path):
    # Offline: the build backend (setuptools) is the virtualenv's own.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=ROOT / "clients" / "python",
        check=True,
    )
    (wheel,) = tmp_path.glob("forecastle_client-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"forecastle_client/__init__.py", "forecastle_client/client.py", "forecastle_client/py.typed"} <= names
