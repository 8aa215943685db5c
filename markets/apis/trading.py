"""Quotes (read-only, from the price cache) and trades (execute, list) of one market."""

import functools
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.key_requests import KeyCountedApiView
from accounts.models import Scope, User
from accounts.money import CREDIT_PLACES
from accounts.permissions import HasKeyScope
from config.core.api import (
    CONDITIONAL_PARAMETERS,
    NOT_MODIFIED,
    PAGINATION_PARAMETERS_HELP,
    AnonReadThrottle,
    CachedBody,
    TradeThrottle,
    UserReadThrottle,
    body_for,
    bytes_etag,
    paginated_response,
    paginated_schema,
    rendered_response,
)
from config.core.cached_reads import CachedReadApiView
from config.core.encodings import gzipped
from config.core.numbers import AsciiDecimalApiField
from markets import cache as price_cache
from markets.apis.as_of import AS_OF_PARAMETER, as_of_parsed
from markets.apis.common import (
    IDEMPOTENCY_KEY_PARAMETER,
    SLUG_PARAMETER,
    TradeOutputSerializer,
    by_code,
    idempotent_create_responses,
    money_field,
    probabilities_field,
    public_market_or_404,
    snapshot_or_404,
)
from markets.apis.markets import market_as_of_entry
from markets.errors import InvalidInput, MarketClosed, MarketHalted
from markets.models import Market, Trade
from markets.pricing import price_trade
from markets.selectors.prices import state_outcomes
from markets.selectors.trades import market_trades
from markets.services import TradeResult, trade_execute
from markets.snapshot import MakerState
from markets.trade_request import MAX_PROBABILITY, MIN_PROBABILITY, TradeRequest


def _amount_field(help_text: str) -> serializers.DecimalField:
    return AsciiDecimalApiField(
        max_digits=16, decimal_places=CREDIT_PLACES, required=False, allow_null=True, help_text=help_text
    )


FORECAST_HELP = (
    "Makes `probability` your forecast for `outcome`: the trade moves the price there, whichever way that is. "
    "Above the current price it buys the outcome; below it, on a two-outcome market it buys the other outcome "
    "up to 1 - probability (you need not hold shares to disagree), on a larger market it sells the outcome. "
    "Omit `side`; the response names the outcome and side traded. Needs `probability`."
)


class TradeRequestSerializer(serializers.Serializer):
    """What to trade: an outcome, a side or a forecast, and exactly one of shares, amount or probability.

    It builds the one TradeRequest (markets.trade_request) that quote and execute take; a request that
    TradeRequest refuses is a validation error naming the field, like any other."""

    outcome = serializers.CharField(max_length=32, help_text="The outcome's code, e.g. YES.")
    side = serializers.ChoiceField(choices=Trade.Side.choices, required=False, help_text="Required unless forecast.")
    forecast = serializers.BooleanField(required=False, default=False, help_text=FORECAST_HELP)
    shares = _amount_field("Shares to buy or sell.")
    amount = _amount_field("Credits to spend (buy) or to receive (sell).")
    # A number in the schema, as it always was; strings are accepted too. Any precision: pricing works in floats.
    probability = AsciiDecimalApiField(
        max_digits=None,
        decimal_places=None,
        coerce_to_string=False,
        required=False,
        allow_null=True,
        min_value=MIN_PROBABILITY,
        max_value=MAX_PROBABILITY,
        help_text="Trade until the outcome's probability reaches this (up when buying, down when selling).",
    )

    @property
    def fields(self) -> Any:  # DRF's is a cached_property, built per instance
        """The fields, built and bound once per serializer class and shared by its instances: DRF deep-copies the
        declared fields for every instance, which was two thirds of parsing a trade. Parsing only reads them; each
        instance keeps its own data, errors and context (`validate` reads its own)."""
        return _bound_fields(type(self))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        forecast = attrs.get("forecast", False)
        if forecast and attrs.get("side"):
            raise serializers.ValidationError({"side": ["Give side or forecast, not both."]}, code="invalid")
        if not forecast and not attrs.get("side"):
            raise serializers.ValidationError({"side": ["This field is required."]}, code="required")
        try:
            request = TradeRequest(
                outcome=attrs["outcome"],
                side=None if forecast else attrs["side"],
                shares=attrs.get("shares"),
                amount=attrs.get("amount"),
                probability=attrs.get("probability"),
                max_cost=attrs.get("max_cost"),
                min_proceeds=attrs.get("min_proceeds"),
                idempotency_key=self.context.get("idempotency_key"),
            )
        except InvalidInput as error:
            raise serializers.ValidationError(
                {error.field or api_settings.NON_FIELD_ERRORS_KEY: [error.message]}, code="invalid"
            ) from None
        return {"request": request}


