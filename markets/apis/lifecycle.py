"""Staff controls on a live market (POST .../close/, .../extend/, .../halt/, .../resume/, .../liquidity/,
.../outcomes/, PATCH on the market) and the public audit trail they leave (GET .../events/, .../revisions/).

Each control calls one service of markets.services.lifecycle, which writes the MarketEvent. Staff only:
anyone else gets 403 (401 without credentials) in the API's error shape."""

from collections.abc import Sequence
from typing import Any, cast

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.permissions import HasKeyScope
from config.core.api import PAGINATION_PARAMETERS_HELP, paginated_response, paginated_schema
from config.core.numbers import AsciiDecimalApiField
from markets.apis.common import money_field, public_market_or_404, staff_market_or_404
from markets.apis.markets import MarketDetailApi
from markets.models import Market, MarketEvent
from markets.selectors.events import market_events, market_revisions
from markets.services import (
    market_close,
    market_halt,
    market_liquidity_add,
    market_outcome_add,
    market_reschedule,
    market_resume,
    market_update,
)

SLUG_PARAMETER = OpenApiParameter("slug", str, OpenApiParameter.PATH)
REASON_HELP = "Why; shown to everyone on the market page and in its events."


class MarketEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=MarketEvent.Kind.choices)
    actor = serializers.CharField(source="actor.username", help_text="The staff member who acted.")
    reason = serializers.CharField(allow_blank=True)
    details = serializers.DictField(
        source="data",
        help_text="What changed, by kind: from/to (close_moved), liquidity_from/liquidity_to/subsidy "
        "(liquidity_added), code/label/probability/subsidy (outcome_added), changes (edited: per field, "
        "before and after), resolution/kind/outcome/label/payouts (code and share per outcome)/"
        "known_at/via/proposal/supersedes (resolved, re_resolved: `via` is `direct` or `proposal`), "
        "resolution/trades/known_at/escrow_paid (trades_voided).",
    )
    created_at = serializers.DateTimeField()


class MarketStateSerializer(serializers.Serializer):
    """The market after a control, and the event the control wrote."""

    slug = serializers.SlugField()
    status = serializers.ChoiceField(choices=Market.Status.choices)
    closes_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    halted = serializers.BooleanField(source="is_halted")
    halt_reason = serializers.CharField(allow_blank=True)
    liquidity = serializers.DecimalField(max_digits=14, decimal_places=4)
    subsidy = money_field(help_text="Credits the house has put into the escrow in all.")
    event = MarketEventSerializer(allow_null=True)


def _user(request: Request) -> User:
    return cast(User, request.user)  # IsAdminUser: authenticated staff


def _state(market: Market, event: MarketEvent | None, *, code: int = status.HTTP_200_OK) -> Response:
    fresh = Market.objects.get(pk=market.pk)
    data = MarketStateSerializer({**_fields(fresh), "event": event}).data
    return Response(data, status=code)


def _fields(market: Market) -> dict[str, Any]:
    return {
        "slug": market.slug,
        "status": market.status,
        "closes_at": market.closes_at,
        "closed_at": market.closed_at,
        "is_halted": market.is_halted,
        "halt_reason": market.halt_reason,
        "liquidity": market.liquidity,
        "subsidy": market.subsidy,
    }


def _latest_event(market: Market, kind: str) -> MarketEvent | None:
    return market_events(market=market, kinds=(kind,)).first()


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text=REASON_HELP)


def _control_schema(operation_id: str, summary: str, request: Any) -> Any:
    """The schema of a StaffControlApi subclass's (inherited) post: extend_schema_view gives the subclass a post of
    its own to carry it."""
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            summary=summary,
            parameters=[SLUG_PARAMETER],
            request=request,
            responses={200: MarketStateSerializer},
        )
    )


