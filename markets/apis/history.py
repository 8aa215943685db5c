"""Price history of one market: raw points or candles, from the price cache."""

from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from config.core.api import CONDITIONAL_PARAMETERS, NOT_MODIFIED, CachedBody, bytes_etag, rendered_response
from config.core.cached_reads import CachedReadApiView
from markets import cache as price_cache
from markets.apis.common import probability_field, snapshot_or_404
from markets.selectors.prices import INTERVALS, PriceHistory, history_bucket_end, history_window, price_history

# Outside these years a datetime is a typo, and date arithmetic near year 1 or 9999 would overflow.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class PointSerializer(serializers.Serializer):
    time = serializers.DateTimeField()
    probability = probability_field()

    def to_representation(self, instance: dict[str, Any]) -> dict[str, Any]:
        # Thousands per response: each field's own conversion, without the Serializer's per-field
        # attribute machinery, which took most of an uncached history request.
        fields = self.fields
        return {
            "time": fields["time"].to_representation(instance["time"]),
            "probability": fields["probability"].to_representation(instance["probability"]),
        }


class CandleSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="Start of the bucket.")
    open = probability_field()
    high = probability_field()
    low = probability_field()
    close = probability_field()

    def to_representation(self, instance: dict[str, Any]) -> dict[str, Any]:
        # As PointSerializer: the same output, a fraction of the cost per candle.
        fields = self.fields
        return {
            "time": fields["time"].to_representation(instance["time"]),
            "open": fields["open"].to_representation(instance["open"]),
            "high": fields["high"].to_representation(instance["high"]),
            "low": fields["low"].to_representation(instance["low"]),
            "close": fields["close"].to_representation(instance["close"]),
        }


class SeriesSerializer(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    points = PointSerializer(many=True, help_text="Raw points (interval=raw), else empty.")
    candles = CandleSerializer(many=True, help_text="Candles (interval 1m, 5m, 1h, 1d), else empty.")


class MarketHistoryApi(CachedReadApiView):
    class InputSerializer(serializers.Serializer):
        interval = serializers.ChoiceField(
            choices=["raw", *INTERVALS],
            required=False,
            default="raw",
            help_text="raw: every price change; else candles of that width, empty buckets carrying the last price.",
        )
        start = serializers.DateTimeField(
            required=False, help_text="ISO 8601; default: the market's opening (raw) or 2000 candles back."
        )
        end = serializers.DateTimeField(
            required=False, help_text="ISO 8601, exclusive; default: now (the end of the current bucket)."
        )

        def validate(self, attrs: dict[str, object]) -> dict[str, object]:
            for name in ("start", "end"):
                moment = attrs.get(name)
                if isinstance(moment, datetime) and not EARLIEST <= moment <= LATEST:
                    raise serializers.ValidationError({name: ["Give a time between 2000 and 2200."]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        market = serializers.SlugField()
        interval = serializers.CharField()
        start = serializers.DateTimeField()
        end = serializers.DateTimeField(allow_null=True, help_text="Null: up to the latest point.")
        series = SeriesSerializer(many=True)

    @extend_schema(
        operation_id="markets_history",
        summary="Price history per outcome: raw points or open/high/low/close candles",
        parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH), InputSerializer, *CONDITIONAL_PARAMETERS],
        responses={200: OutputSerializer, 304: NOT_MODIFIED},
    )
    def get(self, request: Request, slug: str) -> Response | HttpResponse:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        interval = query.validated_data["interval"]
        end = query.validated_data.get("end")
        now = timezone.now()
        # The request's body is cached under its path and, for an open-ended candle window, the bucket it ends
        # in: the key is known before the snapshot is read, so both come in one Redis round trip with the
        # throttle's count. The body is current when it was rendered at the snapshot's version.
        bucket = "" if interval == "raw" or end is not None else history_bucket_end(interval=interval, now=now)
        keys = _keys(request, slug, bucket)
        values = self.cache_read(request, keys)
        hit = self.cached_read_hit(request, values)
        if hit is not None:
            return hit.response(request)
        snapshot = values[0] or snapshot_or_404(slug)
        hit = self.cached_read_hit(request, [snapshot, values[1]])
        if hit is not None:
            # The snapshot had expired and was read again: the body rendered at its version still answers.
            return hit.response(request)
        window = history_window(
            snapshot=snapshot, interval=interval, start=query.validated_data.get("start"), end=end, now=now
        )
        # Cached as the JSON body: encoding ~300 kB of candles again on every request took more than half of a
        # cached read. Not only-if-absent: the key holds older versions' bodies.
        rendered = {
            "version": snapshot["version"],
            **price_history(snapshot=snapshot, window=window, render=self._render),
        }
        # A body keyed by its path alone is kept until long after the snapshot's expiry, as only a change makes it
        # stale (and readers check that); one keyed by a time bucket is of no use once the bucket ends. Stored in
        # both codings (markets.cache.encoded_entries), compressed once here.
        key = _body_key(request, bucket)
        entries = price_cache.cache_set_encoded(key, rendered, timeout=None if bucket else price_cache.rendered_ttl())
        answer = entries[keys[1]]
        return rendered_response(
            request,
            answer["body"],
            etag=answer["etag"],
            last_modified=snapshot["updated_at"],
            encoding=answer.get("encoding"),
        )

    @classmethod
    def cached_read_keys(cls, request: HttpRequest, **kwargs: Any) -> list[str] | None:
        # Without a query the history is the raw points (interval's default), whose key needs no time bucket;
        # with one, the view parses it first.
        if request.META.get("QUERY_STRING"):
            return None
        return _keys(request, kwargs["slug"], "")

    @classmethod
    def cached_read_hit(cls, request: HttpRequest, values: list[Any], **kwargs: Any) -> CachedBody | None:
        snapshot, cached = values
        if snapshot is None or cached is None or cached["version"] != snapshot["version"]:
            return None
        return CachedBody(
            body=cached["body"],
            etag=cached["etag"],
            last_modified=snapshot["updated_at"],
            encoding=cached.get("encoding"),
        )

    def _render(self, history: PriceHistory) -> dict[str, Any]:
        body = JSONRenderer().render(self.OutputSerializer(history).data)
        return {"body": body, "etag": bytes_etag(body)}


def _keys(request: HttpRequest, slug: str, bucket: object) -> list[str]:
    """The market's snapshot (for its version) and the body cached for this path and time bucket, in the coding the
    request takes (markets.cache.encoded_key)."""
    return [
        price_cache.snapshot_key(slug),
        price_cache.encoded_key(_body_key(request, bucket), request.META.get("HTTP_ACCEPT_ENCODING")),
    ]


def _body_key(request: HttpRequest, bucket: object) -> str:
    return "prices:history:" + price_cache.digest(request.get_full_path(), bucket)