@functools.cache
def _bound_fields(serializer_class: type[TradeRequestSerializer]) -> Any:
    """The fields of a TradeRequestSerializer class as DRF builds them, bound to an instance kept for that alone."""
    return serializers.Serializer.fields.func(serializer_class())  # type: ignore[attr-defined]


# Parsed quote requests and rendered quotes, remembered per process: a quote repeated on the same maker state is
# the same bytes. Both are bounded (emptied when full); a query string longer than this is never remembered.
QUOTE_MEMO_SIZE = 1024
QUOTE_MEMO_QUERY = 512
_quote_bodies: dict[tuple[str, str, TradeRequest], tuple[bytes, str, bytes | None]] = {}


@functools.lru_cache(maxsize=QUOTE_MEMO_SIZE)
def _quote_request(query_string: str) -> TradeRequest:
    """The TradeRequest a quote's query string asks for, parsed once per process and string; a string that does
    not parse raises its ValidationError every time (only valid ones are remembered)."""
    return _quote_request_parsed(QueryDict(query_string))


@functools.lru_cache(maxsize=QUOTE_MEMO_SIZE)
def _asks_as_of(query_string: str) -> bool:
    """Whether a quote's query string gives `as_of`, worked out once per process and string: building the request's
    QueryDict (request.GET) for it was a read's largest cost that a market's detail does not have."""
    return "as_of" in QueryDict(query_string)


def _quote_request_parsed(query: QueryDict) -> TradeRequest:
    parsed = MarketQuoteApi.InputSerializer(data=query)
    parsed.is_valid(raise_exception=True)
    request: TradeRequest = parsed.validated_data["request"]
    return request


