"""Public market reads: the market list and one market, served from the price cache."""

import functools
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from config.core.api import (
    CONDITIONAL_PARAMETERS,
    NOT_MODIFIED,
    PAGINATION_PARAMETERS_HELP,
    CachedBody,
    bytes_etag,
    paginated_response,
    paginated_schema,
    rendered_response,
)
from config.core.cached_reads import CachedReadApiView
from markets import cache as price_cache
from markets.apis.as_of import (
    AS_OF_HELP,
    AS_OF_PARAMETER,
    AsOfField,
    AsOfMarketEntry,
    as_of_cache,
    as_of_parsed,
    as_of_read,
    as_of_rendered,
    as_of_response,
)
from markets.apis.common import money_field, probability_field, snapshot_or_404
from markets.models import Market, Proposal, Resolution
from markets.selectors.as_of import as_of_ordering, market_as_of, markets_as_of, markets_as_of_query
from markets.selectors.markets import HALTED_FILTER, ORDERINGS, PROPOSED_FILTER
from markets.selectors.prices import market_summary, markets_query
from markets.snapshot import MarketSnapshot


class MarketOutcomeSerializer(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    probability = probability_field()
    shares_outstanding = money_field(help_text="Shares of this outcome held by traders (the maker's q).")


class MarketSummarySerializer(serializers.Serializer):
    slug = serializers.SlugField()
    question = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    kind = serializers.ChoiceField(choices=Market.Kind.choices)
    status = serializers.ChoiceField(choices=Market.Status.choices)
    volume = money_field(help_text="Credits traded so far.")
    opens_at = serializers.DateTimeField(allow_null=True)
    closes_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(help_text="When the probabilities last changed.")
    halted = serializers.BooleanField(help_text="Staff halted trading on this open market; trades are refused.")
    halt_reason = serializers.CharField(allow_blank=True, help_text="Why trading is halted (empty when it is not).")
    outcomes = MarketOutcomeSerializer(many=True)


class MarketListApi(CachedReadApiView):
    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=[
                *Market.Status.choices,
                (HALTED_FILTER, "Halted (open, trading halted by staff)"),
                (PROPOSED_FILTER, "Proposed (a resolution proposed, open to challenge or challenged)"),
            ],
            required=False,
            help_text="A market status; `halted`: open markets whose trading staff halted; `proposed`: markets with a "
            "live resolution proposal (in its challenge window, or challenged and awaiting staff).",
        )
        category = serializers.CharField(required=False, max_length=50)
        search = serializers.CharField(
            required=False, max_length=100, help_text="Words in the question, description, category or slug."
        )
        ordering = serializers.ChoiceField(choices=list(ORDERINGS), required=False, default="-created_at")
        cursor = serializers.CharField(required=False, max_length=200, help_text=PAGINATION_PARAMETERS_HELP)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)
        as_of = AsOfField(
            required=False,
            help_text=AS_OF_HELP + " The list then holds the markets open by then; `status` and the `volume` "
            "orderings are those at that moment, `search` and `category` match today's texts.",
        )

    OutputSerializer = MarketSummarySerializer

    @extend_schema(
        operation_id="markets_list",
        summary="Markets with their current probabilities",
        parameters=[InputSerializer, *CONDITIONAL_PARAMETERS],
        responses={200: paginated_schema("PaginatedMarketList", MarketSummarySerializer(many=True)), 304: NOT_MODIFIED},
    )
    def get(self, request: Request) -> HttpResponse:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        if "as_of" in filters:
            return self._as_of(request, filters)
        # One Redis round trip with the throttle's count: the list generation and this page's entry, which is
        # current only if it was built in that generation.
        keys = self.cached_read_keys(request)
        hit = self.cached_read_hit(request, self.cache_read(request, keys))
        if hit is not None:
            return hit.response(request)
        key = _list_key(request)
        generation = price_cache.list_generation()

        def build() -> dict[str, Any]:
            markets: QuerySet[Market] = markets_query(
                status=filters.get("status"), category=filters.get("category"), search=filters.get("search")
            )
            page = paginated_response(
                queryset=markets,
                serializer_class=self.OutputSerializer,
                request=request,
                view=self,
                ordering=ORDERINGS[filters["ordering"]],
                transform=lambda market: market_summary(market, list(market.outcomes.all())),
            )
            updated = [row["updated_at"] for row in page["results"]]
            # Cached as the JSON body: a cached read sends these bytes without serializing the page again.
            body = JSONRenderer().render(page)
            return {
                "generation": generation,
                "body": body,
                "etag": bytes_etag(body),
                "updated_at": max(updated, default=None),
            }

        # Not only-if-absent: the key holds older generations' pages. A page built in a generation that ended
        # meanwhile may overwrite a newer one; readers then see its generation is not current and rebuild.
        entries = price_cache.cache_set_encoded(key, build())
        cached = entries[keys[1]]
        return rendered_response(
            request,
            cached["body"],
            etag=cached["etag"],
            last_modified=_as_datetime(cached["updated_at"]),
            encoding=cached.get("encoding"),
        )

    def _as_of(self, request: Request, filters: dict[str, Any]) -> HttpResponse:
        moment: datetime = filters["as_of"]
        key = price_cache.as_of_key("list", request.get_host(), request.get_full_path())
        cached, generation = as_of_read(self, request, key)
        if cached is None:
            started = timezone.now()
            page = paginated_response(
                queryset=markets_as_of_query(
                    moment=moment,
                    status=filters.get("status"),
                    category=filters.get("category"),
                    search=filters.get("search"),
                ),
                serializer_class=self.OutputSerializer,
                request=request,
                view=self,
                ordering=as_of_ordering(filters["ordering"]),
                transform_page=lambda markets: markets_as_of(markets=markets, moment=moment),
            )
            updated = [row["updated_at"] for row in page["results"]]
            cached = as_of_rendered(
                moment=moment,
                started=started,
                generation=generation,
                data=page,
                updated_at=_as_datetime(max(updated, default=None)),
            )
            cached = as_of_cache(key, cached, request)
        return as_of_response(request, cached)

    @classmethod
    def cached_read_keys(cls, request: HttpRequest, **kwargs: Any) -> list[str]:
        # The generation, and the page's entry in the coding this request takes (markets.cache.encoded_entries).
        return [
            price_cache.LIST_GENERATION_KEY,
            price_cache.encoded_key(_list_key(request), request.META.get("HTTP_ACCEPT_ENCODING")),
        ]

    @classmethod
    def cached_read_hit(cls, request: HttpRequest, values: list[Any], **kwargs: Any) -> CachedBody | None:
        generation, cached = values
        if cached is None or generation is None or cached["generation"] != str(generation):
            return None
        return CachedBody(
            body=cached["body"],
            etag=cached["etag"],
            last_modified=_as_datetime(cached["updated_at"]),
            encoding=cached.get("encoding"),
        )


