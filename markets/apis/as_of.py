"""`as_of`: the market list, a market and a quote as they stood at a past moment (markets.selectors.as_of).

Cached like the other price reads, in one Redis round trip with the throttle's count. An answer about a moment
more than FORECASTLE_AS_OF_SETTLED_SECONDS old cannot change any more (the selector reads only rows dated when
written: voiding and re-resolution add rows and stamps dated later, they do not rewrite the past), so it is kept
for FORECASTLE_AS_OF_CACHE_SECONDS whatever happens to the market since. A more recent moment may still gain a
trade whose transaction began before it and commits after the read, so its answer is current only in the list
generation it was built in (every market change after commit starts a new one, markets.services.price_cache).
"""

import re
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict, TypeVar

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from config.core.api import bytes_etag, rendered_response
from config.core.cached_reads import CachedReadApiView
from markets import cache as price_cache
from markets.snapshot import MakerState, MarketDetail

AS_OF_HELP = (
    "An ISO 8601 time (e.g. 2026-05-01T12:00:00Z; encode a `+` offset as %2B): the answer as it stood at that "
    "moment: probabilities, volume, status and texts (from the revision history). Not before the market opened, "
    "not in the future. Voided trades count between their trade and their voiding, as they did then."
)
AS_OF_PARAMETER = OpenApiParameter("as_of", datetime, OpenApiParameter.QUERY, required=False, description=AS_OF_HELP)

# A `+hh:mm` offset sent unencoded arrives as a space: "...T12:00:00 02:00".
UNENCODED_OFFSET = re.compile(r" (\d\d(:?\d\d)?)$")


class AsOfField(serializers.DateTimeField):
    """A past moment: a malformed, future or pre-2000 time is a 400 naming the field."""

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str):
            value = UNENCODED_OFFSET.sub(r"+\1", value.strip())
        moment: datetime = super().to_internal_value(value)
        if moment > timezone.now():
            raise serializers.ValidationError("Give a past time: as_of cannot be in the future.")
        if moment.year < 2000:
            raise serializers.ValidationError("Give a time after 2000.")
        return moment


class AsOfInputSerializer(serializers.Serializer):
    as_of = AsOfField(help_text=AS_OF_HELP)


def as_of_parsed(query: Any) -> datetime | None:
    """The request's `as_of`, or None without one; a 400 naming `as_of` when it is not a past time."""
    if "as_of" not in query:
        return None
    parsed = AsOfInputSerializer(data={"as_of": query.get("as_of")})
    parsed.is_valid(raise_exception=True)
    moment: datetime = parsed.validated_data["as_of"]
    return moment


class AsOfEntry(TypedDict):
    """A cached point-in-time answer: a market list page's."""

    generation: str
    # True when the moment was settled (older than the horizon) when the entry was built: valid for good.
    settled: bool
    body: bytes
    etag: str
    updated_at: datetime | None
    # "gzip" where the body is compressed (the entry a gzip reader is answered from); absent: identity.
    encoding: NotRequired[str]


class AsOfMarketEntry(AsOfEntry):
    """A market's, which the detail sends and the quote prices from: the market and its maker as they stood."""

    market: MarketDetail
    maker: MakerState


AsOfEntryT = TypeVar("AsOfEntryT", bound=AsOfEntry)


def settled(moment: datetime, *, now: datetime) -> bool:
    return moment <= now - timedelta(seconds=settings.FORECASTLE_AS_OF_SETTLED_SECONDS)


def as_of_read(view: CachedReadApiView, request: Any, key: str) -> tuple[Any, str]:
    """The cached entry under `key`, in the coding the request takes (markets.cache.encoded_key), if it still
    answers (None if not), and the current list generation, in one Redis round trip with the request's throttle
    count. Call before reading the database for a new entry."""
    encoded = price_cache.encoded_key(key, request.META.get("HTTP_ACCEPT_ENCODING"))
    generation, cached = view.cache_read(request, [price_cache.LIST_GENERATION_KEY, encoded])
    if cached is not None and (cached["settled"] or cached["generation"] == str(generation)):
        return cached, str(generation)
    # A miss: the generation this build belongs to (started anew from the clock if it was evicted).
    return None, str(generation) if generation is not None else price_cache.list_generation()


def as_of_rendered(
    *, moment: datetime, started: datetime, generation: str, data: Any, updated_at: datetime | None
) -> AsOfEntry:
    """`data` rendered once, settled if `moment` was when the build `started` reading the database, else tagged
    with the generation read before that (as_of_read)."""
    body = JSONRenderer().render(data)
    return {
        "generation": generation,
        "settled": settled(moment, now=started),
        "body": body,
        "etag": bytes_etag(body),
        "updated_at": updated_at,
    }


def as_of_cache(key: str, entry: AsOfEntryT, request: Any) -> AsOfEntryT:
    """Caches an entry in both codings (markets.cache.encoded_entries): for long once settled, else for the price
    cache's usual time (or the next change). Returns the one that answers `request`."""
    timeout = settings.FORECASTLE_AS_OF_CACHE_SECONDS if entry["settled"] else None
    entries = price_cache.cache_set_encoded(key, entry, timeout=timeout)
    answer: AsOfEntryT = entries[price_cache.encoded_key(key, request.META.get("HTTP_ACCEPT_ENCODING"))]
    return answer


def as_of_response(request: Any, entry: AsOfEntry) -> HttpResponse:
    return rendered_response(
        request, entry["body"], etag=entry["etag"], last_modified=entry["updated_at"], encoding=entry.get("encoding")
    )
