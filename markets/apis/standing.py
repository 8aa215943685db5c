"""Standing forecasts: state one on a market (markets/{slug}/standing-forecasts/), yours
(me/standing-forecasts/), cancel one (standing-forecasts/{id}/). The rules are docs/orders.md's ("Standing
forecasts"); the services are markets.services.standing."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.money import CREDIT_PLACES
from accounts.permissions import HasKeyScope
from config.core.api import PAGINATION_PARAMETERS_HELP, StandingForecastThrottle, paginated_response, paginated_schema
from config.core.numbers import AsciiDecimalApiField
from markets.apis.common import (
    IDEMPOTENCY_KEY_PARAMETER,
    SLUG_PARAMETER,
    idempotent_create_responses,
    market_filter_id,
    money_field,
    placed_response,
    snapshot_or_404,
)
from markets.apis.orders import OrderOutputSerializer
from markets.models import StandingForecast
from markets.selectors.standing import user_standing_forecasts
from markets.services.standing import StandingRequest, standing_forecast_cancel, standing_forecast_create


class StandingForecastOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    market = serializers.SlugField(source="market.slug")
    outcome = serializers.CharField(source="outcome.code")
    belief = serializers.DecimalField(max_digits=5, decimal_places=4, help_text="Your probability, in (0, 1).")
    band = serializers.DecimalField(
        source="band_points",
        max_digits=6,
        decimal_places=2,
        help_text="Percentage points either side of the belief: buy below belief - band, sell above belief + band.",
    )
    buy_limit = serializers.DecimalField(max_digits=5, decimal_places=4)
    sell_limit = serializers.DecimalField(max_digits=5, decimal_places=4)
    budget = money_field(help_text="Credits the buy side may spend, net of what the sell side brings back.")
    spent = money_field(help_text="Credits its fills paid less what they received (negative once ahead).")
    status = serializers.ChoiceField(choices=StandingForecast.Status.choices)
    end_reason = serializers.CharField(help_text='Why it ended: "cancelled by you", "expired", "market closed", ...')
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Null: until cancelled.")
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    orders = serializers.SerializerMethodField(help_text="Its open orders now (a buy, a sell, or either).")

    @extend_schema_field(OrderOutputSerializer(many=True))
    def get_orders(self, forecast: StandingForecast) -> list[dict[str, Any]]:
        orders = getattr(forecast, "open_orders", None)
        if orders is None:
            orders = list(forecast.orders.filter(status="open").select_related("market", "outcome").order_by("side"))
        return list(OrderOutputSerializer(orders, many=True).data)


class MarketStandingForecastsApi(APIView):
    """POST: state a standing forecast on the market."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = {"POST": Scope.TRADE}
    throttle_classes = [StandingForecastThrottle]

    class InputSerializer(serializers.Serializer):
        outcome = serializers.CharField(max_length=32, help_text="The outcome's code, e.g. YES.")
        belief = AsciiDecimalApiField(
            max_digits=None,
            decimal_places=None,
            help_text="Your probability, strictly between 0 and 1, to 4 decimal places.",
        )
        band = AsciiDecimalApiField(
            max_digits=None,
            decimal_places=None,
            help_text="Percentage points either side of the belief (3 for ±3 points), to 2 decimal places; both "
            "limits must stay inside (0, 1).",
        )
        budget = AsciiDecimalApiField(
            max_digits=16,
            decimal_places=CREDIT_PLACES,
            help_text="Credits the buy side may spend net; reserved at once, so at most your wallet.",
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, help_text="Until this moment (in the future); omit for until cancelled."
        )

    class OutputSerializer(serializers.Serializer):
        standing_forecast = StandingForecastOutputSerializer()
        trade_id = serializers.IntegerField(
            allow_null=True, help_text="The trade its orders made at once (the price was outside the band), if any."
        )
        available = money_field(help_text="Your wallet afterwards.")
        reserved = money_field(help_text="Credits all your open buy orders hold back.")
        replayed = serializers.BooleanField(help_text="True when an earlier request with this Idempotency-Key ran.")

    @extend_schema(
        operation_id="markets_standing_forecasts_create",
        summary="State a standing forecast: keep the market within a band of your belief, with a budget",
        description=(
            "Places a pair of limit orders on the outcome that re-arm after each fill: a buy below belief - band "
            "(spending at most `budget` credits net) and a sell above belief + band (of the shares you hold, "
            "including what the buy bought). If the price is already outside the band, the order on that side "
            "trades at once, up to the band. Its orders fill only on other people's trades, once per trade. Bad "
            "input is a 400 naming the field (`belief`, `band`, `budget`, `expires_at`, `outcome`); a budget above "
            "your wallet is a 422 `insufficient_funds` naming `budget`; nothing changes. Send an `Idempotency-Key` "
            "header to retry safely: the same key and body return the first one (200)."
        ),
        parameters=[
            SLUG_PARAMETER,
            IDEMPOTENCY_KEY_PARAMETER,
        ],
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "I believe 70%: within 3 points, up to 200 credits, until 1 March",
                value={
                    "outcome": "YES",
                    "belief": "0.7",
                    "band": "3",
                    "budget": "200",
                    "expires_at": "2030-03-01T00:00:00Z",
                },
                request_only=True,
            )
        ],
        responses=idempotent_create_responses(OutputSerializer),
    )
    def post(self, request: Request, slug: str) -> Response:
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        market_id = snapshot_or_404(slug)["id"]
        user: User = request.user  # type: ignore[assignment]
        result = standing_forecast_create(
            user=user,
            market=market_id,
            request=StandingRequest(
                outcome=data["outcome"],
                belief=data["belief"],
                band_points=data["band"],
                budget=data["budget"],
                expires_at=data.get("expires_at"),
                idempotency_key=request.headers.get("Idempotency-Key"),
            ),
        )
        return placed_response(
            self.OutputSerializer,
            user=user,
            placed={"standing_forecast": result.forecast},
            trade_id=result.trade_id,
            replayed=result.replayed,
        )


