"""Staff endpoints: create markets (staff) and resolve them (resolvers: staff with the resolve_market
permission). Everyone else gets 403 (401 without credentials)."""

from collections.abc import Sequence
from typing import Any, cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.permissions import HasKeyScope
from config.core.numbers import AsciiDecimalApiField
from markets.apis.common import IsResolver, money_field, staff_market_or_404
from markets.apis.markets import MarketListApi
from markets.models import Market, Resolution
from markets.services import market_create, market_resolve


class OutcomeInputSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=32)
    label = serializers.CharField(max_length=120)  # type: ignore[assignment]  # the API's name for it


class MarketCreateApi(APIView):
    """POST /api/v1/markets/: a staff member creates (and opens) a market."""

    permission_classes = [HasKeyScope, IsAdminUser]
    required_scope = Scope.MARKETS

    class InputSerializer(serializers.Serializer):
        slug = serializers.CharField(max_length=120)
        question = serializers.CharField(max_length=300)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        resolution_criteria = serializers.CharField(required=False, allow_blank=True, default="")
        category = serializers.CharField(required=False, allow_blank=True, default="", max_length=50)
        kind = serializers.ChoiceField(choices=Market.Kind.choices)
        outcomes = OutcomeInputSerializer(many=True, required=False, allow_empty=False)
        liquidity = AsciiDecimalApiField(max_digits=12, decimal_places=4)
        initial_probabilities = serializers.ListField(
            child=AsciiDecimalApiField(max_digits=7, decimal_places=6),
            required=False,
            allow_empty=False,
            max_length=50,
        )
        closes_at = serializers.DateTimeField()

    class OutputSerializer(serializers.Serializer):
        class OutcomeSerializer(serializers.Serializer):
            code = serializers.CharField()
            label = serializers.CharField()  # type: ignore[assignment]
            index = serializers.IntegerField()
            probability = serializers.FloatField()

        slug = serializers.SlugField()
        question = serializers.CharField()
        description = serializers.CharField()
        resolution_criteria = serializers.CharField()
        category = serializers.CharField()
        kind = serializers.CharField()
        status = serializers.CharField()
        liquidity = serializers.DecimalField(max_digits=14, decimal_places=4)
        subsidy = money_field()
        closes_at = serializers.DateTimeField()
        outcomes = OutcomeSerializer(many=True, source="outcomes.all")

    @extend_schema(
        operation_id="markets_create",
        summary="Create and open a market (staff)",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = MarketCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        outcomes = data.pop("outcomes", None)
        market = market_create(
            **data,
            outcomes=[(o["code"], o["label"]) for o in outcomes] if outcomes else None,
            created_by=cast(User, request.user),  # IsAdminUser: authenticated staff
        )
        return Response(MarketCreateApi.OutputSerializer(market).data, status=status.HTTP_201_CREATED)


class MarketCollectionApi(MarketListApi):
    """/api/v1/markets/: the public list (GET, from MarketListApi) and staff creation (POST) share a path."""

    post = MarketCreateApi.post
    required_scope = {"GET": Scope.READ, "POST": Scope.MARKETS}

    def get_permissions(self) -> Sequence[Any]:
        if self.request.method == "POST":
            return [HasKeyScope(), IsAdminUser()]
        return super().get_permissions()


class ResolutionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    market = serializers.SlugField(source="market.slug")
    kind = serializers.CharField()
    outcome = serializers.CharField(source="outcome.code", allow_null=True, default=None)
    payouts = serializers.ListField(child=serializers.CharField(), allow_null=True)
    reason = serializers.CharField()
    known_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    state = serializers.CharField()
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)
    settlement = serializers.SerializerMethodField(
        help_text="'queued' while a worker has the settlement to do, 'settled' once it has paid out."
    )

    def get_settlement(self, resolution: Resolution) -> str:
        return "settled" if resolution.settled_at else "queued"


class MarketResolutionApi(APIView):
    """POST /api/v1/markets/{slug}/resolution/: resolve, re-resolve or annul; settlement follows
    asynchronously (202), and the market reads `resolving` until it is paid."""

    permission_classes = [HasKeyScope, IsResolver]
    required_scope = Scope.RESOLVE

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Resolution.Kind.choices)
        outcome = serializers.CharField(required=False, max_length=32)
        split = serializers.ListField(
            child=serializers.CharField(max_length=20), required=False, allow_empty=False, max_length=50
        )
        reason = serializers.CharField(max_length=2000)
        known_at = serializers.DateTimeField(
            required=False,
            help_text="When the answer became known, if before the close: later trades are voided.",
        )

    @extend_schema(
        operation_id="markets_resolution_create",
        summary="Resolve, re-resolve or annul a market at once, with no challenge window (resolvers)",
        request=InputSerializer,
        responses={202: ResolutionOutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        market = staff_market_or_404(slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        resolution = market_resolve(
            market=market,
            user=request.user,
            kind=data["kind"],
            reason=data["reason"],
            outcome_code=data.get("outcome"),
            split=data.get("split"),
            known_at=data.get("known_at"),
        )
        return Response(ResolutionOutputSerializer(resolution).data, status=status.HTTP_202_ACCEPTED)
