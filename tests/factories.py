"""Test-side builders that are not fixtures: a TradeRequest from what tests like to write.

Users and markets come from the make_user and make_market fixtures of tests/conftest.py."""

from decimal import Decimal
from typing import Any

from markets.trade_request import TradeRequest


def trade_request(outcome: str, side: str | None, **fields: Any) -> TradeRequest:
    """A TradeRequest from what tests like to write: a string or number for each quantity or bound becomes
    the Decimal the edge (serializer or form) would have parsed; a key, or None, passes through."""
    numbers = ("shares", "amount", "probability", "max_cost", "min_proceeds")
    parsed: dict[str, Any] = {
        name: (None if value in (None, "") else Decimal(str(value))) if name in numbers else value
        for name, value in fields.items()
    }
    return TradeRequest(outcome=outcome, side=side, **parsed)
