"""The signed-in user's positions and trades (me/positions/, me/trades/).

They live with markets, not accounts: positions and trades are markets data, and accounts knows
nothing of markets (imports flow forecast -> markets -> accounts)."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.money import position_value
from accounts.permissions import HasKeyScope
from config.core.api import PAGINATION_PARAMETERS_HELP, paginated_response, paginated_schema
from markets.apis.common import TradeOutputSerializer, money_field, probability_field
from markets.models import Market, Position
from markets.selectors.trades import settled_value, user_positions, user_trades


class PageInputSerializer(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=200, help_text=PAGINATION_PARAMETERS_HELP)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)


class MePositionsApi(APIView):
    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = Scope.READ

    class OutputSerializer(serializers.Serializer):
        market = serializers.SlugField(source="market.slug")
        question = serializers.CharField(source="market.question")
        market_status = serializers.ChoiceField(source="market.status", choices=Market.Status.choices)
        outcome = serializers.CharField(source="outcome.code")
        outcome_label = serializers.CharField(source="outcome.label")
        shares = money_field()
        net_cost = money_field(help_text="Credits paid for buys minus credits received from sells.")
        probability = probability_field(source="outcome.probability")
        # method_name: the default get_value would override Field.get_value.
        settled = serializers.SerializerMethodField(
            method_name="settled_of", help_text="True once the market's settlement has paid: value is then the payout."
        )
        value = serializers.SerializerMethodField(
            method_name="value_of",
            help_text="The shares at the current probability (credits); once the market has settled, what the "
            "settlement paid for them (an annulled market: the net cost refunded).",
        )
        profit = serializers.SerializerMethodField(method_name="profit_of", help_text="value - net_cost (credits).")

        def _value(self, position: Position) -> Decimal:
            paid = settled_value(position)
            return paid if paid is not None else position_value(position.shares, position.outcome.probability)

        def settled_of(self, position: Position) -> bool:
            return settled_value(position) is not None

        def value_of(self, position: Position) -> str:
            return f"{self._value(position):.6f}"

        def profit_of(self, position: Position) -> str:
            return f"{self._value(position) - position.net_cost:.6f}"

    @extend_schema(
        operation_id="me_positions",
        summary="Your positions with their value and profit",
        parameters=[PageInputSerializer],
        responses={200: paginated_schema("PaginatedPositionList", OutputSerializer(many=True))},
    )
    def get(self, request: Request) -> Response:
        PageInputSerializer(data=request.query_params).is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        page = paginated_response(
            queryset=user_positions(user=user),
            serializer_class=self.OutputSerializer,
            request=request,
            view=self,
            ordering=("-id",),
        )
        return Response(page)


class MeTradesApi(APIView):
    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = Scope.READ

    class InputSerializer(PageInputSerializer):
        order = serializers.IntegerField(
            required=False,
            min_value=1,
            # An id beyond the database's bigint would not be anyone's order, and the query would fail.
            max_value=2**63 - 1,
            help_text="Only the trades this limit order of yours executed: its fills, and the part that traded when "
            "it was placed.",
        )

    @extend_schema(
        operation_id="me_trades",
        summary="Your trades, newest first",
        parameters=[InputSerializer],
        responses={200: paginated_schema("PaginatedMyTradeList", TradeOutputSerializer(many=True))},
    )
    def get(self, request: Request) -> Response:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        page = paginated_response(
            queryset=user_trades(user=user, order_id=query.validated_data.get("order")),
            serializer_class=TradeOutputSerializer,
            request=request,
            view=self,
            ordering=("-created_at", "-id"),
        )
        return Response(page)
