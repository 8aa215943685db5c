"""The trade's input serializer with its fields bound once per class (markets.apis.trading.TradeRequestSerializer):
each parse answers as a serializer with fields of its own would, alone or in threads at once."""

import threading
from typing import Any

from rest_framework import serializers

from markets.apis.trading import MarketQuoteApi, MarketTradesApi

BODIES: list[dict[str, Any]] = [
    {"outcome": "A", "side": "buy", "amount": "10"},
    {"outcome": "B", "side": "sell", "shares": "2.5", "min_proceeds": "1"},
    {"outcome": "C", "forecast": True, "probability": 0.3},
    {"outcome": "A", "side": "buy", "amount": "-1"},
    {"outcome": "A", "side": "hold", "shares": "1"},
    {"outcome": "A", "forecast": True, "side": "buy", "probability": 0.3},
    {"outcome": "A", "side": "buy", "shares": "1", "amount": "1"},
    {"side": "buy", "shares": "abc", "max_cost": "1e400"},
]


class OwnFields(MarketTradesApi.InputSerializer):
    """The same serializer with DRF's own fields: built for each instance."""

    fields = serializers.Serializer.fields


def parsed(serializer_class: type[serializers.Serializer], body: dict[str, Any], key: str | None) -> Any:
    parser = serializer_class(data=body, context={"idempotency_key": key})
    if parser.is_valid():
        return ("valid", parser.validated_data["request"])
    return ("invalid", {name: [str(error) for error in errors] for name, errors in parser.errors.items()})


def test_instances_share_their_bound_fields_and_answer_as_their_own_would():
    first, second = MarketTradesApi.InputSerializer(), MarketTradesApi.InputSerializer()
    assert first.fields is second.fields
    assert MarketQuoteApi.InputSerializer().fields is not first.fields  # one set per class
    assert OwnFields().fields is not OwnFields().fields
    for index, body in enumerate(BODIES):
        key = f"key-{index}" if index % 2 else None
        assert parsed(MarketTradesApi.InputSerializer, body, key) == parsed(OwnFields, body, key), body


def test_parses_in_threads_at_once_do_not_mix():
    expected = [parsed(OwnFields, body, f"key-{index}") for index, body in enumerate(BODIES)]
    barrier = threading.Barrier(8)
    mismatches: list[Any] = []

    def parse_all(offset: int) -> None:
        barrier.wait(timeout=30)
        for round_ in range(50):
            index = (offset + round_) % len(BODIES)
            got = parsed(MarketTradesApi.InputSerializer, BODIES[index], f"key-{index}")
            if got != expected[index]:
                mismatches.append((index, got))

    threads = [threading.Thread(target=parse_all, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert mismatches == []