class MarketQuoteApi(CachedReadApiView):
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
        parameters=[SLUG_PARAMETER, InputSerializer, AS_OF_PARAMETER, *CONDITIONAL_PARAMETERS],
        responses={
            200: OutputSerializer,
            304: NOT_MODIFIED,
            409: OpenApiResponse(description="Trading on the market is halted (with as_of: was halted then)."),
            422: OpenApiResponse(description="The market is closed (with as_of: was closed then)."),
        },
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        query_string = request.META.get("QUERY_STRING", "")
        if len(query_string) <= QUOTE_MEMO_QUERY:
            trade_request = _quote_request(query_string)
        else:
            trade_request = _quote_request_parsed(request.query_params)
        moment = as_of_parsed(request.query_params)
        if moment is not None:
            # The market as it stood then (cached like the detail's); priced from its probabilities and b then.
            entry = market_as_of_entry(self, request, slug=slug, moment=moment)
            market, state, updated_at, now = entry["market"], entry["maker"], entry["updated_at"], moment
        else:
            # The snapshot in one Redis round trip with the throttle's count; a miss goes to the database.
            values = self.cache_read(request, [price_cache.snapshot_key(slug)])
            hit = self.cached_read_hit(request, values, slug=slug, trade_request=trade_request)
            if hit is not None:
                return hit.response(request)
            snapshot = snapshot_or_404(slug)
            market, state, updated_at, now = snapshot["market"], snapshot["state"], snapshot["updated_at"], None
        body, etag, encoding = body_for(request, *self._quote(slug, market, state, trade_request, moment=now))
        return rendered_response(request, body, etag=etag, last_modified=updated_at, encoding=encoding)

    @classmethod
    def cached_read_keys(cls, request: HttpRequest, **kwargs: Any) -> list[str] | None:
        # A query that is too long to remember, that does not parse, or that asks as_of a moment: the view's own.
        query_string = request.META.get("QUERY_STRING", "")
        if len(query_string) > QUOTE_MEMO_QUERY or _asks_as_of(query_string):
            return None
        try:
            _quote_request(query_string)
        except ValidationError:
            return None
        return [price_cache.snapshot_key(kwargs["slug"])]

    @classmethod
    def cached_read_hit(cls, request: HttpRequest, values: list[Any], **kwargs: Any) -> CachedBody | None:
        (snapshot,) = values
        if snapshot is None:
            return None
        trade_request = kwargs.get("trade_request") or _quote_request(request.META.get("QUERY_STRING", ""))
        body, etag, encoding = body_for(
            request, *cls._quote(kwargs["slug"], snapshot["market"], snapshot["state"], trade_request, moment=None)
        )
        return CachedBody(body=body, etag=etag, last_modified=snapshot["updated_at"], encoding=encoding)

    @classmethod
    def _quote(
        cls,
        slug: str,
        market: Any,
        state: MakerState,
        trade_request: TradeRequest,
        *,
        moment: datetime | None,
    ) -> tuple[bytes, str, bytes | None]:
        """The quote's body, ETag and gzip bytes (None where compressing does not pay); raises MarketHalted or
        MarketClosed when the market is not (was not, at `moment`) open for trading."""
        when = "was" if moment is not None else "is"
        if market["halted"] and market["status"] == Market.Status.OPEN:
            raise MarketHalted(f"Trading on this market {when} halted: {market['halt_reason']}")
        if not Market.trading_open(
            status=market["status"], closes_at=market["closes_at"], now=moment or timezone.now()
        ):
            raise MarketClosed(f"This market {when} closed for trading.")
        # The maker's state is all pricing reads: the same state and request give the same bytes.
        memo_key = (slug, repr(state), trade_request)
        remembered = _quote_bodies.get(memo_key)
        if remembered is None:
            remembered = cls._render(slug, state, trade_request)
            if len(_quote_bodies) >= QUOTE_MEMO_SIZE:
                _quote_bodies.clear()
            _quote_bodies[memo_key] = remembered
        return remembered

    @classmethod
    def _render(cls, slug: str, state: MakerState, trade_request: TradeRequest) -> tuple[bytes, str, bytes | None]:
        # Priced from the cached maker state with the same function market_quote and trade_execute use.
        quote = price_trade(request=trade_request, liquidity=state["liquidity"], outcomes=state_outcomes(state))
        codes = [outcome["code"] for outcome in state["outcomes"]]
        data = cls.OutputSerializer(
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
        # Rendered once: the ETag is the hash of the identity bytes. A quote of a few outcomes is too small to
        # compress (config.core.encodings.GZIP_MIN_BYTES); one of many may not be.
        body = JSONRenderer().render(data)
        return body, bytes_etag(body), gzipped(body)


class PositionSerializer(serializers.Serializer):
    outcome = serializers.CharField()
    shares = money_field()


class MarketTradesApi(KeyCountedApiView):
    """GET: the market's recent trades (public). POST: execute a trade (authenticated): its limit is counted in the
    Redis round trip that reads the market's id from its cached snapshot (CachedReadApiView), and by API key that
    round trip also reads the key's entry (KeyCountedApiView)."""

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

    required_scope = {"GET": Scope.READ, "POST": Scope.TRADE}

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [HasKeyScope(), IsAuthenticated()]
        return list(super().get_permissions())

    def key_read_keys(self, request: Request, **kwargs: Any) -> list[str]:
        return [price_cache.snapshot_key(kwargs["slug"])] if request.method == "POST" else []

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [TradeThrottle()]
        return [AnonReadThrottle(), UserReadThrottle()]

    def check_throttles(self, request: Request) -> None:
        if request.method == "POST":
            super().check_throttles(request)
        else:
            # The list reads the database, not the cache: refused before it does.
            APIView.check_throttles(self, request)

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
            IDEMPOTENCY_KEY_PARAMETER,
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
                "Buy up to a probability",
                value={"outcome": "YES", "side": "buy", "probability": 0.7},
                request_only=True,
            ),
            OpenApiExample(
                "Trade to your forecast, whichever way",
                value={"outcome": "YES", "forecast": True, "probability": 0.3},
                request_only=True,
            ),
        ],
        responses=idempotent_create_responses(OutputSerializer),
    )
    def post(self, request: Request, slug: str) -> Response:
        body = self.InputSerializer(
            data=request.data, context={"idempotency_key": request.headers.get("Idempotency-Key")}
        )
        body.is_valid(raise_exception=True)
        trade_request: TradeRequest = body.validated_data["request"]
        # The market's id from its cached snapshot (a draft has none: 404); the trade reads the market itself.
        (snapshot,) = self.cache_read(request, [price_cache.snapshot_key(slug)])
        market_id = (snapshot or snapshot_or_404(slug))["id"]
        user: User = request.user  # type: ignore[assignment]
        result = trade_execute(user=user, market=market_id, request=trade_request)
        # Built from what the service returns: the trade is not read again.
        if result.replayed:
            return Response(self._data(result), status=status.HTTP_200_OK)
        return Response(executed_trade_data(result), status=status.HTTP_201_CREATED)

    def _data(self, result: TradeResult) -> dict[str, Any]:
        codes = result.outcome_codes
        data: dict[str, Any] = self.OutputSerializer(
            {
                "trade": result.trade,
                "probabilities": by_code(codes, result.probabilities),
                "balance": result.balance,
                "position": {"outcome": result.trade.outcome.code, "shares": result.position_shares},
                "replayed": result.replayed,
            },
            context={"outcome_codes": codes},
        ).data
        return data


