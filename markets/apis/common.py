"""Pieces the market APIs share: output fields for money and probabilities, and market lookup."""

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.money import CREDIT_PLACES, MAX_DIGITS
from markets.models import Market, Trade
from markets.selectors.markets import Drafts, market_by_slug
from markets.selectors.prices import market_snapshot
from markets.services.resolution import user_is_resolver
from markets.snapshot import MarketSnapshot


def money_field(**kwargs: Any) -> serializers.DecimalField:
    """Credits as a decimal string with six places (accounts.money)."""
    return serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=CREDIT_PLACES, **kwargs)


def probability_field(**kwargs: Any) -> serializers.FloatField:
    return serializers.FloatField(min_value=0.0, max_value=1.0, **kwargs)


def probabilities_field(**kwargs: Any) -> serializers.DictField:
    """Each outcome's probability, keyed by outcome code."""
    return serializers.DictField(child=probability_field(), **kwargs)


def snapshot_or_404(slug: str) -> MarketSnapshot:
    snapshot = market_snapshot(slug=slug)
    if snapshot is None:
        raise NotFound(f"No market {slug!r}.")
    return snapshot


def by_code(codes: list[str], probabilities: list[float]) -> dict[str, float]:
    return dict(zip(codes, probabilities, strict=False))


class TradeOutputSerializer(serializers.Serializer):
    """A trade as the public sees it; outcome codes come from the context's `outcome_codes` when the caller has
    them (the trade service returns them), else from the market's prefetched outcomes."""

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
    voided_at = serializers.DateTimeField(
        allow_null=True,
        help_text="Set when the trade was voided: placed after the answer was known, undone and refunded.",
    )

    def _codes(self, trade: Trade) -> list[str]:
        codes: list[str] | None = self.context.get("outcome_codes")
        return codes if codes is not None else [outcome.code for outcome in trade.market.outcomes.all()]

    def get_average_price(self, trade: Trade) -> str:
        return f"{trade.average_price:.6f}"

    def get_probabilities_before(self, trade: Trade) -> dict[str, float]:
        return by_code(self._codes(trade), trade.probabilities_before)

    def get_probabilities_after(self, trade: Trade) -> dict[str, float]:
        return by_code(self._codes(trade), trade.probabilities_after)


def public_market_or_404(slug: str) -> Market:
    """The market for the API's public endpoints: a draft is not there (404), whoever asks."""
    try:
        return market_by_slug(slug=slug, drafts=Drafts.HIDDEN)
    except Market.DoesNotExist:
        raise NotFound(f"No market {slug!r}.") from None


def staff_market_or_404(slug: str) -> Market:
    """The market for staff endpoints, which work on drafts too."""
    try:
        return market_by_slug(slug=slug, drafts=Drafts.SHOWN)
    except Market.DoesNotExist:
        raise NotFound(f"No market {slug!r}.") from None


class IsResolver(BasePermission):
    """Staff holding the resolve_market permission (markets.services.resolution.user_is_resolver)."""

    message = "Only resolvers (staff with the resolve_market permission) may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return user_is_resolver(request.user)
