"""Quotes (read-only, from the price cache) and trades (execute, list) of one market."""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from config.core.api import (
    CONDITIONAL_PARAMETERS,
    NOT_MODIFIED,
    PAGINATION_PARAMETERS_HELP,
    AnonReadThrottle,
    TradeThrottle,
    UserReadThrottle,
    conditional_response,
    paginated_response,
    paginated_schema,
)
from markets.apis.common import (
    TradeOutputSerializer,
    by_code,
    money_field,
    probabilities_field,
    public_market_or_404,
    snapshot_or_404,
)
from markets.errors import MarketClosed
from markets.models import Market, Trade
from markets.pricing import quote_trade
from markets.selectors.prices import snapshot_outcomes
from markets.selectors.trades import market_trades
from markets.services import request_fingerprint, trade_execute

SLUG_PARAMETER = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="The market's slug.")


def _amount_field(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=16, decimal_places=6, required=False, allow_null=True, help_text=help_text
    )


class TradeRequestSerializer(serializers.Serializer):
    """What to trade: an outcome, a side, and exactly one of shares, amount or probability."""

    outcome = serializers.CharField(max_length=32, help_text="The outcome's code, e.g. YES.")
    side = serializers.ChoiceField(choices=Trade.Side.choices)
    shares = _amount_field("Shares to buy or sell.")
    amount = _amount_field("Credits to spend (buy) or to receive (sell).")
    probability = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.0001,
        max_value=0.9999,
        help_text="Trade until the outcome's probability reaches this (up when buying, down when selling).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("shares", "amount", "probability") if attrs.get(name) is not None]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"shares": ["Give exactly one of shares, amount or probability."]}, code="invalid"
            )
        return attrs


