"""The Python client (clients/python) without a server: its retry policy, error mapping and SSE reading, against
httpx's MockTransport. tests/clients/test_python_client.py runs it against a live server."""

import json
from collections.abc import Callable
from dataclasses import fields
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
from forecastle_client import (
    Account,
    Client,
    ConnectionFailed,
    InsufficientScope,
    InvalidInput,
    MarketHalted,
    PermissionDenied,
    RateLimited,
    ServerError,
)
from forecastle_client.models import (
    BookLevel,
    HeldPosition,
    History,
    Market,
    MarketDetail,
    Order,
    OrderPlacement,
    Outcome,
    Position,
    Quote,
    Trade,
    TradeResult,
)
from rest_framework.test import APIClient

TRADE_RESULT = {
    "trade": {
        "id": 7,
        "market": "m",
        "outcome": "YES",
        "side": "buy",
        "shares": "19.000000",
        "amount": "10.000000",
        "average_price": "0.526316",
        "probabilities_before": {"YES": 0.5, "NO": 0.5},
        "probabilities_after": {"YES": 0.547, "NO": 0.453},
        "username": "ana",
        "created_at": "2026-11-30T12:00:00.120000Z",
        "voided_at": None,
    },
    "probabilities": {"YES": 0.547, "NO": 0.453},
    "balance": "990.000000",
    "position": {"outcome": "YES", "shares": "19.000000"},
    "replayed": False,
}