def _list_key(request: HttpRequest) -> str:
    """A page's entry is keyed by its full path (so only a query that validated ever has one) and its host (its next
    and previous links are absolute)."""
    return "prices:list:" + price_cache.digest(request.get_host(), request.get_full_path())


def _as_datetime(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


class ResolutionSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Resolution.Kind.choices)
    outcome = serializers.CharField(allow_null=True, help_text="The winning outcome's code (kind=outcome).")
    payouts = serializers.DictField(
        child=money_field(),
        allow_null=True,
        help_text="Credits paid per share of each outcome; null when annulled.",
    )
    reason = serializers.CharField()
    state = serializers.ChoiceField(choices=Resolution.State.choices, help_text="Settlement progress.")
    created_at = serializers.DateTimeField()


class OpenProposalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Resolution.Kind.choices)
    outcome = serializers.CharField(allow_null=True, help_text="The proposed winning outcome's code (kind=outcome).")
    payouts = serializers.DictField(
        child=money_field(), allow_null=True, help_text="Credits per share of each outcome; null when annulled."
    )
    reason = serializers.CharField()
    source_url = serializers.URLField()
    known_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=Proposal.State.choices)
    created_at = serializers.DateTimeField()
    challenge_until = serializers.DateTimeField(
        help_text="Traders may challenge until then; unchallenged, the proposal then becomes final by itself."
    )
    challenge_count = serializers.IntegerField()