class StaffControlApi(APIView):
    """One staff control: POST validates `InputSerializer`, `act` calls the control's service, and the answer is
    the market's state with the event the control wrote. Each control is a subclass with its schema on the
    class (`_control_schema`)."""

    permission_classes = [HasKeyScope, IsAdminUser]
    required_scope = Scope.MARKETS
    InputSerializer: type[serializers.Serializer] = ReasonInputSerializer
    success_status: int = status.HTTP_200_OK

    def act(self, market: Market, user: User, data: dict[str, Any]) -> tuple[Market, MarketEvent | None]:
        raise NotImplementedError

    def post(self, request: Request, slug: str) -> Response:
        market = staff_market_or_404(slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        market, event = self.act(market, _user(request), serializer.validated_data)
        return _state(market, event, code=self.success_status)


class MarketExtendInputSerializer(serializers.Serializer):
    closes_at = serializers.DateTimeField(help_text="The new close time; it must be in the future.")
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, help_text=REASON_HELP)


class MarketResumeInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, help_text=REASON_HELP)


class MarketLiquidityInputSerializer(serializers.Serializer):
    liquidity = AsciiDecimalApiField(
        max_digits=12, decimal_places=4, help_text="The new LMSR b, above the current one."
    )
    reason = serializers.CharField(max_length=2000, help_text=REASON_HELP)


class MarketOutcomeAddInputSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=32, help_text="Uppercase letters, digits, '-' or '_'.")
    label = serializers.CharField(max_length=120)  # type: ignore[assignment]  # the API's name for it
    probability = AsciiDecimalApiField(
        max_digits=7,
        decimal_places=6,
        help_text="Its starting probability (0.001 to 0.5); every other outcome's scales by 1 minus this.",
    )
    reason = serializers.CharField(max_length=2000, help_text=REASON_HELP)


@_control_schema("markets_close", "Close an open market early (staff)", ReasonInputSerializer)
class MarketCloseApi(StaffControlApi):
    """POST /api/v1/markets/{slug}/close/: close an open market early (no more trades)."""

    def act(self, market: Market, user: User, data: dict[str, Any]) -> tuple[Market, MarketEvent | None]:
        market = market_close(market=market, user=user, reason=data["reason"])
        return market, _latest_event(market, MarketEvent.Kind.CLOSED)


@_control_schema("markets_extend", "Move a market's close time (staff)", MarketExtendInputSerializer)
class MarketExtendApi(StaffControlApi):
    """POST /api/v1/markets/{slug}/extend/: move the close time of a draft or open market (any future time)."""

    InputSerializer = MarketExtendInputSerializer

    def act(self, market: Market, user: User, data: dict[str, Any]) -> tuple[Market, MarketEvent | None]:
        market = market_reschedule(
            market=market, closes_at=data["closes_at"], changed_by=user, reason=data.get("reason", "")
        )
        return market, _latest_event(market, MarketEvent.Kind.CLOSE_MOVED)


@_control_schema("markets_halt", "Halt trading on an open market (staff)", ReasonInputSerializer)
class MarketHaltApi(StaffControlApi):
    """POST /api/v1/markets/{slug}/halt/: halt trading; traders see the reason with every refusal."""

    def act(self, market: Market, user: User, data: dict[str, Any]) -> tuple[Market, MarketEvent | None]:
        market = market_halt(market=market, user=user, reason=data["reason"])
        return market, _latest_event(market, MarketEvent.Kind.HALTED)


@_control_schema("markets_resume", "Resume trading on a halted market (staff)", MarketResumeInputSerializer)
class MarketResumeApi(StaffControlApi):
    """POST /api/v1/markets/{slug}/resume/: resume trading on a halted market."""

    InputSerializer = MarketResumeInputSerializer

    def act(self, market: Market, user: User, data: dict[str, Any]) -> tuple[Market, MarketEvent | None]:
        market = market_resume(market=market, user=user, reason=data.get("reason", ""))
        return market, _latest_event(market, MarketEvent.Kind.RESUMED)


@_control_schema("markets_liquidity_add", "Add liquidity to an open market (staff)", MarketLiquidityInputSerializer)
class MarketLiquidityApi(StaffControlApi):
    """POST /api/v1/markets/{slug}/liquidity/: raise b; prices stay, the house pays the extra subsidy."""

    InputSerializer = MarketLiquidityInputSerializer

    def act(self, market: Market, user: User, data: dict[str, Any]) -> tuple[Market, MarketEvent | None]:
        event = market_liquidity_add(market=market, user=user, liquidity=data["liquidity"], reason=data["reason"])
        return market, event


