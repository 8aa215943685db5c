"""Reads of a market's audit trail: the staff actions on it (MarketEvent), and its text revisions among them."""

from collections.abc import Sequence

from django.db.models import Q, QuerySet

from markets.models import Market, MarketEvent, Resolution

# The resolutions and what they voided: the market page's log never cuts these.
RESOLUTION_KINDS = (MarketEvent.Kind.RESOLVED, MarketEvent.Kind.RE_RESOLVED, MarketEvent.Kind.TRADES_VOIDED)


def market_events(*, market: Market, kinds: tuple[str, ...] = ()) -> QuerySet[MarketEvent]:
    """The market's events, newest first, with who acted (one query); `kinds` keeps only those."""
    events = MarketEvent.objects.filter(market=market).select_related("actor").order_by("-created_at", "-id")
    return events.filter(kind__in=kinds) if kinds else events


def market_revisions(*, market: Market) -> QuerySet[MarketEvent]:
    """The public revision history of the market's texts (question, description, criteria, category)."""
    return market_events(market=market, kinds=(MarketEvent.Kind.EDITED,))


def market_log(*, market: Market, resolutions: Sequence[Resolution], length: int) -> list[MarketEvent]:
    """The market page's log, newest first: its latest `length` events, then every older resolution and voiding
    (the page's only record of them). A resolution's event carries its Resolution as `resolution` (from
    `resolutions`, markets.selectors.market_page.market_resolutions), for its settlement state."""
    events = list(market_events(market=market)[:length])
    if len(events) == length:
        last = events[-1]
        older = market_events(market=market, kinds=RESOLUTION_KINDS).filter(
            Q(created_at__lt=last.created_at) | Q(created_at=last.created_at, id__lt=last.pk)
        )
        events += list(older)
    by_id: dict[object, Resolution] = {resolution.pk: resolution for resolution in resolutions}
    for event in events:
        if event.kind in (MarketEvent.Kind.RESOLVED, MarketEvent.Kind.RE_RESOLVED):
            event.resolution = by_id.get((event.data or {}).get("resolution"))
    return events