class MarketQuoteApi(APIView):
    class InputSerializer(TradeRequestSerializer):
        pass

    class OutputSerializer(serializers.Serializer):
        market = serializers.SlugField()
        outcome = serializers.CharField()
        side = serializers.ChoiceField(choices=Trade.Side.choices)
        shares = money_field()
        amount = money_field(help_text="Credits the trade would cost (buy) or pay (sell).")
        average_price = money_field(help_text="Credits per share.")
        probabilities_before = probabilities_field()
        probabilities_after = probabilities_field()

    @extend_schema(
        operation_id="markets_quote",
        summary="What a trade would cost or pay now (nothing is traded)",
        parameters=[SLUG_PARAMETER, InputSerializer, *CONDITIONAL_PARAMETERS],
        responses={
            200: OutputSerializer,
            304: NOT_MODIFIED,
            422: OpenApiResponse(description="The market is closed."),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        snapshot = snapshot_or_404(slug)
        market = snapshot["market"]
        if market["status"] != Market.Status.OPEN or market["closes_at"] <= timezone.now():
            raise MarketClosed("This market is closed for trading.")
        # Priced from the cached maker state with the same function trade_quote and trade_execute use.
        quote = quote_trade(
            liquidity=snapshot["state"]["liquidity"],
            outcomes=snapshot_outcomes(snapshot),
            outcome_code=query.validated_data["outcome"],
            side=query.validated_data["side"],
            shares=query.validated_data.get("shares"),
            amount=query.validated_data.get("amount"),
            probability=query.validated_data.get("probability"),
        )
        codes = [outcome["code"] for outcome in market["outcomes"]]
        data = self.OutputSerializer(
            {
                "market": slug,
                "outcome": quote.outcome_code,
                "side": quote.side,
                "shares": quote.shares,
                "amount": quote.amount,
                "average_price": quote.average_price,
                "probabilities_before": by_code(codes, quote.probabilities_before),
                "probabilities_after": by_code(codes, quote.probabilities_after),
            }
        ).data
        return conditional_response(request, data, last_modified=snapshot["updated_at"])


class PositionSerializer(serializers.Serializer):
    outcome = serializers.CharField()
    shares = money_field()


class MarketTradesApi(APIView):
    """GET: the market's recent trades (public). POST: execute a trade (authenticated)."""

    class InputSerializer(TradeRequestSerializer):
        max_cost = _amount_field("Buying: refuse the trade (409) if it would cost more than this.")
        min_proceeds = _amount_field("Selling: refuse the trade (409) if it would pay less than this.")

    class OutputSerializer(serializers.Serializer):
        trade = TradeOutputSerializer()
        probabilities = probabilities_field(help_text="The market's probabilities after the trade.")
        balance = money_field(help_text="Your balance after the trade.")
        position = PositionSerializer(help_text="Your position in the traded outcome after the trade.")
        replayed = serializers.BooleanField(help_text="True when an earlier request with this Idempotency-Key ran.")

    class ListInputSerializer(serializers.Serializer):
        cursor = serializers.CharField(required=False, max_length=200, help_text=PAGINATION_PARAMETERS_HELP)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)

    def get_permissions(self) -> list[Any]:
        return [IsAuthenticated()] if self.request.method == "POST" else list(super().get_permissions())

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [TradeThrottle()]
        return [AnonReadThrottle(), UserReadThrottle()]

    @extend_schema(
        operation_id="markets_trades_list",
        summary="Recent trades in a market, newest first",
        parameters=[SLUG_PARAMETER, ListInputSerializer],
        responses={200: paginated_schema("PaginatedTradeList", TradeOutputSerializer(many=True))},
    )
    def get(self, request: Request, slug: str) -> Response:
        query = self.ListInputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        market = public_market_or_404(slug)
        page = paginated_response(
            queryset=market_trades(market_id=market.pk),
            serializer_class=TradeOutputSerializer,
            request=request,
            view=self,
            ordering=("-created_at", "-id"),
        )
        return Response(page)

    @extend_schema(
        operation_id="markets_trades_create",
        summary="Buy or sell an outcome",
        description=(
            "Send an `Idempotency-Key` header to retry safely: the same key with the same body returns "
            "the first result (200) and trades once; the same key with another body is a 409."
        ),
        parameters=[
            SLUG_PARAMETER,
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="Any unique string of 1 to 255 characters, e.g. a UUID.",
            ),
        ],
        request=InputSerializer,
        # Without these, Swagger UI makes its example up from the field patterns: negative shares, "min_proceeds": "-".
        examples=[
            OpenApiExample(
                "Buy by amount",
                value={"outcome": "YES", "side": "buy", "amount": "10", "max_cost": "10"},
                request_only=True,
            ),
            OpenApiExample(
                "Sell shares",
                value={"outcome": "YES", "side": "sell", "shares": "5", "min_proceeds": "2.5"},
                request_only=True,
            ),
            OpenApiExample(
                "Buy to a forecast", value={"outcome": "YES", "side": "buy", "probability": 0.7}, request_only=True
            ),
        ],
        responses={
            201: OutputSerializer,
            200: OpenApiResponse(OutputSerializer, description="A replay of an earlier request with the same key."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        market = public_market_or_404(slug)
        user: User = request.user  # type: ignore[assignment]
        trade_request = body.validated_data
        result = trade_execute(
            user=user,
            market=market,
            outcome_code=trade_request["outcome"],
            side=trade_request["side"],
            shares=trade_request.get("shares"),
            amount=trade_request.get("amount"),
            probability=trade_request.get("probability"),
            max_cost=trade_request.get("max_cost"),
            min_proceeds=trade_request.get("min_proceeds"),
            idempotency_key=request.headers.get("Idempotency-Key"),
            fingerprint=request_fingerprint({"market": market.pk, **trade_request}),
        )
        trade = market_trades(market_id=market.pk).get(pk=result.trade.pk)
        codes = [outcome.code for outcome in trade.market.outcomes.all()]
        data = self.OutputSerializer(
            {
                "trade": trade,
                "probabilities": by_code(codes, result.probabilities),
                "balance": result.balance,
                "position": {"outcome": trade.outcome.code, "shares": result.position_shares},
                "replayed": result.replayed,
            }
        ).data
        return Response(data, status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED)