class MarketDetailApi(CachedReadApiView):
    class OutputSerializer(MarketSummarySerializer):
        description = serializers.CharField(allow_blank=True)
        resolution_criteria = serializers.CharField(allow_blank=True)
        liquidity = serializers.DecimalField(max_digits=14, decimal_places=4, help_text="The LMSR liquidity b.")
        trader_count = serializers.IntegerField(help_text="Traders who have held a position.")
        closed_at = serializers.DateTimeField(allow_null=True)
        resolved_at = serializers.DateTimeField(allow_null=True)
        resolution = ResolutionSerializer(allow_null=True, help_text="The current resolution, once there is one.")
        proposal = OpenProposalSerializer(
            allow_null=True, help_text="The proposal open to challenge or awaiting staff, if there is one."
        )

    @extend_schema(
        operation_id="markets_retrieve",
        summary="One market with its outcomes' probabilities",
        parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH), AS_OF_PARAMETER, *CONDITIONAL_PARAMETERS],
        responses={200: OutputSerializer, 304: NOT_MODIFIED},
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        moment = as_of_parsed(request.query_params)
        if moment is not None:
            return as_of_response(request, market_as_of_entry(self, request, slug=slug, moment=moment))
        # One Redis round trip with the throttle's count; a miss goes to the database (and fills the cache).
        values = self.cache_read(request, [price_cache.snapshot_key(slug)])
        hit = self.cached_read_hit(request, values)
        if hit is not None:
            return hit.response(request)
        snapshot = values[0] or snapshot_or_404(slug)
        # The body was rendered when the snapshot was stored (markets.cache.snapshot_rendered).
        body, etag, encoding = price_cache.snapshot_body(
            snapshot, DETAIL_RENDERING, request.META.get("HTTP_ACCEPT_ENCODING")
        )
        return rendered_response(request, body, etag=etag, last_modified=snapshot["updated_at"], encoding=encoding)

    @classmethod
    def cached_read_keys(cls, request: HttpRequest, **kwargs: Any) -> list[str] | None:
        # A query may ask for the market as it stood at a moment (as_of): the view parses it first.
        if request.META.get("QUERY_STRING"):
            return None
        return [price_cache.snapshot_key(kwargs["slug"])]

    @classmethod
    def cached_read_hit(cls, request: HttpRequest, values: list[Any], **kwargs: Any) -> CachedBody | None:
        (snapshot,) = values
        if snapshot is None or DETAIL_RENDERING not in snapshot.get("rendered", {}):
            return None
        body, etag, encoding = price_cache.snapshot_body(
            snapshot, DETAIL_RENDERING, request.META.get("HTTP_ACCEPT_ENCODING")
        )
        return CachedBody(body=body, etag=etag, last_modified=snapshot["updated_at"], encoding=encoding)


DETAIL_RENDERING = "api-detail"


def market_detail_render(snapshot: MarketSnapshot) -> tuple[bytes, str]:
    """The detail API's body for a snapshot, and its ETag: the renderer registered with the price cache, so it runs
    after every trade."""
    body = JSONRenderer().render(_detail_serializer().to_representation(snapshot["market"]))
    return body, bytes_etag(body)


def market_as_of_entry(view: CachedReadApiView, request: Request, *, slug: str, moment: datetime) -> AsOfMarketEntry:
    """The market as it stood at `moment`, cached, with the detail's body: the detail and the quote read it."""
    key = price_cache.as_of_key("market", slug, moment.isoformat())
    cached: AsOfMarketEntry | None
    cached, generation = as_of_read(view, request, key)
    if cached is not None:
        return cached
    started = timezone.now()
    found = market_as_of(slug=slug, moment=moment)
    if found is None:
        raise NotFound(f"No market {slug!r}.")
    market, maker = found
    rendered = as_of_rendered(
        moment=moment,
        started=started,
        generation=generation,
        data=MarketDetailApi.OutputSerializer(market).data,
        updated_at=market["updated_at"],
    )
    entry: AsOfMarketEntry = {**rendered, "market": market, "maker": maker}
    return as_of_cache(key, entry, request)


@functools.cache
def _detail_serializer() -> MarketDetailApi.OutputSerializer:
    """One detail serializer for every snapshot: building one deep-copies its fields and their nested serializers'
    (most of a render's time), while turning a snapshot into data only reads them, so threads can share it."""
    serializer = MarketDetailApi.OutputSerializer()
    # Bind every field now (they are bound on first use), so threads only ever read them.
    for field in serializer.fields.values():
        nested = getattr(field, "child", field)
        if isinstance(nested, serializers.Serializer):
            nested.fields  # noqa: B018 - binds the nested serializer's fields
    return serializer