@_control_schema(
    "markets_outcomes_create", "Add an outcome to a multiple-choice market (staff)", MarketOutcomeAddInputSerializer
)
class MarketOutcomeAddApi(StaffControlApi):
    """POST /api/v1/markets/{slug}/outcomes/: add an outcome to an open multiple-choice market."""

    InputSerializer = MarketOutcomeAddInputSerializer
    success_status = status.HTTP_201_CREATED

    def act(self, market: Market, user: User, data: dict[str, Any]) -> tuple[Market, MarketEvent | None]:
        market_outcome_add(
            market=market,
            user=user,
            code=data["code"],
            label=data["label"],
            probability=data["probability"],
            reason=data["reason"],
        )
        return market, _latest_event(market, MarketEvent.Kind.OUTCOME_ADDED)


class MarketEditInputSerializer(serializers.Serializer):
    question = serializers.CharField(max_length=300, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    resolution_criteria = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    category = serializers.CharField(required=False, allow_blank=True, max_length=50)
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, help_text=REASON_HELP)


class EditOutputSerializer(serializers.Serializer):
    revision = MarketEventSerializer(
        allow_null=True, help_text="The revision this edit wrote; null when nothing changed (or on a draft)."
    )


class MarketResourceApi(MarketDetailApi):
    """/api/v1/markets/{slug}/: the public detail (GET, from MarketDetailApi) and staff text edits (PATCH)."""

    required_scope = {"GET": Scope.READ, "PATCH": Scope.MARKETS}

    def get_permissions(self) -> Sequence[Any]:
        if self.request.method == "PATCH":
            return [HasKeyScope(), IsAdminUser()]
        return super().get_permissions()

    @extend_schema(
        operation_id="markets_partial_update",
        summary="Edit a market's texts, with a public revision (staff)",
        parameters=[SLUG_PARAMETER],
        request=MarketEditInputSerializer,
        responses={200: EditOutputSerializer},
    )
    def patch(self, request: Request, slug: str) -> Response:
        market = staff_market_or_404(slug)
        serializer = MarketEditInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        reason = fields.pop("reason", "")
        before = market_revisions(market=market).values_list("id", flat=True).first()
        market_update(market=market, user=_user(request), reason=reason, **fields)
        revision = market_revisions(market=market).first()
        written = revision if revision is not None and revision.pk != before else None
        return Response(EditOutputSerializer({"revision": written}).data)


class PageInputSerializer(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=200, help_text=PAGINATION_PARAMETERS_HELP)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)


class MarketEventsApi(APIView):
    """GET /api/v1/markets/{slug}/events/: every staff action on the market, newest first (public)."""

    @extend_schema(
        operation_id="markets_events_list",
        summary="The market's audit trail of staff actions",
        parameters=[SLUG_PARAMETER, PageInputSerializer],
        responses={200: paginated_schema("PaginatedMarketEventList", MarketEventSerializer(many=True))},
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        PageInputSerializer(data=request.query_params).is_valid(raise_exception=True)
        market = public_market_or_404(slug)
        page = paginated_response(
            queryset=market_events(market=market),
            serializer_class=MarketEventSerializer,
            request=request,
            view=self,
            ordering=("-created_at", "-id"),
        )
        return Response(page)


class MarketRevisionsApi(APIView):
    """GET /api/v1/markets/{slug}/revisions/: the public revision history of the market's texts."""

    @extend_schema(
        operation_id="markets_revisions_list",
        summary="The revision history of the market's question and criteria",
        parameters=[SLUG_PARAMETER, PageInputSerializer],
        responses={200: paginated_schema("PaginatedMarketRevisionList", MarketEventSerializer(many=True))},
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        PageInputSerializer(data=request.query_params).is_valid(raise_exception=True)
        market = public_market_or_404(slug)
        page = paginated_response(
            queryset=market_revisions(market=market),
            serializer_class=MarketEventSerializer,
            request=request,
            view=self,
            ordering=("-created_at", "-id"),
        )
        return Response(page)
