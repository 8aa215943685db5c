"""The Forecastle API client: one `Client` over an httpx connection pool.

Retries: a request that fails to connect, breaks off, times out, or is answered 429, 500, 502, 503 or 504 is
sent again, up to `retries` more times, after `backoff * 2**attempt` seconds or the server's `Retry-After`. A
trade is retried too: it always carries an `Idempotency-Key` (a new UUID unless you give one), the same on every
attempt, so the server runs it once and answers a retry with the first result (`TradeResult.replayed`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from forecastle_client.errors import ApiError, ConnectionFailed, StreamError, error_from, retry_after
from forecastle_client.models import (
    Account,
    BookLevel,
    HeldPosition,
    History,
    Market,
    MarketDetail,
    Order,
    OrderPlacement,
    Quote,
    StreamEvent,
    Trade,
    TradeResult,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
Number = Decimal | int | float | str
Moment = datetime | str


def _number(value: Number) -> str:
    """A number as the API reads it: a decimal string (a float by its shortest repr)."""
    return repr(value) if isinstance(value, float) else str(value)


def _moment(value: Moment) -> str:
    """An ISO 8601 time; a naive datetime is taken as UTC."""
    if isinstance(value, str):
        return value
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _api_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root + "/" if root.endswith("/api/v1") else root + "/api/v1/"


class Client:
    """A client of one Forecastle server.

    `base_url` is the site's address (`http://127.0.0.1:8000`) or its API root (`.../api/v1`); `token` an API key
    (`POST /api/v1/auth/token/` or the account page), needed for trades and your own data, not for public reads.
    `transport` is any httpx transport (tests use it to break connections on purpose); `sleep` waits between
    retries.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "forecastle-client/0.1"}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.retries = retries
        self.backoff = backoff
        # A Retry-After longer than this is not waited for: the error is raised instead.
        self.max_wait = max_wait
        self._sleep = sleep
        self._http = httpx.Client(base_url=_api_root(base_url), headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Markets ---------------------------------------------------------------------------------------------------

    def markets(
        self,
        *,
        status: str | None = None,
        category: str | None = None,
        search: str | None = None,
        ordering: str | None = None,
        as_of: Moment | None = None,
        page_size: int = 100,
    ) -> Iterator[Market]:
        """Every market matching the filters, page after page (`as_of`: the markets open then, as they stood)."""
        params = {
            "status": status,
            "category": category,
            "search": search,
            "ordering": ordering,
            "as_of": _moment(as_of) if as_of is not None else None,
            "page_size": page_size,
        }
        for row in self._pages("markets/", params):
            yield Market.from_json(row)

    def market(self, slug: str, *, as_of: Moment | None = None) -> MarketDetail:
        """One market now, or as it stood at `as_of` (prices exactly as served then)."""
        params = {"as_of": _moment(as_of)} if as_of is not None else None
        return MarketDetail.from_json(self._get(f"markets/{slug}/", params))

    def history(
        self, slug: str, *, interval: str = "raw", start: Moment | None = None, end: Moment | None = None
    ) -> History:
        """Price history per outcome: every change (`raw`) or candles (`1m`, `5m`, `1h`, `1d`) in [start, end)."""
        params = {
            "interval": interval,
            "start": _moment(start) if start is not None else None,
            "end": _moment(end) if end is not None else None,
        }
        return History.from_json(self._get(f"markets/{slug}/history/", params))

    def trades(self, slug: str, *, page_size: int = 100) -> Iterator[Trade]:
        """The market's trades, newest first, page after page."""
        for row in self._pages(f"markets/{slug}/trades/", {"page_size": page_size}):
            yield Trade.from_json(row)

    # Trading ---------------------------------------------------------------------------------------------------

    def quote(
        self,
        slug: str,
        outcome: str,
        *,
        side: str | None = None,
        shares: Number | None = None,
        amount: Number | None = None,
        probability: Number | None = None,
        forecast: bool = False,
        as_of: Moment | None = None,
    ) -> Quote:
        """What a trade would cost or pay now (or at `as_of`); nothing is traded. Give `side` ("buy"/"sell") and
        one of shares, amount or probability, or `forecast=True` with a probability."""
        params = self._trade_fields(outcome, side, shares, amount, probability, forecast)
        if as_of is not None:
            params["as_of"] = _moment(as_of)
        return Quote.from_json(self._get(f"markets/{slug}/quote/", params))

    def trade(
        self,
        slug: str,
        outcome: str,
        *,
        side: str | None = None,
        shares: Number | None = None,
        amount: Number | None = None,
        probability: Number | None = None,
        forecast: bool = False,
        max_cost: Number | None = None,
        min_proceeds: Number | None = None,
        idempotency_key: str | None = None,
    ) -> TradeResult:
        """Buys or sells, once: retried on failures with the same Idempotency-Key. `max_cost` / `min_proceeds`
        refuse the trade (PriceMoved) if the price moved past them."""
        body: dict[str, Any] = self._trade_fields(outcome, side, shares, amount, probability, forecast)
        if max_cost is not None:
            body["max_cost"] = _number(max_cost)
        if min_proceeds is not None:
            body["min_proceeds"] = _number(min_proceeds)
        key = idempotency_key or str(uuid.uuid4())
        response = self._request("POST", f"markets/{slug}/trades/", json=body, headers={"Idempotency-Key": key})
        return TradeResult.from_json(response.json(), idempotency_key=key)

    @staticmethod
    def _trade_fields(
        outcome: str,
        side: str | None,
        shares: Number | None,
        amount: Number | None,
        probability: Number | None,
        forecast: bool,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"outcome": outcome}
        if side is not None:
            fields["side"] = side
        if forecast:
            fields["forecast"] = True
        for name, value in (("shares", shares), ("amount", amount), ("probability", probability)):
            if value is not None:
                fields[name] = _number(value)
        return fields

    # Limit orders ---------------------------------------------------------------------------------------------

    def place_order(
        self,
        slug: str,
        outcome: str,
        *,
        side: str,
        limit: Number,
        size: Number,
        expires_at: Moment | None = None,
        idempotency_key: str | None = None,
    ) -> OrderPlacement:
        """Places a limit order, once (retried with the same Idempotency-Key, as a trade): buy while the price is
        below `limit` spending up to `size` credits, or sell up to `size` shares while it is above. The part the
        price allows trades at once; the rest rests until filled, cancelled or `expires_at`."""
        body: dict[str, Any] = {"outcome": outcome, "side": side, "limit": _number(limit), "size": _number(size)}
        if expires_at is not None:
            body["expires_at"] = _moment(expires_at)
        key = idempotency_key or str(uuid.uuid4())
        response = self._request("POST", f"markets/{slug}/orders/", json=body, headers={"Idempotency-Key": key})
        return OrderPlacement.from_json(response.json(), idempotency_key=key)

    def order_book(self, slug: str) -> list[BookLevel]:
        """The market's resting orders per outcome, side and limit (anonymous)."""
        return [BookLevel.from_json(level) for level in self._get(f"markets/{slug}/orders/")]

    def orders(self, *, open_only: bool = False, market: str | None = None) -> Iterator[Order]:
        """Your limit orders, newest first (only those still open with `open_only`, only one market's)."""
        params = {"status": "open" if open_only else "all", "market": market, "page_size": 100}
        for row in self._pages("me/orders/", params):
            yield Order.from_json(row)

    def cancel_order(self, order_id: int) -> Order:
        """Cancels your open order and releases what it reserved. OrderNotOpen if it had already ended (also when
        a retry follows a cancel whose answer was lost: the order is then cancelled all the same)."""
        return Order.from_json(self._request("DELETE", f"orders/{order_id}/").json())

    # Your account ----------------------------------------------------------------------------------------------

    def me(self) -> Account:
        """Your username and balance (needs a key with the `read` scope)."""
        return Account.from_json(self._get("me/"))

    def positions(self) -> Iterator[HeldPosition]:
        """Your positions with their value and profit."""
        for row in self._pages("me/positions/", {"page_size": 100}):
            yield HeldPosition.from_json(row)

    def my_trades(self, *, order: int | None = None) -> Iterator[Trade]:
        """Your trades, newest first; with `order`, only those your limit order executed (its fills, and the part
        that traded when it was placed)."""
        params: dict[str, Any] = {"page_size": 100}
        if order is not None:
            params["order"] = order
        for row in self._pages("me/trades/", params):
            yield Trade.from_json(row)

    # The live stream -------------------------------------------------------------------------------------------

    def stream(
        self,
        markets: Iterable[str] | None = None,
        *,
        last_event_id: str | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        read_timeout: float = 45.0,
    ) -> EventStream:
        """The live stream of `markets` (every market when None) as an iterator of StreamEvent.

        Heartbeats are skipped. When the connection drops (or nothing, not even a heartbeat, arrives for
        `read_timeout` seconds) it reconnects with Last-Event-ID and carries on with the events it missed;
        `max_reconnects` in a row without an event in between ends it with ConnectionFailed (None: no limit).
        Close it (or use it in a `with`) to hang up."""
        return EventStream(
            self,
            markets=list(markets) if markets is not None else None,
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
            read_timeout=read_timeout,
        )

    # Requests --------------------------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._request("GET", path, params=params).json()

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        page: Any = self._get(path, params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self._get(page["next"])

    def _delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """How long to wait before the next attempt; None if the server asks for longer than max_wait."""
        asked = retry_after(response) if response is not None else None
        if asked is not None:
            return asked if asked <= self.max_wait else None
        return min(self.backoff * 2.0**attempt, self.max_wait)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        query = {name: value for name, value in (params or {}).items() if value is not None}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, params=query or None, json=json, headers=headers)
            except httpx.TransportError as error:
                if last:
                    raise ConnectionFailed(f"{method} {path}: {error!r}") from error
                self._sleep(self._delay(attempt, None) or 0.0)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                wait = self._delay(attempt, response)
                if wait is not None:
                    self._sleep(wait)
                    continue
            if response.is_error:
                raise error_from(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")


class EventStream(Iterator[StreamEvent]):
    """The live stream as an iterator (Client.stream). `last_event_id` is the id of the last event received
    (resume from it later with Client.stream(last_event_id=...)); `reconnects` counts reconnections."""

    def __init__(
        self,
        client: Client,
        *,
        markets: list[str] | None,
        last_event_id: str | None,
        reconnect: bool,
        max_reconnects: int | None,
        read_timeout: float,
    ) -> None:
        self.last_event_id = last_event_id
        self.reconnects = 0
        self._client = client
        self._params = {"markets": ",".join(markets)} if markets is not None else {}
        self._reconnect = reconnect
        self._max_reconnects = max_reconnects
        self._timeout = httpx.Timeout(client._http.timeout.connect or 10.0, read=read_timeout)
        # The server's `retry:` (milliseconds), else this.
        self._retry_seconds = 1.0
        # A refusal the stream retries (429, 5xx), until the next connection.
        self._refused: ApiError | None = None
        # Connected at once: every event after Client.stream returns is received.
        self._first: httpx.Response | None = None
        try:
            self._first = self._open()
        except httpx.TransportError as error:
            if not reconnect:
                raise ConnectionFailed(f"the stream could not connect: {error!r}") from error
        self._events = self._run()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> StreamEvent:
        return next(self._events)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._events.close()
        if self._first is not None:
            self._first.close()

    def _open(self) -> httpx.Response:
        """Connects (with Last-Event-ID once an event came) and returns the response, headers read: the server
        has subscribed this connection by then. A refusal it will not retry raises its typed error."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        request = self._client._http.build_request(
            "GET", "stream/", params=self._params, headers=headers, timeout=self._timeout
        )
        response = self._client._http.send(request, stream=True)
        if response.is_error:
            response.read()
            response.close()
            error = error_from(response)
            if response.status_code not in RETRY_STATUSES or not self._reconnect:
                raise error
            self._refused = error
        return response

    def _run(self) -> Generator[StreamEvent, None, None]:
        failures = 0
        response = self._first
        while True:
            problem: BaseException | None = None
            try:
                if response is None:
                    response = self._open()
                if not response.is_error:
                    for event in self._parse(response.iter_lines()):
                        failures = 0
                        yield event
                problem = self._refused or ConnectionFailed("the server ended the stream")
            except httpx.TransportError as error:
                problem = error
            finally:
                if response is not None:
                    response.close()
            response, self._refused = None, None
            failures += 1
            if not self._reconnect or (self._max_reconnects is not None and failures > self._max_reconnects):
                raise ConnectionFailed(f"the stream broke off: {problem!r}") from problem
            wait = retry_after(problem.response) if isinstance(problem, ApiError) else None
            self._client._sleep(wait if wait is not None else self._retry_seconds * min(2 ** (failures - 1), 30))
            self.reconnects += 1

    def _parse(self, lines: Iterable[str]) -> Iterator[StreamEvent]:
        """Server-Sent Events (the WHATWG rules): fields until a blank line, comments (heartbeats) skipped."""
        event_type, event_id = "", None
        data: list[str] = []
        for line in lines:
            if line == "":
                if event_id is not None:
                    self.last_event_id = event_id
                if data:
                    yield StreamEvent(id=event_id, event=event_type or "message", data=_decoded("\n".join(data)))
                event_type, data, event_id = "", [], None
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event_type = value
            elif name == "id" and "\0" not in value:
                event_id = value
            elif name == "retry" and value.isdigit():
                self._retry_seconds = int(value) / 1000


def _decoded(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise StreamError(f"an event's data is not JSON: {text[:200]!r}") from error
    if not isinstance(data, dict):
        raise StreamError(f"an event's data is not a JSON object: {text[:200]!r}")
    return data