def error(
    status: int, code: str, message: str, fields: dict | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return httpx.Response(status, json=body, headers=headers or {})


def client_with(handler: Callable[[httpx.Request], httpx.Response], **options) -> tuple[Client, list[float]]:
    waits: list[float] = []
    client = Client(
        "http://forecastle.test", token="k", transport=httpx.MockTransport(handler), sleep=waits.append, **options
    )
    return client, waits


def test_a_trade_is_retried_with_the_same_idempotency_key_after_a_lost_connection_and_a_503():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ReadError("connection reset", request=request)
        if len(seen) == 2:
            return error(503, "unavailable", "Try again.", headers={"Retry-After": "2"})
        return httpx.Response(200, json={**TRADE_RESULT, "replayed": True})

    client, waits = client_with(handler)
    result = client.trade("m", "YES", side="buy", amount=Decimal(10), max_cost="10.5")
    assert result.replayed
    assert result.trade.amount == Decimal("10.000000")
    keys = {request.headers["Idempotency-Key"] for request in seen}
    assert keys == {result.idempotency_key}
    assert len(seen) == 3
    assert waits == [0.5, 2.0]
    assert json.loads(seen[0].content) == {"outcome": "YES", "side": "buy", "amount": "10", "max_cost": "10.5"}
    assert seen[0].headers["Authorization"] == "Token k"
    assert seen[0].url.path == "/api/v1/markets/m/trades/"


def test_retries_end_in_a_typed_error():
    client, waits = client_with(lambda request: error(502, "bad_gateway", "Down."), retries=2)
    with pytest.raises(ServerError) as raised:
        client.market("m")
    assert raised.value.status == 502
    assert waits == [0.5, 1.0]

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, _waits = client_with(refuse, retries=1)
    with pytest.raises(ConnectionFailed):
        client.market("m")


def test_a_429_is_waited_out_unless_it_asks_for_too_long():
    account = {"username": "ana", "balance": "12.500000", "date_joined": "2026-11-30T12:00:00Z", "reserved": "3"}
    answers = iter(
        [error(429, "throttled", "Slow down.", headers={"Retry-After": "3"}), httpx.Response(200, json=account)]
    )
    client, waits = client_with(lambda request: next(answers))
    me = client.me()
    assert (me.balance, me.available, me.reserved) == (Decimal("12.5"), None, Decimal(3))
    assert waits == [3.0]

    client, waits = client_with(lambda request: error(429, "throttled", "Slow.", headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as raised:
        client.me()
    assert raised.value.retry_after == 3600
    assert waits == []


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (403, "insufficient_scope", InsufficientScope),
        (403, "permission_denied", PermissionDenied),
        (409, "market_halted", MarketHalted),
        (400, "invalid", InvalidInput),
    ],
)
def test_errors_are_typed_by_code_then_status(status, code, kind):
    client, _waits = client_with(lambda request: error(status, code, "No.", {"as_of": ["Give a past time."]}))
    with pytest.raises(kind) as raised:
        client.quote("m", "YES", side="buy", shares=1)
    assert (raised.value.status, raised.value.code, raised.value.message) == (status, code, "No.")
    assert raised.value.fields == {"as_of": ["Give a past time."]}


SSE_FIRST = (
    "retry: 1500\n\n"
    ": heartbeat\n\n"
    'id: 1-0\nevent: trade\ndata: {"id": 7, "market": "m",\ndata:  "probabilities_after": {"YES": 0.6}}\n\n'
    'id: 1-1\nevent: price\ndata: {"market": "m", "version": 3, "probabilities": {"YES": 0.6}, "volume": "10"}\n\n'
)
SSE_SECOND = (
    'event: reset\ndata: {"reason": "gone"}\n\n'
    'id: 2-0\nevent: status\ndata: {"market": "m", "status": "closed", "at": "2026-11-30T12:00:00Z"}\n\n'
)


def test_the_stream_skips_heartbeats_and_reconnects_with_last_event_id():
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        body = SSE_FIRST if len(requests) == 1 else SSE_SECOND
        return httpx.Response(200, content=body.encode(), headers={"Content-Type": "text/event-stream"})

    client, waits = client_with(handler)
    with client.stream(["m", "n"]) as stream:
        events = [next(stream) for _ in range(4)]
    assert [(event.id, event.event) for event in events] == [
        ("1-0", "trade"),
        ("1-1", "price"),
        (None, "reset"),
        ("2-0", "status"),
    ]
    assert events[0].data == {"id": 7, "market": "m", "probabilities_after": {"YES": 0.6}}
    assert (events[1].probabilities, events[1].volume, events[1].market) == ({"YES": 0.6}, Decimal(10), "m")
    assert requests[0].url.params["markets"] == "m,n"
    assert "Last-Event-ID" not in requests[0].headers
    assert requests[1].headers["Last-Event-ID"] == "1-1"
    # The server's retry (1.5 s) between the end of the first response and the reconnection.
    assert waits == [1.5]
    assert stream.last_event_id == "2-0"
    assert stream.reconnects == 1


def test_a_stream_that_keeps_failing_ends_and_a_refusal_is_typed():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, waits = client_with(refuse)
    with pytest.raises(ConnectionFailed):
        next(client.stream(max_reconnects=2))
    assert len(waits) == 2

    client, _waits = client_with(lambda request: error(400, "invalid", "No market 'x'.", {"markets": ["x"]}))
    with pytest.raises(InvalidInput):
        next(client.stream(["x"]))


@pytest.mark.django_db
def test_the_models_read_every_field_the_schema_promises():
    """Hand-written models, checked against the schema: a field the API adds fails here until the client has it."""
    schemas = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schemas["components"]["schemas"]
    models = {
        "MarketSummary": Market,
        "MarketDetail": MarketDetail,
        "MarketOutcome": Outcome,
        "MarketQuote": Quote,
        "TradeOutput": Trade,
        "MarketTrades": TradeResult,
        "Position": Position,
        "MarketHistory": History,
        "Me": Account,
        "MePositions": HeldPosition,
        "OrderOutput": Order,
        "MarketOrders": OrderPlacement,
        "MarketOrdersLevel": BookLevel,
    }
    for component, model in models.items():
        promised = set(components[component]["properties"])
        known = {field.name: field for field in fields(model) if field.name not in ("raw", "idempotency_key")}
        assert promised <= set(known), f"{component}: the client does not read {promised - set(known)}"
        # A field the client knows before this server has it (a newer server's) is optional.
        for name in set(known) - promised:
            assert known[name].default is None, f"{component}.{name} is not in the schema and not optional"


def test_my_trades_of_an_order_read_fill_and_order_and_a_stream_trade_has_no_order():
    seen: list[httpx.Request] = []
    trade = cast(dict[str, Any], TRADE_RESULT["trade"])
    fill = {**trade, "fill": True, "order": 42}
    marketable = {**trade, "id": 6, "fill": False, "order": 42}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"next": None, "previous": None, "results": [fill, marketable]})

    client, _waits = client_with(handler)
    trades = list(client.my_trades(order=42))
    assert [(trade.id, trade.fill, trade.order) for trade in trades] == [(7, True, 42), (6, False, 42)]
    assert seen[0].url.path == "/api/v1/me/trades/"
    assert seen[0].url.params["order"] == "42"
    # The stream's trade event carries `fill` but no `order`; an older server's trade neither.
    streamed = Trade.from_json({**trade, "fill": True})
    assert (streamed.fill, streamed.order) == (True, None)
    older = Trade.from_json(trade)
    assert (older.fill, older.order) == (False, None)
