"""Pieces the market APIs share: output fields for money and probabilities, market lookup, the path and header
parameters of the trading endpoints, and the answer to placing an order or a standing forecast."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.money import CREDIT_PLACES, MAX_DIGITS
from accounts.selectors import user_balance, user_reserved
from markets.models import Market, Trade
from markets.selectors.markets import Drafts, market_by_slug
from markets.selectors.prices import market_snapshot
from markets.services.resolution import user_is_resolver
from markets.snapshot import MarketSnapshot

SLUG_PARAMETER = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="The market's slug.")
IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string of 1 to 255 characters, e.g. a UUID.",
)


def idempotent_create_responses(serializer_class: type[serializers.Serializer]) -> dict[int, Any]:
    """The schema's responses of a POST that takes an Idempotency-Key: 201 created, 200 a replay."""
    return {
        201: serializer_class,
        200: OpenApiResponse(serializer_class, description="A replay of an earlier request with the same key."),
    }


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
    fill = serializers.BooleanField(
        help_text="True when a resting limit order of `username` filled, triggered by someone else's trade; false for "
        "a trade its trader placed (an order's part that traded at once included)."
    )
    order = serializers.IntegerField(
        source="order_id",
        allow_null=True,
        help_text="The limit order this trade executed: a fill, or the part that traded when it was placed. "
        "Null for a plain trade.",
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


def placed_response(
    serializer_class: type[serializers.Serializer],
    *,
    user: User,
    placed: dict[str, Any],
    trade_id: int | None,
    replayed: bool,
) -> Response:
    """The answer to placing an order or stating a standing forecast: what was placed, the trade it made at once,
    the wallet and the reserve after it; 201, or 200 for a replay of the same Idempotency-Key."""
    output = serializer_class(
        {
            **placed,
            "trade_id": trade_id,
            "available": user_balance(user=user),
            "reserved": user_reserved(user=user),
            "replayed": replayed,
        }
    ).data
    return Response(output, status=status.HTTP_200_OK if replayed else status.HTTP_201_CREATED)


def public_market_or_404(slug: str) -> Market:
    """The market for the API's public endpoints: a draft is not there (404), whoever asks."""
    try:
        return market_by_slug(slug=slug, drafts=Drafts.HIDDEN)
    except Market.DoesNotExist:
        raise NotFound(f"No market {slug!r}.") from None


def market_filter_id(slug: str | None) -> int | None:
    """The id of the public market a list of yours is narrowed to (`?market=`; None: all); a draft is a 404."""
    return public_market_or_404(slug).pk if slug else None


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
