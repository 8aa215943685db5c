"""Limit orders: a market's order book and placing (markets/{slug}/orders/), your orders (me/orders/), cancelling
one (orders/{id}/). The rules are docs/orders.md's; the services are markets.services.orders."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.money import CREDIT_PLACES
from accounts.permissions import HasKeyScope
from config.core.api import (
    PAGINATION_PARAMETERS_HELP,
    AnonReadThrottle,
    OrderThrottle,
    UserReadThrottle,
    paginated_response,
    paginated_schema,
)
from config.core.numbers import AsciiDecimalApiField
from markets.apis.common import (
    IDEMPOTENCY_KEY_PARAMETER,
    SLUG_PARAMETER,
    idempotent_create_responses,
    market_filter_id,
    money_field,
    placed_response,
    public_market_or_404,
    snapshot_or_404,
)
from markets.models import LimitOrder, Trade
from markets.selectors.orders import order_book, user_orders
from markets.services.orders import OrderRequest, order_cancel, order_place


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    market = serializers.SlugField(source="market.slug")
    outcome = serializers.CharField(source="outcome.code")
    side = serializers.ChoiceField(choices=Trade.Side.choices)
    limit = serializers.DecimalField(
        source="limit_probability",
        max_digits=5,
        decimal_places=4,
        help_text="Buy while the price is below this, or sell while it is above.",
    )
    size = money_field(help_text="Credits to spend (buy) or shares to sell (sell), as placed.")
    remaining = money_field(help_text="What is left of the size.")
    reserved_credits = money_field(help_text="Credits the open order holds in your reserved account.")
    reserved_shares = money_field(help_text="Shares the open order holds back from your position.")
    filled_shares = money_field(help_text="Shares bought or sold by its fills so far.")
    filled_amount = money_field(help_text="Credits paid (buy) or received (sell) by its fills so far.")
    status = serializers.ChoiceField(choices=LimitOrder.Status.choices)
    end_reason = serializers.CharField(help_text='Why it ended: "filled", "cancelled by you", "market closed", ...')
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Null: good till cancelled.")
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)


class MarketOrdersApi(APIView):
    """GET: the market's order book, aggregated and anonymous (public). POST: place a limit order."""

    class InputSerializer(serializers.Serializer):
        outcome = serializers.CharField(max_length=32, help_text="The outcome's code, e.g. YES.")
        side = serializers.ChoiceField(choices=Trade.Side.choices)
        limit = AsciiDecimalApiField(
            max_digits=None,
            decimal_places=None,
            help_text="A probability strictly between 0 and 1, to 4 decimal places: buy while the price is below "
            "it, sell while it is above.",
        )
        size = AsciiDecimalApiField(
            max_digits=16,
            decimal_places=CREDIT_PLACES,
            help_text="Credits to spend (buy: reserved at once) or shares to sell (sell: held back at once).",
        )
        expires_at = serializers.DateTimeField(
            required=False,
            allow_null=True,
            help_text="Good till this moment (in the future); omit for good till cancelled.",
        )

    class OutputSerializer(serializers.Serializer):
        order = OrderOutputSerializer()
        trade_id = serializers.IntegerField(
            allow_null=True, help_text="The trade of the part the price allowed at once, if any."
        )
        available = money_field(help_text="Your wallet after placing the order.")
        reserved = money_field(help_text="Credits all your open buy orders hold back.")
        replayed = serializers.BooleanField(help_text="True when an earlier request with this Idempotency-Key ran.")

    class LevelSerializer(serializers.Serializer):
        outcome = serializers.CharField()
        outcome_label = serializers.CharField()
        side = serializers.ChoiceField(choices=Trade.Side.choices)
        limit = serializers.DecimalField(max_digits=5, decimal_places=4)
        size = money_field(help_text="What rests at this limit, in `unit`.")
        unit = serializers.ChoiceField(choices=[("credits", "credits"), ("shares", "shares")])
        orders = serializers.IntegerField(help_text="How many orders rest at this limit.")

    required_scope = {"GET": Scope.READ, "POST": Scope.TRADE}

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [HasKeyScope(), IsAuthenticated()]
        return list(super().get_permissions())

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [OrderThrottle()]
        return [AnonReadThrottle(), UserReadThrottle()]

    @extend_schema(
        operation_id="markets_orders_book",
        summary="The market's order book: resting size per limit, per outcome and side (anonymous)",
        description="Buys from the highest limit down, then sells from the lowest up, per outcome; no owners.",
        parameters=[SLUG_PARAMETER],
        responses={200: LevelSerializer(many=True)},
    )
    def get(self, request: Request, slug: str) -> Response:
        market = public_market_or_404(slug)
        levels = [
            {
                "outcome": level.outcome,
                "outcome_label": level.outcome_label,
                "side": level.side,
                "limit": level.limit,
                "size": level.size,
                "unit": level.unit,
                "orders": level.orders,
            }
            for level in order_book(market_id=market.pk)
        ]
        return Response(self.LevelSerializer(levels, many=True).data)

    @extend_schema(
        operation_id="markets_orders_create",
        summary="Place a limit order",
        description=(
            "The part the price allows at once trades at once, up to the limit and no further; the rest rests with "
            "its credits (buy) or shares (sell) reserved, and fills when other traders move the price past the "
            "limit. Bad input is a 400 naming the field (`limit`, `size`, `side`, `outcome`, `expires_at`); "
            "reserving more than you have is a 422 (`insufficient_funds`, `insufficient_shares`); nothing changes. "
            "Send an `Idempotency-Key` header to retry safely: the same key and body return the first order (200)."
        ),
        parameters=[
            SLUG_PARAMETER,
            IDEMPOTENCY_KEY_PARAMETER,
        ],
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "Buy Yes while below 60%, up to 50 credits",
                value={"outcome": "YES", "side": "buy", "limit": "0.6", "size": "50"},
                request_only=True,
            ),
            OpenApiExample(
                "Sell 20 Yes shares above 80%, until a date",
                value={
                    "outcome": "YES",
                    "side": "sell",
                    "limit": "0.8",
                    "size": "20",
                    "expires_at": "2030-03-01T00:00:00Z",
                },
                request_only=True,
            ),
        ],
        responses=idempotent_create_responses(OutputSerializer),
    )
    def post(self, request: Request, slug: str) -> Response:
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        market_id = snapshot_or_404(slug)["id"]
        user: User = request.user  # type: ignore[assignment]
        result = order_place(
            user=user,
            market=market_id,
            request=OrderRequest(
                outcome=data["outcome"],
                side=data["side"],
                limit=data["limit"],
                size=data["size"],
                expires_at=data.get("expires_at"),
                idempotency_key=request.headers.get("Idempotency-Key"),
            ),
        )
        return placed_response(
            self.OutputSerializer,
            user=user,
            placed={"order": result.order},
            trade_id=result.trade_id,
            replayed=result.replayed,
        )