class MeStandingForecastsApi(APIView):
    """Your standing forecasts, newest first."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = Scope.READ

    class QuerySerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=[("active", "active"), ("all", "all")],
            required=False,
            default="all",
            help_text="active: standing now.",
        )
        market = serializers.SlugField(required=False, help_text="Only this market's.")
        cursor = serializers.CharField(required=False, max_length=200, help_text=PAGINATION_PARAMETERS_HELP)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)

    @extend_schema(
        operation_id="me_standing_forecasts",
        summary="Your standing forecasts, with their open orders",
        parameters=[QuerySerializer],
        responses={200: paginated_schema("PaginatedStandingForecastList", StandingForecastOutputSerializer(many=True))},
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        market_id = market_filter_id(query.validated_data.get("market"))
        user: User = request.user  # type: ignore[assignment]
        page = paginated_response(
            queryset=user_standing_forecasts(
                user_id=user.pk, active_only=query.validated_data["status"] == "active", market_id=market_id
            ),
            serializer_class=StandingForecastOutputSerializer,
            request=request,
            view=self,
            ordering=("-created_at", "-id"),
        )
        return Response(page)


class StandingForecastDetailApi(APIView):
    """DELETE: cancel your standing forecast and its orders, releasing what they reserved."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = {"DELETE": Scope.TRADE}

    @extend_schema(
        operation_id="standing_forecasts_cancel",
        summary="Cancel your standing forecast",
        description="Someone else's is a 404; one that already ended is a 409 `standing_not_active`.",
        parameters=[
            OpenApiParameter("forecast_id", int, OpenApiParameter.PATH, description="The standing forecast's id.")
        ],
        request=None,
        responses={200: StandingForecastOutputSerializer},
    )
    def delete(self, request: Request, forecast_id: int) -> Response:
        user: User = request.user  # type: ignore[assignment]
        try:
            forecast = standing_forecast_cancel(user=user, forecast_id=forecast_id)
        except StandingForecast.DoesNotExist:
            raise NotFound(f"No standing forecast {forecast_id} of yours.") from None
        return Response(StandingForecastOutputSerializer(forecast).data)
