"""Factories that build through the services, so every object they make obeys the ledger invariants."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from accounts.models import User
from accounts.services import user_create
from markets.models import Market
from markets.services import market_create
from markets.trade_request import TradeRequest


class UserFactory(factory.Factory):
    """A forecaster with the sign-up grant in their wallet."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"forecaster{n}")
    password = "a-long-password"
    is_staff = False

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        return user_create(is_superuser=kwargs["is_staff"], **kwargs)


class MarketFactory(factory.Factory):
    """An open binary market at even odds; pass `kind`, `outcomes` and `initial_probabilities` for others."""

    class Meta:
        model = Market

    slug = factory.Sequence(lambda n: f"market-{n}")
    question = factory.Sequence(lambda n: f"Will event {n} happen?")
    kind = Market.Kind.BINARY
    liquidity = 100
    closes_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))

    @classmethod
    def _create(cls, model_class: type[Market], *args: Any, **kwargs: Any) -> Market:
        return market_create(**kwargs)


def trade_request(outcome: str, side: str | None, **fields: Any) -> TradeRequest:
    """A TradeRequest from what tests like to write: a string or number for each quantity or bound becomes
    the Decimal the edge (serializer or form) would have parsed; a key, or None, passes through."""
    numbers = ("shares", "amount", "probability", "max_cost", "min_proceeds")
    parsed: dict[str, Any] = {
        name: (None if value in (None, "") else Decimal(str(value))) if name in numbers else value
        for name, value in fields.items()
    }
    return TradeRequest(outcome=outcome, side=side, **parsed)