@functools.cache
def _trade_output_fields() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The fields of MarketTradesApi.OutputSerializer, of its trade and of its position, bound once and shared:
    building the serializer for each response deep-copied them all (about a tenth of a trade's CPU)."""
    serializer = MarketTradesApi.OutputSerializer()
    nested: Any = serializer.fields
    return dict(nested), dict(nested["trade"].fields), dict(nested["position"].fields)


def executed_trade_data(result: TradeResult) -> dict[str, Any]:
    """MarketTradesApi.OutputSerializer's data for a trade executed now (not a replay), converted by the
    serializer's own fields one by one: the same output without building a serializer (a test compares them)."""
    fields, trade_fields, position_fields = _trade_output_fields()
    trade, codes = result.trade, result.outcome_codes
    return {
        "trade": {
            "id": trade.pk,
            "market": trade.market.slug,
            "outcome": trade.outcome.code,
            "side": trade_fields["side"].to_representation(trade.side),
            "shares": trade_fields["shares"].to_representation(trade.shares),
            "amount": trade_fields["amount"].to_representation(trade.amount),
            "average_price": trade_fields["average_price"].parent.get_average_price(trade),
            "probabilities_before": by_code(codes, trade.probabilities_before),
            "probabilities_after": by_code(codes, trade.probabilities_after),
            "username": trade.user.username,
            "created_at": trade_fields["created_at"].to_representation(trade.created_at),
            # Voiding comes later, after the answer is known: a trade executed now is not voided.
            "voided_at": None,
            # A trade placed is neither a resting order's fill nor an order's part.
            "fill": False,
            "order": None,
        },
        "probabilities": fields["probabilities"].to_representation(by_code(codes, result.probabilities)),
        "balance": fields["balance"].to_representation(result.balance),
        "position": {
            "outcome": trade.outcome.code,
            "shares": position_fields["shares"].to_representation(result.position_shares),
        },
        "replayed": False,
    }