class MeOrdersApi(APIView):
    """Your limit orders, newest first."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = Scope.READ

    class QuerySerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=[("open", "open"), ("all", "all")], required=False, default="all", help_text="open: resting only."
        )
        market = serializers.SlugField(required=False, help_text="Only this market's orders.")
        cursor = serializers.CharField(required=False, max_length=200, help_text=PAGINATION_PARAMETERS_HELP)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)

    @extend_schema(
        operation_id="me_orders",
        summary="Your limit orders",
        parameters=[QuerySerializer],
        responses={200: paginated_schema("PaginatedOrderList", OrderOutputSerializer(many=True))},
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        market_id = market_filter_id(query.validated_data.get("market"))
        user: User = request.user  # type: ignore[assignment]
        page = paginated_response(
            queryset=user_orders(
                user_id=user.pk, open_only=query.validated_data["status"] == "open", market_id=market_id
            ),
            serializer_class=OrderOutputSerializer,
            request=request,
            view=self,
            ordering=("-created_at", "-id"),
        )
        return Response(page)


class OrderDetailApi(APIView):
    """DELETE: cancel your open order, releasing what it reserved."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = {"DELETE": Scope.TRADE}

    @extend_schema(
        operation_id="orders_cancel",
        summary="Cancel your open limit order",
        description="Someone else's order is a 404; an order that already ended is a 409 `order_not_open`.",
        parameters=[OpenApiParameter("order_id", int, OpenApiParameter.PATH, description="The order's id.")],
        request=None,
        responses={200: OrderOutputSerializer},
    )
    def delete(self, request: Request, order_id: int) -> Response:
        user: User = request.user  # type: ignore[assignment]
        try:
            order = order_cancel(user=user, order_id=order_id)
        except LimitOrder.DoesNotExist:
            raise NotFound(f"No order {order_id} of yours.") from None
        return Response(OrderOutputSerializer(order).data)
