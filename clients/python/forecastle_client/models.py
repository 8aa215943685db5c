"""What the API answers, as frozen dataclasses: money as Decimal (the API sends it as strings), times as aware
datetimes, probabilities as floats keyed by outcome code. Each keeps the JSON it came from as `raw`, so a field
the server adds before this client knows it is still at hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _required_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _money(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    code: str
    label: str
    probability: float
    # Shares of this outcome held by traders (the market maker's q).
    shares_outstanding: Decimal

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            code=data["code"],
            label=data["label"],
            probability=float(data["probability"]),
            shares_outstanding=Decimal(data["shares_outstanding"]),
        )


@dataclass(frozen=True, kw_only=True)
class Market:
    """A market as the list shows it (and, with `as_of`, as it stood then)."""

    slug: str
    question: str
    category: str
    kind: str
    status: str
    volume: Decimal
    opens_at: datetime | None
    closes_at: datetime
    created_at: datetime
    updated_at: datetime
    halted: bool
    halt_reason: str
    outcomes: tuple[Outcome, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def probabilities(self) -> dict[str, float]:
        return {outcome.code: outcome.probability for outcome in self.outcomes}

    @property
    def tradeable(self) -> bool:
        return self.status == "open" and not self.halted

    @classmethod
    def _fields(cls, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "slug": data["slug"],
            "question": data["question"],
            "category": data["category"],
            "kind": data["kind"],
            "status": data["status"],
            "volume": Decimal(data["volume"]),
            "opens_at": _time(data.get("opens_at")),
            "closes_at": _required_time(data["closes_at"]),
            "created_at": _required_time(data["created_at"]),
            "updated_at": _required_time(data["updated_at"]),
            "halted": bool(data["halted"]),
            "halt_reason": data["halt_reason"],
            "outcomes": tuple(Outcome.from_json(outcome) for outcome in data["outcomes"]),
            "raw": data,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Market:
        return cls(**cls._fields(data))


@dataclass(frozen=True, kw_only=True)
class MarketDetail(Market):
    """One market, with its texts, liquidity, resolution and live proposal (plain dicts, as the API sends them)."""

    description: str
    resolution_criteria: str
    liquidity: Decimal
    trader_count: int
    closed_at: datetime | None
    resolved_at: datetime | None
    resolution: dict[str, Any] | None
    proposal: dict[str, Any] | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MarketDetail:
        return cls(
            **cls._fields(data),
            description=data["description"],
            resolution_criteria=data["resolution_criteria"],
            liquidity=Decimal(data["liquidity"]),
            trader_count=int(data["trader_count"]),
            closed_at=_time(data.get("closed_at")),
            resolved_at=_time(data.get("resolved_at")),
            resolution=data.get("resolution"),
            proposal=data.get("proposal"),
        )


def _priced(data: dict[str, Any]) -> dict[str, Any]:
    """The fields a quote and a trade share: what is (or would be) traded, at what price, moving the market how."""
    return {
        "market": data["market"],
        "outcome": data["outcome"],
        "side": data["side"],
        "shares": Decimal(data["shares"]),
        "amount": Decimal(data["amount"]),
        "average_price": Decimal(data["average_price"]),
        "probabilities_before": dict(data["probabilities_before"]),
        "probabilities_after": dict(data["probabilities_after"]),
    }


@dataclass(frozen=True, kw_only=True)
class Quote:
    """What a trade would cost or pay (nothing is traded)."""

    market: str
    outcome: str
    side: str
    shares: Decimal
    amount: Decimal
    average_price: Decimal
    probabilities_before: dict[str, float]
    probabilities_after: dict[str, float]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Quote:
        return cls(**_priced(data), raw=data)


@dataclass(frozen=True, kw_only=True)
class Trade:
    """A trade as the public sees it (the trade list, a trade's result, the stream's `trade` event)."""

    id: int
    market: str
    outcome: str
    side: str
    shares: Decimal
    amount: Decimal
    average_price: Decimal
    probabilities_before: dict[str, float]
    probabilities_after: dict[str, float]
    username: str
    created_at: datetime
    voided_at: datetime | None
    # A resting limit order of `username` filled by someone else's trade (not a trade they placed).
    fill: bool = False
    # The limit order the trade executed (a fill, or the part that traded when it was placed); None for a plain
    # trade, and in the stream's events, which do not carry it.
    order: int | None = None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trade:
        order = data.get("order")
        return cls(
            id=int(data["id"]),
            **_priced(data),
            username=data["username"],
            created_at=_required_time(data["created_at"]),
            voided_at=_time(data.get("voided_at")),
            fill=bool(data.get("fill", False)),
            order=None if order is None else int(order),
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class Position:
    outcome: str
    shares: Decimal


@dataclass(frozen=True, kw_only=True)
class TradeResult:
    trade: Trade
    # The market's probabilities after the trade.
    probabilities: dict[str, float]
    # Your balance after the trade.
    balance: Decimal
    position: Position
    # True when the server had already run a request with this idempotency key (a retry): nothing new traded.
    replayed: bool
    # The Idempotency-Key the request carried (made by the client unless you gave one).
    idempotency_key: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], *, idempotency_key: str) -> TradeResult:
        return cls(
            trade=Trade.from_json(data["trade"]),
            probabilities=dict(data["probabilities"]),
            balance=Decimal(data["balance"]),
            position=Position(outcome=data["position"]["outcome"], shares=Decimal(data["position"]["shares"])),
            replayed=bool(data["replayed"]),
            idempotency_key=idempotency_key,
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class Account:
    username: str
    # Credits in your wallet.
    balance: Decimal
    date_joined: datetime
    # With limit orders: what you can spend now, and what your open buy orders hold back (None from a server
    # without them).
    available: Decimal | None = None
    reserved: Decimal | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Account:
        return cls(
            username=data["username"],
            balance=Decimal(data["balance"]),
            date_joined=_required_time(data["date_joined"]),
            available=_money(data.get("available")),
            reserved=_money(data.get("reserved")),
        )


@dataclass(frozen=True, kw_only=True)
class HeldPosition:
    """One of your positions, valued at the current probability (or at what settlement paid)."""

    market: str
    question: str
    market_status: str
    outcome: str
    outcome_label: str
    shares: Decimal
    net_cost: Decimal
    probability: float
    settled: bool
    value: Decimal
    profit: Decimal
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HeldPosition:
        return cls(
            market=data["market"],
            question=data["question"],
            market_status=data["market_status"],
            outcome=data["outcome"],
            outcome_label=data["outcome_label"],
            shares=Decimal(data["shares"]),
            net_cost=Decimal(data["net_cost"]),
            probability=float(data["probability"]),
            settled=bool(data["settled"]),
            value=Decimal(data["value"]),
            profit=Decimal(data["profit"]),
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class Order:
    """A limit order: buy while the price is below `limit`, or sell while it is above."""

    id: int
    market: str
    outcome: str
    side: str
    limit: Decimal
    # Credits to spend (buy) or shares to sell (sell), as placed, and what is left of it.
    size: Decimal
    remaining: Decimal
    reserved_credits: Decimal
    reserved_shares: Decimal
    filled_shares: Decimal
    filled_amount: Decimal
    # open, filled, cancelled or expired.
    status: str
    end_reason: str
    expires_at: datetime | None
    created_at: datetime
    ended_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Order:
        return cls(
            id=int(data["id"]),
            market=data["market"],
            outcome=data["outcome"],
            side=data["side"],
            limit=Decimal(data["limit"]),
            size=Decimal(data["size"]),
            remaining=Decimal(data["remaining"]),
            reserved_credits=Decimal(data["reserved_credits"]),
            reserved_shares=Decimal(data["reserved_shares"]),
            filled_shares=Decimal(data["filled_shares"]),
            filled_amount=Decimal(data["filled_amount"]),
            status=data["status"],
            end_reason=data["end_reason"],
            expires_at=_time(data.get("expires_at")),
            created_at=_required_time(data["created_at"]),
            ended_at=_time(data.get("ended_at")),
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class OrderPlacement:
    """A placed order: what it traded at once (`trade_id`) and what rests, with your wallet after it."""

    order: Order
    trade_id: int | None
    available: Decimal
    reserved: Decimal
    # True when the server had already placed an order with this idempotency key (a retry).
    replayed: bool
    idempotency_key: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], *, idempotency_key: str) -> OrderPlacement:
        trade_id = data.get("trade_id")
        return cls(
            order=Order.from_json(data["order"]),
            trade_id=int(trade_id) if trade_id is not None else None,
            available=Decimal(data["available"]),
            reserved=Decimal(data["reserved"]),
            replayed=bool(data["replayed"]),
            idempotency_key=idempotency_key,
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class BookLevel:
    """What rests at one limit of the order book (anonymous): `size` in `unit` (credits or shares)."""

    outcome: str
    outcome_label: str
    side: str
    limit: Decimal
    size: Decimal
    unit: str
    orders: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BookLevel:
        return cls(
            outcome=data["outcome"],
            outcome_label=data["outcome_label"],
            side=data["side"],
            limit=Decimal(data["limit"]),
            size=Decimal(data["size"]),
            unit=data["unit"],
            orders=int(data["orders"]),
        )


@dataclass(frozen=True, kw_only=True)
class PricePoint:
    time: datetime
    probability: float


@dataclass(frozen=True, kw_only=True)
class Candle:
    time: datetime
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, kw_only=True)
class Series:
    code: str
    label: str
    points: tuple[PricePoint, ...]
    candles: tuple[Candle, ...]


@dataclass(frozen=True, kw_only=True)
class History:
    market: str
    interval: str
    start: datetime
    end: datetime | None
    series: tuple[Series, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    def outcome(self, code: str) -> Series:
        return next(series for series in self.series if series.code == code)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        return cls(
            market=data["market"],
            interval=data["interval"],
            start=_required_time(data["start"]),
            end=_time(data.get("end")),
            series=tuple(
                Series(
                    code=series["code"],
                    label=series["label"],
                    points=tuple(
                        PricePoint(time=_required_time(point["time"]), probability=float(point["probability"]))
                        for point in series["points"]
                    ),
                    candles=tuple(
                        Candle(
                            time=_required_time(candle["time"]),
                            open=float(candle["open"]),
                            high=float(candle["high"]),
                            low=float(candle["low"]),
                            close=float(candle["close"]),
                        )
                        for candle in series["candles"]
                    ),
                )
                for series in data["series"]
            ),
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class StreamEvent:
    """One event of the live stream: `trade`, `price`, `status`, or `reset` (events missed while away are no
    longer kept: read the markets again). `id` is None only for `reset`."""

    id: str | None
    event: str
    data: dict[str, Any]

    @property
    def market(self) -> str | None:
        value = self.data.get("market")
        return value if isinstance(value, str) else None

    @property
    def probabilities(self) -> dict[str, float]:
        """A `price` event's (or a `trade` event's after-trade) probabilities by outcome code; {} otherwise."""
        found = self.data.get("probabilities", self.data.get("probabilities_after"))
        return dict(found) if isinstance(found, dict) else {}

    @property
    def volume(self) -> Decimal | None:
        return _money(self.data.get("volume"))
