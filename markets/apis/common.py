"""Pieces the market APIs share: output fields for money and probabilities, and market lookup."""

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import NotFound

from markets.models import Market, Trade
from markets.selectors.prices import market_snapshot


def money_field(**kwargs: Any) -> serializers.DecimalField:
    """Credits as a decimal string with six places (accounts.money)."""
    return serializers.DecimalField(max_digits=20, decimal_places=6, **kwargs)


def probability_field(**kwargs: Any) -> serializers.FloatField:
    return serializers.FloatField(min_value=0.0, max_value=1.0, **kwargs)


def probabilities_field(**kwargs: Any) -> serializers.DictField:
    """Each outcome's probability, keyed by outcome code."""
    return serializers.DictField(child=probability_field(), **kwargs)


def snapshot_or_404(slug: str) -> dict[str, Any]:
    snapshot = market_snapshot(slug=slug)
    if snapshot is None:
        raise NotFound(f"No market {slug!r}.")
    return snapshot


def by_code(codes: list[str], probabilities: list[float]) -> dict[str, float]:
    return dict(zip(codes, probabilities, strict=False))


class TradeOutputSerializer(serializers.Serializer):
    """A trade as the public sees it; outcome codes come from the market's prefetched outcomes."""

    id = serializers.IntegerField()
    market = serializers.SlugField(source="market.slug")
    outcome = serializers.CharField(source="outcome.code")
    side = serializers.ChoiceField(choices=Trade.Side.choices)
    shares = money_field()
    amount = money_field(help_text="Credits paid (buy) or received (sell).")
    average_price = serializers.SerializerMethodField()
    probabilities_before = serializers.SerializerMethodField()
    probabilities_after = serializers.SerializerMethodField()
    username = serializers.CharField(source="user.username")
    created_at = serializers.DateTimeField()

    def _codes(self, trade: Trade) -> list[str]:
        return [outcome.code for outcome in trade.market.outcomes.all()]

    def get_average_price(self, trade: Trade) -> str:
        return f"{trade.amount / trade.shares:.6f}"

    def get_probabilities_before(self, trade: Trade) -> dict[str, float]:
        return by_code(self._codes(trade), trade.probabilities_before)

    def get_probabilities_after(self, trade: Trade) -> dict[str, float]:
        return by_code(self._codes(trade), trade.probabilities_after)


def public_market_or_404(slug: str) -> Market:
    market = Market.objects.exclude(status=Market.Status.DRAFT).filter(slug=slug).first()
    if market is None:
        raise NotFound(f"No market {slug!r}.")
    return market
